"""The maintained totals the dashboard reads: kept in step with the ledger, one order at a time.

Each payment remembers what it added to ``LedgerTotal`` (``counted_collected``,
NULL while it is not collected, and ``counted_refunded``); each order what it
added to ``OrderTotal`` (``counted_status``, empty until counted, and
``counted_balance``). ``recount_order`` compares those with the order's rows
as they are now and adds only the difference, with one atomic upsert per
total row (``INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x``), so
two orders of one conference written at once both count. ``settle_order``
calls it at the end of every ledger write, under the order's lock and in its
transaction; writers that create orders in bulk call ``count_new_orders``.
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


def recount_order(order: Order) -> None:
    """Add to the totals what changed in the order's ledger since it was last counted.

    Call inside the transaction of the write, with the order locked (``settle_order``
    does); reads the order's row and payments afresh.
    """
    fresh = Order.objects.only(
        "conference_id", "status", "total", "counted_status", "counted_balance"
    ).get(pk=order.pk)
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
        # Sorted keys: two writers lock the same total rows in the same order (no deadlock).
        add_to_ledger_totals(
            [
                (fresh.conference_id, day, method, *delta)
                for (day, method), delta in sorted(deltas.items())
            ]
        )
        Payment.objects.bulk_update(changed, ["counted_collected", "counted_refunded"])
    balance = order_balance(fresh, payments)
    if (fresh.status, balance) != (fresh.counted_status, fresh.counted_balance):
        rows = [(fresh.conference_id, fresh.status, 1, balance)]
        if fresh.counted_status:
            rows.append((fresh.conference_id, fresh.counted_status, -1, -fresh.counted_balance))
        add_to_order_totals(_merge_order_rows(rows))
        Order.objects.filter(pk=order.pk).update(
            counted_status=fresh.status, counted_balance=balance
        )
    order.counted_status, order.counted_balance = fresh.status, balance


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


def _merge_order_rows(
    rows: list[tuple[int, str, int, Decimal]],
) -> list[tuple[int, str, int, Decimal]]:
    """One change per (conference, status), in key order; a status unchanged nets out."""
    merged: dict[tuple[int, str], list] = defaultdict(lambda: [0, ZERO])
    for conference, status, orders, balance in rows:
        merged[(conference, status)][0] += orders
        merged[(conference, status)][1] += balance
    return [(c, s, n, b) for (c, s), (n, b) in sorted(merged.items())]


def _upsert(table: str, key: Sequence[str], columns: Sequence[str], rows: list[tuple]) -> None:
    """Insert each row, or add its columns to the row already there (PostgreSQL and SQLite)."""
    if not rows:
        return
    quote = connection.ops.quote_name
    names = ", ".join(quote(name) for name in (*key, *columns))
    marks = ", ".join(["%s"] * (len(key) + len(columns)))
    increments = ", ".join(
        f"{quote(c)} = {quote(table)}.{quote(c)} + excluded.{quote(c)}" for c in columns
    )
    # Names come from the models' metadata; values are bound as parameters.
    conflict = ", ".join(quote(k) for k in key)
    sql = (
        f"INSERT INTO {quote(table)} ({names}) VALUES ({marks}) "  # noqa: S608
        f"ON CONFLICT ({conflict}) DO UPDATE SET {increments}"
    )
    with connection.cursor() as cursor:
        for row in rows:
            cursor.execute(sql, [_adapt(value) for value in row])


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
        [row for row in rows if any(row[3:])],
    )


def add_to_order_totals(rows: list[tuple[int, str, int, Decimal]]) -> None:
    """Add (conference id, status, orders, balance) changes to ``OrderTotal``."""
    _upsert(
        OrderTotal._meta.db_table,
        ("conference_id", "status"),
        ("orders", "balance"),
        [row for row in rows if any(row[2:])],
    )
