"""Callbacks the unfold settings point at: sidebar permissions and the environment badge."""

from django.conf import settings
from django.http import HttpRequest
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


def can_view_tasks(request: HttpRequest) -> bool:
    """Sidebar: the background task queue (django-tasks-db's list)."""
    return request.user.has_perm("django_tasks_database.view_dbtaskresult")
