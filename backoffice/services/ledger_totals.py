"""The maintained totals the dashboard reads: kept in step with the ledger, one order at a time.

Each payment remembers what it added to ``LedgerTotal`` (``counted_collected``,
NULL while it is not collected, and ``counted_refunded``); each order what it
added to ``OrderTotal`` (``counted_status``, empty until counted, and
``counted_balance``). ``count_order`` compares those with the order's rows
as they are now and adds only the difference, with one atomic upsert per
totals table (``INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x``),
so two orders of one conference written at once both count. ``settle_order``
calls it at the end of every ledger write, under the order's lock and in its
transaction (at most four queries: the order's payments, two upserts, the
payments' counted state); writers that create orders in bulk call
``count_new_orders``, test factories ``recount_order``.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import connection
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


def count_order(order: Order) -> list[str]:
    """Add to the totals what changed in a locked order's ledger since it was last counted.

    ``order`` is the locked, fresh row with its new status set; its counted
    fields are updated in memory and their names returned for the caller's
    ``save(update_fields=...)`` (``settle_order`` saves them with the status).
    Call inside the transaction of the write.
    """
    payments = list(
        Payment.objects.filter(order_id=order.pk).only(
            "method",
            "status",
            "amount",
            "refunded_amount",
            "lost_dispute_amount",
            "created_at",
            "counted_collected",
            "counted_refunded",
        )
    )
    deltas: dict[tuple[date, str], list] = defaultdict(lambda: [0, ZERO, ZERO])
    changed = []
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
        changed.append(payment)
    if changed:
        add_to_ledger_totals(
            [(order.conference_id, day, method, *delta) for (day, method), delta in deltas.items()]
        )
        Payment.objects.bulk_update(changed, ["counted_collected", "counted_refunded"])
    balance = order_balance(order, payments)
    if (order.status, balance) == (order.counted_status, order.counted_balance):
        return []
    rows = [(order.conference_id, order.status, 1, balance)]
    if order.counted_status:
        rows.append((order.conference_id, order.counted_status, -1, -order.counted_balance))
    add_to_order_totals(rows)
    order.counted_status, order.counted_balance = order.status, balance
    return ["counted_status", "counted_balance"]


def recount_order(order: Order) -> None:
    """Re-read the order and count what changed since it was last counted, saving its state.

    For writers that change an order's rows outside ``settle_order`` (test
    factories, repairs); call inside their transaction.
    """
    fresh = Order.objects.get(pk=order.pk)
    fields = count_order(fresh)
    if fields:
        fresh.save(update_fields=fields)
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


def _upsert(table: str, key: Sequence[str], columns: Sequence[str], rows: list[tuple]) -> None:
    """Insert the rows, or add their columns to the rows already there: one statement.

    Rows are merged per key and sorted, so two writers lock the same total rows
    in the same order (no deadlock); works on PostgreSQL and SQLite.
    """
    merged: dict[tuple, list] = {}
    for row in rows:
        values = merged.setdefault(row[: len(key)], [0] * len(columns))
        for index, value in enumerate(row[len(key) :]):
            values[index] += value
    merged = {k: v for k, v in merged.items() if any(v)}
    if not merged:
        return
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
    parameters = [_adapt(value) for k in sorted(merged) for value in (*k, *merged[k])]
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)


def _adapt(value: object) -> object:
    """A parameter as the database driver takes it (SQLite stores dates and decimals as text)."""
    if isinstance(value, date):
        return connection.ops.adapt_datefield_value(value)
    if isinstance(value, Decimal):
        return connection.ops.adapt_decimalfield_value(value)
    return value


def add_to_ledger_totals(rows: list[tuple[int, date, str, int, Decimal, Decimal]]) -> None:
    """Add (conference id, day, method, payments, collected, refunded) to ``LedgerTotal``."""
    _upsert(
        LedgerTotal._meta.db_table,
        ("conference_id", "day", "method"),
        ("payments", "collected", "refunded"),
        rows,
    )


def add_to_order_totals(rows: list[tuple[int, str, int, Decimal]]) -> None:
    """Add (conference id, status, orders, balance) changes to ``OrderTotal``."""
    _upsert(
        OrderTotal._meta.db_table,
        ("conference_id", "status"),
        ("orders", "balance"),
        rows,
    )
