"""The payments export's rows: each payment followed by its refunds, then its lost disputes.

A refund is its own row with a negative amount, and so is a lost dispute
(money out like a refund), so the Amount column of an export sums to what was
collected net of both. Both export paths produce the same rows in the same
order: Python reads payments a chunk at a time and their refunds and lost
disputes with one query each per chunk; PostgreSQL sorts each refund and
dispute right after its payment by giving it the payment's sort keys.
"""

from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import F, Value
from django.db.models.expressions import OrderBy
from django.db.models.functions import Cast

from backoffice.models import Dispute, Payment, Refund

if TYPE_CHECKING:
    from backoffice.exports import ExportField


def payments_with_refunds(
    queryset: models.QuerySet[Payment], chunk_rows: int
) -> Iterator[Payment | Refund | Dispute]:
    """The queryset's payments in its order, each followed by its refunds and lost disputes."""
    chunk: list[Payment] = []
    for payment in queryset.iterator(chunk_size=chunk_rows):
        chunk.append(payment)
        if len(chunk) >= chunk_rows:
            yield from _with_refunds(chunk)
            chunk = []
    if chunk:
        yield from _with_refunds(chunk)


def _with_refunds(payments: list[Payment]) -> Iterator[Payment | Refund | Dispute]:
    """These payments, each followed by its refunds (oldest first), then its lost disputes.

    One query for the refunds of all of them, one for their lost disputes (by
    when they were lost).
    """
    keys = [payment.pk for payment in payments]
    money_out: dict[int, list[Refund | Dispute]] = defaultdict(list)
    refunds = (
        Refund.objects.filter(payment__in=keys)
        .select_related("created_by")
        .order_by("created_at", "id")
    )
    for refund in refunds:
        money_out[refund.payment_id].append(refund)
    for dispute in _lost_disputes(Dispute.objects.filter(payment__in=keys)).order_by(
        "closed_at", "id"
    ):
        money_out[dispute.payment_id].append(dispute)
    for payment in payments:
        yield payment
        for row in money_out.get(payment.pk, ()):
            row.payment = payment  # its order, conference and attendee are loaded
            yield row


def _lost_disputes(queryset: models.QuerySet[Dispute]) -> models.QuerySet[Dispute]:
    """The disputes that took money back (lost), which the export lists like refunds."""
    return queryset.filter(status=Dispute.Status.LOST)


def _ordering(queryset: models.QuerySet[Payment]) -> list[tuple[str, bool]]:
    """The queryset's ORDER BY as (field path on Payment, descending) pairs."""
    ordering = []
    for term in queryset.query.order_by or queryset.model._meta.ordering:
        if isinstance(term, OrderBy) and isinstance(term.expression, F):
            ordering.append((term.expression.name, term.descending))
        elif isinstance(term, str) and term != "?":
            ordering.append((term.lstrip("-"), term.startswith("-")))
        else:
            raise TypeError(f"Cannot export the payments ledger ordered by {term!r}.")
    return ordering


def payments_and_refunds_select(
    queryset: models.QuerySet[Payment], columns: "list[ExportField]"
) -> tuple[str, tuple]:
    """One SELECT of the rows ``payments_with_refunds`` yields, as text cells (PostgreSQL).

    A UNION ALL of the payments, their refunds and their lost disputes, each branch carrying the
    payment's sort keys, so PostgreSQL can merge the payments read in index
    order with the (few) sorted refunds instead of sorting the whole ledger.
    Every cell is cast to text so the branches agree on types; PostgreSQL
    writes the same characters for a number either way.
    """
    names = [f"export_col_{index}" for index in range(len(columns))]
    ordering = _ordering(queryset)
    keys = [f"ledger_key_{index}" for index in range(len(ordering))]
    payments = (
        queryset.annotate(
            **{
                name: Cast(column.sql_expression(), models.TextField())
                for name, column in zip(names, columns, strict=True)
            },
            **{key: F(path) for key, (path, _) in zip(keys, ordering, strict=True)},
            ledger_kind=Value(0),
            ledger_at=Cast(Value(None), models.DateTimeField()),
            ledger_rid=Cast(Value(None), models.BigIntegerField()),
        )
        .order_by()
        .values_list(*names, *keys, "ledger_kind", "ledger_at", "ledger_rid")
    )
    refunds = (
        Refund.objects.filter(payment__in=queryset.order_by().values("pk"))
        .annotate(
            **{
                name: Cast(column.refund_sql_expression(), models.TextField())
                for name, column in zip(names, columns, strict=True)
            },
            **{key: F(f"payment__{path}") for key, (path, _) in zip(keys, ordering, strict=True)},
            ledger_kind=Value(1),
            ledger_at=F("created_at"),
            ledger_rid=Cast(F("pk"), models.BigIntegerField()),
        )
        .order_by()
        .values_list(*names, *keys, "ledger_kind", "ledger_at", "ledger_rid")
    )
    disputes = (
        _lost_disputes(Dispute.objects.filter(payment__in=queryset.order_by().values("pk")))
        .annotate(
            **{
                name: Cast(column.dispute_sql_expression(), models.TextField())
                for name, column in zip(names, columns, strict=True)
            },
            **{key: F(f"payment__{path}") for key, (path, _) in zip(keys, ordering, strict=True)},
            ledger_kind=Value(2),
            ledger_at=F("closed_at"),
            ledger_rid=Cast(F("pk"), models.BigIntegerField()),
        )
        .order_by()
        .values_list(*names, *keys, "ledger_kind", "ledger_at", "ledger_rid")
    )
    payment_sql, payment_params = payments.query.sql_with_params()
    refund_sql, refund_params = refunds.query.sql_with_params()
    dispute_sql, dispute_params = disputes.query.sql_with_params()
    cells = ", ".join(f'"{name}"' for name in names)
    order_by = ", ".join(
        f'"{key}" {"DESC" if descending else "ASC"}'
        for key, (_, descending) in zip(keys, ordering, strict=True)
    )
    # Only Django's compiled SQL and generated names go in; values are params.
    sql = (
        f"SELECT {cells} FROM ({payment_sql} UNION ALL {refund_sql} "  # noqa: S608
        f"UNION ALL {dispute_sql}) AS ledger "
        f"ORDER BY {order_by}, ledger_kind, ledger_at, ledger_rid"
    )
    return sql, (*payment_params, *refund_params, *dispute_params)
