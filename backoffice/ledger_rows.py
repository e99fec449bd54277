"""The payments export's rows: each payment followed by its refunds (oldest first).

A refund is its own row with a negative amount, so the Amount column of an
export sums to what was collected net of refunds. Both export paths produce
the same rows in the same order: Python reads payments a chunk at a time and
their refunds with one query per chunk; PostgreSQL numbers the payments in the
queryset's order and slots each refund right after its payment.
"""

from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import F, Window
from django.db.models.expressions import OrderBy
from django.db.models.functions import Cast, RowNumber

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


def _ordering(queryset: models.QuerySet) -> list[OrderBy]:
    """The queryset's ORDER BY as expressions (its explicit ordering, else the model's)."""
    terms = queryset.query.order_by or queryset.model._meta.ordering
    ordering = []
    for term in terms:
        if isinstance(term, str):
            descending = term.startswith("-")
            field = F(term.lstrip("-"))
            ordering.append(field.desc() if descending else field.asc())
        else:
            ordering.append(term)
    return ordering


def payments_and_refunds_select(
    queryset: models.QuerySet[Payment], columns: "list[ExportField]"
) -> tuple[str, tuple]:
    """One SELECT of the rows ``payments_with_refunds`` yields, as text cells (PostgreSQL).

    Every cell is cast to text so the payment and refund halves of the UNION
    agree on types; PostgreSQL writes the same characters for a number either way.
    """
    names = [f"export_col_{index}" for index in range(len(columns))]
    payments = (
        queryset.annotate(
            **{
                name: Cast(column.sql_expression(), models.TextField())
                for name, column in zip(names, columns, strict=True)
            },
            ledger_pid=F("pk"),
            ledger_pos=Window(RowNumber(), order_by=_ordering(queryset)),
        )
        .order_by()
        .values_list(*names, "ledger_pid", "ledger_pos")
    )
    refunds = (
        Refund.objects.annotate(
            **{
                name: Cast(column.refund_sql_expression(), models.TextField())
                for name, column in zip(names, columns, strict=True)
            },
            ledger_pid=F("payment_id"),
            ledger_at=F("created_at"),
            ledger_rid=F("pk"),
        )
        .order_by()
        .values_list(*names, "ledger_pid", "ledger_at", "ledger_rid")
    )
    payment_sql, payment_params = payments.query.sql_with_params()
    refund_sql, refund_params = refunds.query.sql_with_params()
    cells = ", ".join(f'"{name}"' for name in names)
    p_cells = ", ".join(f'p."{name}"' for name in names)
    r_cells = ", ".join(f'r."{name}"' for name in names)
    # Only Django's compiled SQL and the generated cell names go in; values are params.
    sql = (
        f"WITH p AS ({payment_sql}), r AS ({refund_sql}) "  # noqa: S608
        f"SELECT {cells} FROM ("
        f"SELECT {p_cells}, p.ledger_pos, 0 AS ledger_kind, "
        f"NULL::timestamptz AS ledger_at, NULL::bigint AS ledger_rid FROM p "
        f"UNION ALL "
        f"SELECT {r_cells}, p.ledger_pos, 1, r.ledger_at, r.ledger_rid "
        f"FROM r JOIN p ON p.ledger_pid = r.ledger_pid"
        f") AS ledger ORDER BY ledger_pos, ledger_kind, ledger_at, ledger_rid"
    )
    return sql, (*payment_params, *refund_params)
