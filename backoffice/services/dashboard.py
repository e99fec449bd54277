"""Selectors for the finance dashboard: a few hundred maintained total rows, whatever the size.

The figures come from ``LedgerTotal`` and ``OrderTotal``, which every ledger
write keeps in step (``backoffice.services.ledger_totals``) and
``check_ledger_totals`` recomputes from the ledger.

Revenue collected is what stayed with the organiser: succeeded payments minus
what was refunded on them and what lost disputes took back (a payment fully
refunded counts in the gross and in the refunds, so it nets to zero). A lost
dispute counts as refunded, exactly like a refund of its amount.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import DecimalField, F, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from backoffice.models import (
    TOTAL,
    ZERO,
    LedgerTotal,
    Order,
    OrderTotal,
    StripeEvent,
)
from backoffice.services.background import oldest_queued_task_age
from backoffice.services.schedule import JobStatus, job_statuses
from backoffice.services.worker_liveness import workers_alive

DAILY_DAYS = 30


def _money(expression: object) -> Coalesce:
    """A money sum that is 0.00, not NULL, over no rows."""
    return Coalesce(expression, Value(ZERO), output_field=DecimalField(**TOTAL))


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
    """Gross and refunded amounts per conference and method, from the maintained totals."""
    rows = (
        LedgerTotal.objects.values("conference__name", "conference__currency", "method")
        .annotate(
            payments=Sum("payments"),
            gross=_money(Sum("collected")),
            refunded=_money(Sum("refunded")),
        )
        .filter(payments__gt=0)
        .order_by("conference__name", "method")
    )
    return [
        RevenueByMethod(
            conference=row["conference__name"],
            currency=row["conference__currency"],
            method=row["method"],
            gross=row["gross"],
            refunded=row["refunded"],
        )
        for row in rows
    ]


def orders_by_status() -> dict[str, int]:
    """How many orders are in each status, every status present, from the maintained totals."""
    counts = dict.fromkeys(Order.Status.values, 0)
    for row in OrderTotal.objects.order_by().values("status").annotate(n=Sum("orders")):
        counts[row["status"]] = row["n"]
    return counts


def outstanding_on_pending_orders() -> list[Outstanding]:
    """Balance still due on pending orders, per conference, from the maintained totals.

    An overpaid order owes nothing; it never offsets what others owe.
    """
    rows = (
        OrderTotal.objects.filter(status=Order.Status.PENDING, orders__gt=0)
        .values("conference__name", "conference__currency", "orders", "balance")
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
    """Net revenue collected each of the last ``days`` days, per currency (maintained totals)."""
    zone = timezone.get_default_timezone()
    today = today or timezone.localdate(timezone=zone)
    first = today - datetime.timedelta(days=days - 1)
    rows = (
        LedgerTotal.objects.filter(day__gte=first, day__lte=today)
        .values("day", "conference__currency")
        .annotate(net=_money(Sum(F("collected") - F("refunded"))))
        .order_by("day")
    )
    calendar = [first + datetime.timedelta(days=offset) for offset in range(days)]
    index = {day: position for position, day in enumerate(calendar)}
    by_currency: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * days)
    for row in rows:
        by_currency[row["conference__currency"]][index[row["day"]]] = row["net"]
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
