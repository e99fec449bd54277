"""The admin index: each role's home page (unfold's DASHBOARD_CALLBACK).

Finance staff (and superusers) see the finance dashboard, the front desk its
two lists of work. The figures come from ``backoffice.services.dashboard`` and
``backoffice.services.desk_work``; this module only lays them out for unfold's
card, table and chart components.
"""

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from backoffice.admin.navigation import (
    ATTENTION_PARAMETER,
    ATTENTION_VALUE,
    BALANCE_DUE_VALUE,
    DESK_WORK_PARAMETER,
    TO_COMP_VALUE,
)
from backoffice.dates import format_moment
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
from backoffice.services.desk_work import WorkList, desk_work

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


# unfold's chart look (its defaults, which options given to the chart replace whole).
CHART_TICKS = {"color": "#9ca3af"}
CHART_BORDER = {"dash": [5, 5], "dashOffset": 2, "width": 0}


def daily_chart_options(currencies: list[str]) -> str:
    """Chart.js options (JSON): unfold's look, with amounts on the y axis.

    One currency: the axis and tooltips read as amounts in it ("USD 1,500");
    several: plain amounts, and the legend names each line's currency.
    """
    amounts: dict[str, str] = {}
    if len(currencies) == 1:
        amounts = {"style": "currency", "currency": currencies[0], "currencyDisplay": "code"}
    options = {
        "animation": False,
        "responsive": True,
        "maintainAspectRatio": False,
        "interaction": {"mode": "index", "intersect": False},
        "datasets": {"line": {"borderWidth": 2, "pointBorderWidth": 0, "pointStyle": False}},
        "plugins": {
            "legend": {
                "display": len(currencies) > 1,
                "align": "end",
                "position": "top",
                "labels": {"boxHeight": 5, "boxWidth": 5, "usePointStyle": True, **CHART_TICKS},
            },
            "tooltip": {"enabled": True},
        },
        "scales": {
            "x": {"border": CHART_BORDER, "ticks": CHART_TICKS, "grid": {"tickWidth": 0}},
            "y": {
                "beginAtZero": True,
                "border": CHART_BORDER,
                "ticks": {**CHART_TICKS, "display": True, "maxTicksLimit": 6, "format": amounts},
                "grid": {"tickWidth": 0},
            },
        },
    }
    return json.dumps(options)


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
                    format_moment(job.last_finished_at or job.last_run_at),
                    job.last_error or job.last_result or "—",
                    format_moment(job.next_run_at) if job.next_run_at else _("at the next tick"),
                ]
                for job in summary.jobs
            ],
        },
    }


def is_front_desk(request: HttpRequest) -> bool:
    """Staff who take payments at the desk and do not see the finance dashboard."""
    user = request.user
    desk = user.has_perm("backoffice.mark_comp") or user.has_perm(
        "backoffice.record_manual_payment"
    )
    return desk and user.has_perm("backoffice.view_order") and not _sees_finance(request)


def _sees_finance(request: HttpRequest) -> bool:
    """Staff who may see payments get the finance dashboard (superusers too)."""
    return request.user.has_perm("backoffice.view_payment")


def _order_link(order: Order) -> str:
    """The order's reference, linked to its page, over when it was placed."""
    return format_html(
        '<a class="font-medium text-primary-600 whitespace-nowrap" href="{}">{}</a>'
        '<div class="text-subtle text-xs whitespace-nowrap">{}</div>',
        reverse("admin:backoffice_order_change", args=[order.pk]),
        order.reference,
        format_moment(order.created_at),
    )


def _attendee(order: Order) -> str:
    """Who the order is for: its billing name, else the attendee's name."""
    return order.billing_name or order.user.get_full_name() or order.user.get_username()


def work_card(work: WorkList, *, key: str, title: str, empty: str, balance: bool) -> dict:
    """One of the desk's lists: its newest orders, its count and a link to the whole list."""
    last = _("Balance due") if balance else _("Conference")
    rows = [
        [
            _order_link(order),
            _attendee(order),
            format_amount(order.balance_sum, order.currency) if balance else order.conference.name,
        ]
        for order in work.orders
    ]
    count = ngettext("%(count)d order", "%(count)d orders", work.count) % {"count": work.count}
    link = format_html(
        '<a class="font-semibold text-primary-600" href="{}?{}={}">{}</a>',
        reverse("admin:backoffice_order_changelist"),
        DESK_WORK_PARAMETER,
        key,
        _("Open the full list (%(count)s)") % {"count": count},
    )
    return {
        "id": f"orders-{key}",
        "title": title,
        "count": count,
        "table": {"headers": [_("Order"), _("Attendee"), last], "rows": rows},
        "empty": empty,
        "link": link if work.count else "",
    }


def desk_home() -> list[dict[str, Any]]:
    """The front desk's home page: orders to comp, then orders with a balance due."""
    work = desk_work()
    return [
        work_card(
            work.to_comp,
            key=TO_COMP_VALUE,
            title=_("Orders to comp"),
            empty=_("No order is waiting to be comped."),
            balance=False,
        ),
        work_card(
            work.balance_due,
            key=BALANCE_DUE_VALUE,
            title=_("Orders with a balance due"),
            empty=_("No pending order owes money."),
            balance=True,
        ),
    ]


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """Add the finance figures to the admin index for staff who may see payments."""
    context["failed_events"] = failed_events_notice(request)
    context["attention"] = attention_notice(request)
    background = background_summary()
    context["workers_down"] = workers_down_notice(background)
    if request.user.has_perm("backoffice.view_scheduledjob"):
        context["background"] = background_card(background)
    if is_front_desk(request):
        context["desk"] = desk_home()
    if not _sees_finance(request):
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
        "daily_chart_options": daily_chart_options(list(summary.daily.by_currency)),
        "has_daily": bool(summary.daily.by_currency),
    }
    return context
