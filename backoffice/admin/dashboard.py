"""The admin index as a finance dashboard (unfold's DASHBOARD_CALLBACK).

The figures come from ``backoffice.services.dashboard``; this module only lays
them out for unfold's card, table and chart components.
"""

import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from backoffice.admin.navigation import ATTENTION_PARAMETER, ATTENTION_VALUE
from backoffice.models import ZERO, Order, Payment
from backoffice.money import format_amount, quantum
from backoffice.services.attention import attention_count
from backoffice.services.dashboard import (
    BackgroundSummary,
    FinanceSummary,
    background_summary,
    failed_stripe_events,
    finance_summary,
)

CHART_COLOURS = ("var(--color-primary-600)", "#0ea5e9", "#f59e0b", "#10b981", "#ef4444")


def _totals(pairs: list[tuple[str, Decimal]]) -> str:
    """Amounts summed per currency, e.g. '1,200.00 USD · 50,000 JPY' (or '0')."""
    sums: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for currency, amount in pairs:
        sums[currency] += amount
    return " · ".join(format_amount(sums[c], c) for c in sorted(sums)) or "0"


def revenue_table(summary: FinanceSummary) -> dict[str, Any]:
    """Net revenue per conference, one column per payment method."""
    methods = list(Payment.Method)
    per_conference: dict[tuple[str, str], dict[str, Decimal]] = {}
    refunded: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for line in summary.revenue:
        key = (line.conference, line.currency)
        per_conference.setdefault(key, {})[line.method] = line.net
        refunded[key] += line.refunded
    rows = []
    for (conference, currency), nets in per_conference.items():
        rows.append(
            [conference]
            + [format_amount(nets.get(method, ZERO), currency) for method in methods]
            + [
                format_amount(refunded[(conference, currency)], currency),
                format_amount(sum(nets.values(), ZERO), currency),
            ]
        )
    return {
        "headers": ["Conference"]
        + [str(method.label) for method in methods]
        + ["Refunded", "Net collected"],
        "rows": rows,
    }


def orders_table(summary: FinanceSummary) -> dict[str, Any]:
    """Order counts per status."""
    return {
        "headers": ["Status", "Orders"],
        "rows": [
            [str(Order.Status(status).label), f"{count:,}"]
            for status, count in summary.orders_by_status.items()
        ],
    }


def outstanding_table(summary: FinanceSummary) -> dict[str, Any]:
    """Balance due on pending orders per conference."""
    return {
        "headers": ["Conference", "Pending orders", "Balance due"],
        "rows": [
            [line.conference, f"{line.orders:,}", format_amount(line.balance, line.currency)]
            for line in summary.outstanding
        ],
    }


def daily_chart(summary: FinanceSummary) -> str:
    """Chart.js data (JSON) for unfold's line chart: one line per currency."""
    daily = summary.daily
    datasets = [
        {
            "label": currency,
            "data": [str(amount.quantize(quantum(currency))) for amount in amounts],
            "borderColor": CHART_COLOURS[index % len(CHART_COLOURS)],
        }
        for index, (currency, amounts) in enumerate(daily.by_currency.items())
    ]
    labels = [date_format(day, "MONTH_DAY_FORMAT") for day in daily.days]  # "18 Nov"
    return json.dumps({"labels": labels, "datasets": datasets})


def failed_events_notice(request: HttpRequest) -> str:
    """How many Stripe events failed, linked to their list, for staff who may see events."""
    if not request.user.has_perm("backoffice.view_stripeevent"):
        return ""
    count = failed_stripe_events()
    if not count:
        return ""
    text = ngettext(
        "%(count)d Stripe event could not be applied.",
        "%(count)d Stripe events could not be applied.",
        count,
    ) % {"count": count}
    return format_html(
        '{} <a class="font-semibold underline" href="{}?error=yes">{}</a>',
        text,
        reverse("admin:backoffice_stripeevent_changelist"),
        _("Review them"),
    )


def attention_notice(request: HttpRequest) -> str:
    """How many orders need attention, linked to that list, for staff who may see orders."""
    if not request.user.has_perm("backoffice.view_order"):
        return ""
    count = attention_count()
    if not count:
        return ""
    text = ngettext(
        "%(count)d order needs attention.",
        "%(count)d orders need attention.",
        count,
    ) % {"count": count}
    return format_html(
        '{} <a class="font-semibold underline" href="{}?{}={}">{}</a>',
        text,
        reverse("admin:backoffice_order_changelist"),
        ATTENTION_PARAMETER,
        ATTENTION_VALUE,
        _("See why"),
    )


def _when(moment: datetime | None) -> str:
    """A moment in the site's time zone, or a dash."""
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT") if moment else "—"


def _wait(seconds: float | None) -> str:
    """The oldest queued task's wait: 'none waiting', '42 s' or '7 min'."""
    if seconds is None:
        return _("none waiting")
    return f"{int(seconds)} s" if seconds < 120 else f"{int(seconds // 60)} min"


def workers_down_notice(summary: BackgroundSummary) -> str:
    """A warning for every staff user when queued tasks wait longer than workers allow."""
    if not summary.workers_down:
        return ""
    return _(
        "Background workers seem to be down: the oldest queued task has waited %(wait)s "
        "(e-mails and scheduled jobs wait with it). Start or restart "
        "`python manage.py run_worker`."
    ) % {"wait": _wait(summary.oldest_queued_seconds)}


def background_card(summary: BackgroundSummary) -> dict[str, Any]:
    """The queue's wait, live workers, and a row per periodic job with its last run."""
    return {
        "oldest_queued": _wait(summary.oldest_queued_seconds),
        "workers_alive": summary.workers_alive,
        "jobs_table": {
            "headers": ["Job", "Every", "Last run", "Result", "Next run"],
            "rows": [
                [
                    job.name,
                    str(job.interval),
                    _when(job.last_finished_at or job.last_run_at),
                    job.last_error or job.last_result or "—",
                    _when(job.next_run_at) if job.next_run_at else _("at the next tick"),
                ]
                for job in summary.jobs
            ],
        },
    }


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """Add the finance figures to the admin index for staff who may see payments."""
    context["failed_events"] = failed_events_notice(request)
    context["attention"] = attention_notice(request)
    background = background_summary()
    context["workers_down"] = workers_down_notice(background)
    if request.user.has_perm("backoffice.view_scheduledjob"):
        context["background"] = background_card(background)
    if not request.user.has_perm("backoffice.view_payment"):
        return context
    summary = finance_summary()
    context["finance"] = {
        "collected": _totals([(line.currency, line.net) for line in summary.revenue]),
        "refunded": _totals([(line.currency, line.refunded) for line in summary.revenue]),
        "outstanding": _totals([(line.currency, line.balance) for line in summary.outstanding]),
        "pending_orders": f"{summary.orders_by_status.get(Order.Status.PENDING, 0):,}",
        "revenue_table": revenue_table(summary),
        "orders_table": orders_table(summary),
        "outstanding_table": outstanding_table(summary),
        "daily_chart": daily_chart(summary),
        "has_daily": bool(summary.daily.by_currency),
    }
    return context
