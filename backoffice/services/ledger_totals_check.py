"""Recompute the maintained totals from the ledger, compare them, and repair them.

What ``manage.py check_ledger_totals`` runs. A full scan of payments and
orders: seconds at a million payments, for an operator or a nightly check,
never for a page.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Case, Count, DecimalField, F, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce, Greatest, TruncDate
from django.utils import timezone

from backoffice.models import (
    MONEY,
    NET_OF_REFUNDS,
    ZERO,
    Conference,
    LedgerTotal,
    Order,
    OrderTotal,
    Payment,
)
from backoffice.money import format_amount
from backoffice.services.ledger_totals import COLLECTED_STATUSES

# What went back of a collected payment: all of it once REFUNDED, else its
# refunds; plus what its lost disputes took back (money out like a refund).
REFUNDED_PART = Case(
    When(status=Payment.Status.REFUNDED, then=F("amount")),
    default=F("refunded_amount"),
    output_field=DecimalField(**MONEY),
) + F("lost_dispute_amount")

CENT = Decimal("0.01")
LedgerKey = tuple[int, date, str]
OrderKey = tuple[int, str]
NOTHING = (0, ZERO, ZERO)


@dataclass(frozen=True)
class TotalDifference:
    """One total row whose stored figures differ from the ledger's."""

    conference: str
    currency: str
    key: str
    stored: str
    computed: str

    def __str__(self) -> str:
        return (
            f"{self.conference} ({self.currency}) {self.key}: "
            f"stored {self.stored}; computed {self.computed}"
        )


def computed_ledger_totals() -> dict[LedgerKey, tuple[int, Decimal, Decimal]]:
    """(payments, collected, refunded) per conference, local day and method, from the ledger."""
    zone = timezone.get_default_timezone()
    rows = (
        Payment.objects.filter(status__in=COLLECTED_STATUSES)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("order__conference_id", "day", "method")
        .annotate(n=Count("id"), collected=Sum("amount"), refunded=Sum(REFUNDED_PART))
        .order_by()
    )
    return {
        (row["order__conference_id"], row["day"], row["method"]): (
            row["n"],
            _cents(row["collected"]),
            _cents(row["refunded"]),
        )
        for row in rows
    }


def _cents(amount: Decimal) -> Decimal:
    """A sum to the cent (SQLite sums decimals as floats: 9.90000000000001)."""
    return amount.quantize(CENT)


def stored_ledger_totals() -> dict[LedgerKey, tuple[int, Decimal, Decimal]]:
    """The ``LedgerTotal`` rows as they are."""
    return {
        (row.conference_id, row.day, row.method): (row.payments, row.collected, row.refunded)
        for row in LedgerTotal.objects.all()
    }


def _pending_balance() -> Greatest:
    """A pending order's balance due, never below zero (one correlated subquery per order)."""
    paid = (
        Payment.objects.filter(order=OuterRef("pk"), status__in=COLLECTED_STATUSES)
        .order_by()
        .values("order")
        .annotate(s=Sum(NET_OF_REFUNDS))
        .values("s")
    )
    money = DecimalField(**MONEY)
    return Greatest(
        F("total") - Coalesce(Subquery(paid), Value(ZERO), output_field=money),
        Value(ZERO),
        output_field=money,
    )


def computed_order_totals() -> dict[OrderKey, tuple[int, Decimal]]:
    """(orders, balance due) per conference and status, from the orders and the ledger."""
    totals = {
        (row["conference_id"], row["status"]): (row["n"], ZERO)
        for row in Order.objects.values("conference_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    }
    pending = (
        Order.objects.filter(status=Order.Status.PENDING)
        .annotate(due=_pending_balance())
        .values("conference_id")
        .annotate(balance=Sum("due"))
        .order_by()
    )
    for row in pending:
        key = (row["conference_id"], Order.Status.PENDING.value)
        totals[key] = (totals[key][0], _cents(row["balance"]))
    return totals


def stored_order_totals() -> dict[OrderKey, tuple[int, Decimal]]:
    """The ``OrderTotal`` rows as they are."""
    return {
        (row.conference_id, row.status): (row.orders, row.balance)
        for row in OrderTotal.objects.all()
    }


def _ledger_text(figures: tuple[int, Decimal, Decimal], currency: str) -> str:
    """'3 payments, 120.00 USD collected, 10.00 USD refunded'."""
    collected, refunded = (format_amount(amount, currency) for amount in figures[1:])
    return f"{figures[0]} payments, {collected} collected, {refunded} refunded"


def _orders_text(figures: tuple[int, Decimal], currency: str) -> str:
    """'12 orders, 900.00 USD due'."""
    return f"{figures[0]} orders, {format_amount(figures[1], currency)} due"


def find_differences() -> list[TotalDifference]:
    """Every total row whose stored figures differ from a full recomputation (missing = zero)."""
    conferences = {c.pk: c for c in Conference.objects.all()}
    tables = [
        (stored_ledger_totals(), computed_ledger_totals(), NOTHING, _ledger_text,
         lambda key: f"{key[1].isoformat()} {key[2]}"),
        (stored_order_totals(), computed_order_totals(), (0, ZERO), _orders_text,
         lambda key: f"{key[1]} orders"),
    ]  # fmt: skip
    differences = []
    for stored, computed, missing, as_text, key_text in tables:
        for key in sorted(stored.keys() | computed.keys()):
            old, new = stored.get(key, missing), computed.get(key, missing)
            if old != new:
                conference = conferences[key[0]]
                differences.append(
                    TotalDifference(
                        conference=conference.name,
                        currency=conference.currency,
                        key=key_text(key),
                        stored=as_text(old, conference.currency),
                        computed=as_text(new, conference.currency),
                    )
                )
    return differences


def _recount_rows() -> None:
    """Set every payment's and order's counted state to what it counts for now."""
    collected = Payment.objects.filter(status__in=COLLECTED_STATUSES)
    collected.exclude(Q(counted_collected=F("amount")) & Q(counted_refunded=REFUNDED_PART)).update(
        counted_collected=F("amount"), counted_refunded=REFUNDED_PART
    )
    Payment.objects.exclude(status__in=COLLECTED_STATUSES).exclude(
        counted_collected=None, counted_refunded=ZERO
    ).update(counted_collected=None, counted_refunded=ZERO)
    Order.objects.filter(status=Order.Status.PENDING).update(
        counted_status=F("status"), counted_balance=_pending_balance()
    )
    Order.objects.exclude(status=Order.Status.PENDING).exclude(
        counted_status=F("status"), counted_balance=ZERO
    ).update(counted_status=F("status"), counted_balance=ZERO)


@transaction.atomic
def repair_totals() -> list[TotalDifference]:
    """Rewrite the totals from the ledger and every row's counted state; return what differed.

    On PostgreSQL the totals are locked while it runs: ledger writes wait for
    it (run it when the desk is quiet: a write caught half-way may deadlock
    and be retried). Recomputes, so the totals are right even where nothing
    was reported (a row's counted state that had drifted).
    """
    if connection.vendor == "postgresql":
        tables = f"{LedgerTotal._meta.db_table}, {OrderTotal._meta.db_table}"
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
    differences = find_differences()
    _recount_rows()
    LedgerTotal.objects.all().delete()
    LedgerTotal.objects.bulk_create(
        (
            LedgerTotal(
                conference_id=conference,
                day=day,
                method=method,
                payments=payments,
                collected=collected,
                refunded=refunded,
            )
            for (conference, day, method), (payments, collected, refunded) in sorted(
                computed_ledger_totals().items()
            )
        ),
        batch_size=1000,
    )
    OrderTotal.objects.all().delete()
    OrderTotal.objects.bulk_create(
        OrderTotal(conference_id=conference, status=status, orders=orders, balance=balance)
        for (conference, status), (orders, balance) in sorted(computed_order_totals().items())
    )
    return differences
