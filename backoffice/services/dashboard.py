"""Selectors for the finance dashboard: a fixed number of aggregate queries, whatever the size.

Revenue collected is what stayed with the organiser: succeeded payments minus
what was refunded on them and what lost disputes took back (a payment fully
refunded counts in the gross and in the refunds, so it nets to zero). A lost
dispute counts as refunded, exactly like a refund of its amount.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Case, Count, DecimalField, F, Sum, Value, When
from django.db.models.functions import Coalesce, Greatest, TruncDate
from django.utils import timezone

from backoffice.models import (
    MONEY,
    MONEY_HELD_STATUSES,
    NET_OF_REFUNDS,
    ZERO,
    Order,
    Payment,
    StripeEvent,
)
from backoffice.services.background import oldest_queued_task_age
from backoffice.services.schedule import JobStatus, job_statuses
from backoffice.services.worker_liveness import workers_alive

COLLECTED_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED)
DAILY_DAYS = 30


def _money(expression: object) -> Coalesce:
    """A money sum that is 0.00, not NULL, over no rows."""
    return Coalesce(expression, Value(ZERO), output_field=DecimalField(**MONEY))


# What went back of a payment: all of it once REFUNDED, else its partial refunds;
# plus what its lost disputes took back (money out like a refund).
REFUNDED_PART = Case(
    When(status=Payment.Status.REFUNDED, then=F("amount")),
    default=F("refunded_amount"),
    output_field=DecimalField(**MONEY),
) + F("lost_dispute_amount")


@dataclass(frozen=True)
class RevenueByMethod:
    """Money collected at one conference through one payment method."""

    conference: str
    currency: str
    method: str
    gross: Decimal
    refunded: Decimal

    @property
    def net(self) -> Decimal:
        """Collected minus refunded."""
        return self.gross - self.refunded


@dataclass(frozen=True)
class Outstanding:
    """What pending orders of one conference still owe."""

    conference: str
    currency: str
    orders: int
    balance: Decimal


@dataclass
class DailyRevenue:
    """Net collected revenue per day (site's time zone) and currency, oldest day first."""

    days: list[datetime.date]
    by_currency: dict[str, list[Decimal]] = field(default_factory=dict)


@dataclass
class FinanceSummary:
    """Everything the dashboard shows."""

    revenue: list[RevenueByMethod]
    orders_by_status: dict[str, int]
    outstanding: list[Outstanding]
    daily: DailyRevenue


def revenue_by_conference_and_method() -> list[RevenueByMethod]:
    """Gross and refunded amounts per conference and method (one query)."""
    rows = (
        Payment.objects.filter(status__in=COLLECTED_STATUSES)
        .values("order__conference__name", "order__conference__currency", "method")
        .annotate(gross=_money(Sum("amount")), refunded=_money(Sum(REFUNDED_PART)))
        .order_by("order__conference__name", "method")
    )
    return [
        RevenueByMethod(
            conference=row["order__conference__name"],
            currency=row["order__conference__currency"],
            method=row["method"],
            gross=row["gross"],
            refunded=row["refunded"],
        )
        for row in rows
    ]


def orders_by_status() -> dict[str, int]:
    """How many orders are in each status, every status present (one query)."""
    counts = dict.fromkeys(Order.Status.values, 0)
    for row in Order.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def outstanding_on_pending_orders() -> list[Outstanding]:
    """Balance still due on pending orders, per conference (one query).

    An overpaid order owes nothing; it never offsets what others owe.
    """
    rows = (
        Order.objects.filter(status=Order.Status.PENDING)
        .with_amounts()
        .values("conference__name", "conference__currency")
        .annotate(
            orders=Count("id"),
            balance=_money(Sum(Greatest(F("balance_sum"), Value(ZERO)))),
        )
        .order_by("conference__name")
    )
    return [
        Outstanding(
            conference=row["conference__name"],
            currency=row["conference__currency"],
            orders=row["orders"],
            balance=row["balance"],
        )
        for row in rows
    ]


def daily_collected_revenue(
    *, today: datetime.date | None = None, days: int = DAILY_DAYS
) -> DailyRevenue:
    """Net revenue collected each of the last ``days`` days, per currency (one query)."""
    zone = timezone.get_default_timezone()
    today = today or timezone.localdate(timezone=zone)
    first = today - datetime.timedelta(days=days - 1)
    start = datetime.datetime.combine(first, datetime.time.min, tzinfo=zone)
    end = datetime.datetime.combine(
        today + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone
    )
    rows = (
        Payment.objects.filter(created_at__gte=start, created_at__lt=end)
        .filter(status__in=MONEY_HELD_STATUSES)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day", "order__conference__currency")
        .annotate(net=_money(Sum(NET_OF_REFUNDS)))
        .order_by("day")
    )
    calendar = [first + datetime.timedelta(days=offset) for offset in range(days)]
    index = {day: position for position, day in enumerate(calendar)}
    by_currency: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * days)
    for row in rows:
        by_currency[row["order__conference__currency"]][index[row["day"]]] = row["net"]
    return DailyRevenue(days=calendar, by_currency=dict(sorted(by_currency.items())))


def failed_stripe_events() -> int:
    """How many stored Stripe events failed when last applied (one query).

    The same rows as the Stripe events list filtered on "With an error".
    """
    return StripeEvent.objects.exclude(last_error="").count()


def finance_summary(*, today: datetime.date | None = None) -> FinanceSummary:
    """The dashboard's figures in four aggregate queries."""
    return FinanceSummary(
        revenue=revenue_by_conference_and_method(),
        orders_by_status=orders_by_status(),
        outstanding=outstanding_on_pending_orders(),
        daily=daily_collected_revenue(today=today),
    )


# The queue's oldest due task waiting longer than this means no worker is taking tasks.
QUEUE_WARNING_SECONDS = 5 * 60


@dataclass(frozen=True)
class BackgroundSummary:
    """The workers at a glance: the queue's wait, live workers, and each periodic job."""

    oldest_queued_seconds: float | None
    workers_alive: int
    jobs: list[JobStatus]

    @property
    def workers_down(self) -> bool:
        """A task has waited longer than a worker would ever let it."""
        return (self.oldest_queued_seconds or 0) > QUEUE_WARNING_SECONDS


def background_summary() -> BackgroundSummary:
    """The oldest queued task's age, the workers seen lately and the jobs' last runs."""
    return BackgroundSummary(
        oldest_queued_seconds=oldest_queued_task_age(),
        workers_alive=workers_alive(),
        jobs=job_statuses(),
    )
