"""The maintained totals the dashboard reads: kept in step with the ledger, one order at a time.

Each payment remembers what it added to ``LedgerTotal`` (``counted_collected``,
NULL while it is not collected, and ``counted_refunded``); each order what it
added to ``OrderTotal`` (``counted_status``, empty until counted, and
``counted_balance``). ``count_order`` compares those with the order's rows
as they are now (read once, ``order_payments``, which the money rule reads
too) and computes only the difference; ``save_counted`` adds it with one
atomic upsert per totals table (``INSERT ... ON CONFLICT DO UPDATE SET x = x +
excluded.x``), so two orders of one conference written at once both count.
``settle_order`` calls both at the end of every ledger write, under the
order's lock and in its transaction; on PostgreSQL the order's own UPDATE,
both upserts and the payments' counted state are one statement. Writers
that create orders in bulk call ``count_new_orders``, test factories
``recount_order``.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import connection
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from backoffice.models import (
    MONEY_HELD_STATUSES,
    ZERO,
    LedgerTotal,
    Order,
    OrderTotal,
    Payment,
)

# The payments the dashboard counts as collected (a REFUNDED one also as refunded in full).
COLLECTED_STATUSES = MONEY_HELD_STATUSES


@dataclass(frozen=True)
class PaymentShare:
    """What one payment adds to its ``LedgerTotal`` row."""

    collected: Decimal
    refunded: Decimal


def payment_share(payment: Payment) -> PaymentShare | None:
    """What a payment counts for now: None unless collected; a lost dispute counts as refunded."""
    if payment.status not in COLLECTED_STATUSES:
        return None
    refunded = (
        payment.amount if payment.status == Payment.Status.REFUNDED else payment.refunded_amount
    )
    return PaymentShare(payment.amount, refunded + payment.lost_dispute_amount)


def order_balance(order: Order, payments: Iterable[Payment]) -> Decimal:
    """What a pending order still owes (never below zero); zero for any other status."""
    if order.status != Order.Status.PENDING:
        return ZERO
    held = (
        p.amount - p.refunded_amount - p.lost_dispute_amount
        for p in payments
        if p.status in MONEY_HELD_STATUSES
    )
    return max(order.total - sum(held, ZERO), ZERO)


def local_day(payment: Payment) -> date:
    """The payment's creation day in the site's time zone."""
    return timezone.localdate(payment.created_at, timezone=timezone.get_default_timezone())


# What the money rule and the totals read of each of an order's payments.
LEDGER_FIELDS = (
    "method",
    "status",
    "amount",
    "refunded_amount",
    "lost_dispute_amount",
    "created_at",
    "counted_collected",
    "counted_refunded",
)


def order_payments(order: Order) -> list[Payment]:
    """The order's payments as the money rule and the totals read them (one query)."""
    return list(Payment.objects.filter(order_id=order.pk).only(*LEDGER_FIELDS))


@dataclass
class TotalsChange:
    """What one order's write adds to the totals, and the counted state it leaves."""

    ledger_rows: list[tuple[int, date, str, int, Decimal, Decimal]] = field(default_factory=list)
    order_rows: list[tuple[int, str, int, Decimal]] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)  # their counted_* changed
    order_fields: list[str] = field(default_factory=list)  # the order's counted_* changed


def count_order(order: Order, payments: Sequence[Payment]) -> TotalsChange:
    """What changed in a locked order's ledger since it was last counted (nothing written).

    ``order`` is the locked, fresh row with its new status set and ``payments``
    its payments as written (``order_payments``); their counted fields are
    updated in memory. ``save_counted`` writes the change with the order.
    """
    change = TotalsChange()
    deltas: dict[tuple[date, str], list] = defaultdict(lambda: [0, ZERO, ZERO])
    for payment in payments:
        share = payment_share(payment)
        old = payment.counted_collected, payment.counted_refunded
        new = (share.collected, share.refunded) if share else (None, ZERO)
        if new == old:
            continue
        delta = deltas[(local_day(payment), payment.method)]
        delta[0] += (new[0] is not None) - (old[0] is not None)
        delta[1] += (new[0] or ZERO) - (old[0] or ZERO)
        delta[2] += new[1] - old[1]
        payment.counted_collected, payment.counted_refunded = new
        change.payments.append(payment)
    change.ledger_rows = [
        (order.conference_id, day, method, *delta) for (day, method), delta in deltas.items()
    ]
    balance = order_balance(order, payments)
    if (order.status, balance) != (order.counted_status, order.counted_balance):
        change.order_rows.append((order.conference_id, order.status, 1, balance))
        if order.counted_status:
            change.order_rows.append(
                (order.conference_id, order.counted_status, -1, -order.counted_balance)
            )
        order.counted_status, order.counted_balance = order.status, balance
        change.order_fields = ["counted_status", "counted_balance"]
    return change


def save_counted(order: Order, *, fields: Sequence[str], change: TotalsChange) -> None:
    """Save the order's ``fields`` (with its counted state) and add ``change`` to the totals.

    On PostgreSQL one statement: the order's UPDATE with the two upserts and the
    payments' counted state as data-modifying CTEs. PostgreSQL does not promise
    their order (PostgreSQL 15's executor runs the main statement, then the CTEs
    last written first), but every ledger write sends this same shape, so writers
    lock the total rows in one order (a deadlock, e.g. beside an older worker
    during a deploy, would roll back and, for a webhook, answer 503 for Stripe to
    retry). Elsewhere one statement each.
    """
    fields = [*fields, *(name for name in change.order_fields if name not in fields)]
    parts = [_ledger_totals_sql(change.ledger_rows), _order_totals_sql(change.order_rows)]
    statements = [part for part in parts if part is not None]
    if connection.vendor != "postgresql":
        for statement in statements:
            _execute(statement)
        if change.payments:
            Payment.objects.bulk_update(change.payments, ["counted_collected", "counted_refunded"])
        if fields:
            order.save(update_fields=fields)
        return
    if change.payments:
        statements.append(_counted_payments_sql(change.payments))
    if not statements and not fields:
        return
    main, main_parameters = _update_sql(order, fields) if fields else ("SELECT 1", ())
    ctes = ", ".join(f"totals_{index} AS ({sql})" for index, (sql, _) in enumerate(statements))
    parameters = [value for _, values in statements for value in values]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {ctes} {main}" if ctes else main, [*parameters, *main_parameters])


def recount_order(order: Order) -> None:
    """Re-read the order and count what changed since it was last counted, saving its state.

    For writers that change an order's rows outside ``settle_order`` (test
    factories, repairs); call inside their transaction.
    """
    fresh = Order.objects.get(pk=order.pk)
    save_counted(fresh, fields=[], change=count_order(fresh, order_payments(fresh)))
    order.counted_status, order.counted_balance = fresh.counted_status, fresh.counted_balance


def count_new_orders(orders: Sequence[Order]) -> None:
    """Count orders about to be inserted without payments (an import) in the totals.

    Sets each order's counted state before its insert; call in the transaction
    that inserts them.
    """
    rows: dict[tuple[int, str], list] = defaultdict(lambda: [0, ZERO])
    for order in orders:
        order.counted_status = order.status
        order.counted_balance = order.total if order.status == Order.Status.PENDING else ZERO
        row = rows[(order.conference_id, order.status)]
        row[0] += 1
        row[1] += order.counted_balance
    add_to_order_totals(
        [(conference, status, *row) for (conference, status), row in sorted(rows.items())]
    )


def _upsert_sql(
    table: str, key: Sequence[str], columns: Sequence[str], rows: list[tuple]
) -> tuple[str, list] | None:
    """Insert the rows, or add their columns to the rows already there: one statement.

    Rows are merged per key and sorted, so two writers lock the same total rows
    in the same order (no deadlock); works on PostgreSQL and SQLite. None when
    the rows add nothing.
    """
    merged: dict[tuple, list] = {}
    for row in rows:
        values = merged.setdefault(row[: len(key)], [0] * len(columns))
        for index, value in enumerate(row[len(key) :]):
            values[index] += value
    merged = {k: v for k, v in merged.items() if any(v)}
    if not merged:
        return None
    quote = connection.ops.quote_name
    names = ", ".join(quote(name) for name in (*key, *columns))
    marks = "(" + ", ".join(["%s"] * (len(key) + len(columns))) + ")"
    increments = ", ".join(
        f"{quote(c)} = {quote(table)}.{quote(c)} + excluded.{quote(c)}" for c in columns
    )
    # Names come from the models' metadata; values are bound as parameters.
    conflict = ", ".join(quote(k) for k in key)
    sql = (
        f"INSERT INTO {quote(table)} ({names}) VALUES {', '.join([marks] * len(merged))} "  # noqa: S608
        f"ON CONFLICT ({conflict}) DO UPDATE SET {increments}"
    )
    return sql, [_adapt(value) for k in sorted(merged) for value in (*k, *merged[k])]


def _execute(statement: tuple[str, list] | None) -> None:
    """Run a statement built here, if there is one."""
    if statement is not None:
        with connection.cursor() as cursor:
            cursor.execute(*statement)


def _counted_payments_sql(payments: Sequence[Payment]) -> tuple[str, list]:
    """An UPDATE storing the payments' counted state, all in one statement (PostgreSQL)."""
    rows = ", ".join(["(%s::bigint, %s::numeric, %s::numeric)"] * len(payments))
    sql = (
        f"UPDATE {Payment._meta.db_table} AS p SET counted_collected = v.collected, "  # noqa: S608
        f"counted_refunded = v.refunded FROM (VALUES {rows}) AS v(id, collected, refunded) "
        "WHERE p.id = v.id"
    )
    parameters = [
        value
        for payment in sorted(payments, key=lambda payment: payment.pk)
        for value in (payment.pk, payment.counted_collected, payment.counted_refunded)
    ]
    return sql, parameters


def _update_sql(order: Order, fields: Sequence[str]) -> tuple[str, tuple]:
    """The UPDATE that ``order.save(update_fields=fields)`` would run (auto_now fields set)."""
    query = Order._base_manager.filter(pk=order.pk).query.chain(UpdateQuery)
    query.add_update_fields(
        [(f, None, f.pre_save(order, False)) for f in map(Order._meta.get_field, fields)]
    )
    return query.get_compiler(connection.alias).as_sql()


def _adapt(value: object) -> object:
    """A parameter as the database driver takes it (SQLite stores dates and decimals as text)."""
    if isinstance(value, date):
        return connection.ops.adapt_datefield_value(value)
    if isinstance(value, Decimal):
        return connection.ops.adapt_decimalfield_value(value)
    return value


def _ledger_totals_sql(
    rows: list[tuple[int, date, str, int, Decimal, Decimal]],
) -> tuple[str, list] | None:
    """The upsert adding (conference id, day, method, payments, collected, refunded) rows."""
    return _upsert_sql(
        LedgerTotal._meta.db_table,
        ("conference_id", "day", "method"),
        ("payments", "collected", "refunded"),
        rows,
    )


def _order_totals_sql(rows: list[tuple[int, str, int, Decimal]]) -> tuple[str, list] | None:
    """The upsert adding (conference id, status, orders, balance) rows."""
    return _upsert_sql(
        OrderTotal._meta.db_table, ("conference_id", "status"), ("orders", "balance"), rows
    )


def add_to_ledger_totals(rows: list[tuple[int, date, str, int, Decimal, Decimal]]) -> None:
    """Add (conference id, day, method, payments, collected, refunded) to ``LedgerTotal``."""
    _execute(_ledger_totals_sql(rows))


def add_to_order_totals(rows: list[tuple[int, str, int, Decimal]]) -> None:
    """Add (conference id, status, orders, balance) changes to ``OrderTotal``."""
    _execute(_order_totals_sql(rows))
