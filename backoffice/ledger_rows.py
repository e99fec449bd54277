"""The payments export's rows: each payment followed by its refunds (oldest first).

A refund is its own row with a negative amount, so the Amount column of an
export sums to what was collected net of refunds. Both export paths produce
the same rows in the same order: Python reads payments a chunk at a time and
their refunds with one query per chunk; PostgreSQL sorts each refund right
after its payment by giving it the payment's sort keys.
"""

from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import F, Value
from django.db.models.expressions import OrderBy
from django.db.models.functions import Cast

from backoffice.models import Payment, Refund

if TYPE_CHECKING:
    from backoffice.exports import ExportField


def payments_with_refunds(
    queryset: models.QuerySet[Payment], chunk_rows: int
) -> Iterator[Payment | Refund]:
    """The queryset's payments in its order, each followed by its refunds (oldest first)."""
    chunk: list[Payment] = []
    for payment in queryset.iterator(chunk_size=chunk_rows):
        chunk.append(payment)
        if len(chunk) >= chunk_rows:
            yield from _with_refunds(chunk)
            chunk = []
    if chunk:
        yield from _with_refunds(chunk)


def _with_refunds(payments: list[Payment]) -> Iterator[Payment | Refund]:
    """These payments, each followed by its refunds (one query for all of them)."""
    refunds: dict[int, list[Refund]] = defaultdict(list)
    rows = (
        Refund.objects.filter(payment__in=[payment.pk for payment in payments])
        .select_related("created_by")
        .order_by("created_at", "id")
    )
    for refund in rows:
        refunds[refund.payment_id].append(refund)
    for payment in payments:
        yield payment
        for refund in refunds.get(payment.pk, ()):
            refund.payment = payment  # its order, conference and attendee are loaded
            yield refund


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

    A UNION ALL of the payments and of their refunds, each branch carrying the
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
    payment_sql, payment_params = payments.query.sql_with_params()
    refund_sql, refund_params = refunds.query.sql_with_params()
    cells = ", ".join(f'"{name}"' for name in names)
    order_by = ", ".join(
        f'"{key}" {"DESC" if descending else "ASC"}'
        for key, (_, descending) in zip(keys, ordering, strict=True)
    )
    # Only Django's compiled SQL and generated names go in; values are params.
    sql = (
        f"SELECT {cells} FROM ({payment_sql} UNION ALL {refund_sql}) AS ledger "  # noqa: S608
        f"ORDER BY {order_by}, ledger_kind, ledger_at, ledger_rid"
    )
    return sql, (*payment_params, *refund_params)
