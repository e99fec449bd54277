"""What the Payments and Refunds lists share: read-only ledger admins and their cells."""

import datetime
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from unfold.decorators import display

from backoffice.admin.model_admin import ModelAdmin
from backoffice.admin.pagination import LargeListMixin
from backoffice.dates import NO_DATE, format_moment
from backoffice.models import Order, Payment, Refund


def local_moment(moment: datetime.datetime | None) -> str:
    """A row's date and time ("29 Nov 2026, 13:30 CET", site's zone), never wrapped; or a dash."""
    if moment is None:
        return NO_DATE
    return format_html('<span class="whitespace-nowrap">{}</span>', format_moment(moment))


def order_link(order: Order) -> str:
    """The order's reference, linking to the order when its admin page exists."""
    try:
        url = reverse("admin:backoffice_order_change", args=[order.pk])
    except NoReverseMatch:
        return order.reference
    return format_html(
        '<a class="text-primary-600 whitespace-nowrap" href="{}">{}</a>', url, order.reference
    )


def clipped(text: str, *, wide: bool = False) -> str:
    """A long text cut short in its cell (CSS), whole in its tooltip; empty stays empty."""
    if not text:
        return ""
    css = "cell-clip cell-clip-wide" if wide else "cell-clip"
    return format_html('<span class="{}" title="{}">{}</span>', css, text, text)


def two_lines(first: str, second: str) -> str:
    """A list cell of two stacked values (either may be empty), the second one muted."""
    return format_html(
        "{}{}",
        format_html('<span class="block">{}</span>', first) if first else "",
        format_html('<span class="block text-base-500">{}</span>', second) if second else "",
    )


class ReadOnlyLedgerAdmin(LargeListMixin, ModelAdmin):
    """A ledger list nobody edits here (superusers included), searched through selectors.

    ``search_selector(queryset, term)`` returns the rows an exact, indexed lookup
    finds for a pasted identifier, or None to fall back to ``text_selector``'s
    substring search (through the orders' trigram indexes, services/search.py).
    """

    search_selector: Callable[[QuerySet, str], QuerySet | None]
    text_selector: Callable[[QuerySet, str], QuerySet]
    list_display_links = None
    list_filter_submit = True
    list_per_page = 50
    ordering = ("-created_at", "-id")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Exact, indexed lookups for pasted identifiers; indexed substring search for the rest."""
        found = self.search_selector(queryset, search_term)
        if found is None:
            found = self.text_selector(queryset, search_term)
        return found, False

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Ledger rows are written by the payment services, never typed in here."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The ledger is immutable in the admin."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The ledger is immutable in the admin."""
        return False

    @display(description="Date", ordering="created_at")
    def created(self, row: Payment | Refund) -> str:
        """When the row was recorded, in the site's time zone."""
        return local_moment(row.created_at)

    @display(description="Recorded by", ordering="created_by__username")
    def recorded_by(self, row: Payment | Refund) -> str:
        """The staff member who recorded the row, or Stripe."""
        return row.actor_name
