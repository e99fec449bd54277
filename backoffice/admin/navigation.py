"""Callbacks the unfold settings point at: sidebar permissions and the environment badge."""

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _


def environment(request: HttpRequest) -> list[str] | None:
    """Label the header "Development" while DEBUG is on, so no one mistakes it for production."""
    if settings.DEBUG:
        return [_("Development"), "warning"]
    return None


def can_view_orders(request: HttpRequest) -> bool:
    """Sidebar: the Orders link."""
    return request.user.has_perm("backoffice.view_order")


def can_view_conferences(request: HttpRequest) -> bool:
    """Sidebar: the Conferences link."""
    return request.user.has_perm("backoffice.view_conference")


def can_view_users(request: HttpRequest) -> bool:
    """Sidebar: the staff users link."""
    return request.user.has_perm("auth.view_user")


def can_view_groups(request: HttpRequest) -> bool:
    """Sidebar: the groups link."""
    return request.user.has_perm("auth.view_group")


def can_view_payments(request: HttpRequest) -> bool:
    """Sidebar: the Payments ledger link."""
    return request.user.has_perm("backoffice.view_payment")


def can_view_refunds(request: HttpRequest) -> bool:
    """Sidebar: the Refunds ledger link."""
    return request.user.has_perm("backoffice.view_refund")


def can_view_disputes(request: HttpRequest) -> bool:
    """Sidebar: the Disputes ledger link."""
    return request.user.has_perm("backoffice.view_dispute")


# The orders list's "Needs attention" preset (backoffice.admin.order_filters.NeedsAttentionFilter).
ATTENTION_PARAMETER = "attention"
ATTENTION_VALUE = "yes"


# The orders list's desk presets (backoffice.admin.order_filters.DeskWorkFilter), linked from
# the desk's home page: pending orders to comp, and pending orders with a balance due.
DESK_WORK_PARAMETER = "todo"
TO_COMP_VALUE = "comp"
BALANCE_DUE_VALUE = "balance"


def _on_orders_list(request: HttpRequest) -> bool:
    """Whether the request is for the orders list (or an order's pages)."""
    return request.path.startswith(reverse("admin:backoffice_order_changelist"))


def _attention_preset(request: HttpRequest) -> bool:
    """Whether the orders list is showing its "Needs attention" preset."""
    return request.GET.get(ATTENTION_PARAMETER) == ATTENTION_VALUE


def orders_active(request: HttpRequest) -> bool:
    """Sidebar: Orders is highlighted on the orders pages, except the Needs attention preset."""
    return _on_orders_list(request) and not _attention_preset(request)


def attention_active(request: HttpRequest) -> bool:
    """Sidebar: Needs attention is highlighted on its preset of the orders list."""
    return _on_orders_list(request) and _attention_preset(request)


def attention_badge(request: HttpRequest) -> str:
    """Sidebar: how many orders need attention (shown only to staff who may see orders)."""
    from backoffice.services.attention import recent_attention_count  # models load after settings

    count = recent_attention_count()
    return f"{count:,}" if count else ""


def can_view_tasks(request: HttpRequest) -> bool:
    """Sidebar: the background task queue (django-tasks-db's list)."""
    return request.user.has_perm("django_tasks_database.view_dbtaskresult")


def can_view_scheduled_jobs(request: HttpRequest) -> bool:
    """Sidebar: the periodic jobs' schedule rows."""
    return request.user.has_perm("backoffice.view_scheduledjob")


def can_see_exports(request: HttpRequest) -> bool:
    """Sidebar: the Exports link (background exports)."""
    from backoffice.services.export_jobs import may_see_exports

    return may_see_exports(request.user)
