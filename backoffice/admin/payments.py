"""The payments ledger: a read-only list with filters, search and exports."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.decorators import display

from backoffice.admin.date_filters import InclusiveDateRangeFilter
from backoffice.admin.exporting import LedgerExportMixin
from backoffice.exports import PaymentResource, amount_for_export, attendee_email
from backoffice.models import Payment
from backoffice.services.ledger import search_payments

STATUS_COLOURS = {
    Payment.Status.PENDING: "info",
    Payment.Status.PROCESSING: "info",
    Payment.Status.SUCCEEDED: "success",
    Payment.Status.FAILED: "danger",
    Payment.Status.CANCELED: "warning",
    Payment.Status.REFUNDED: "warning",
}


@admin.register(Payment)
class PaymentAdmin(LedgerExportMixin, ModelAdmin):
    """Payments as finance sees them; a ledger nobody edits here (superusers included)."""

    resource_classes = [PaymentResource]
    list_display = (
        "created",
        "order_link",
        "attendee",
        "conference",
        "method",
        "status_label",
        "amount_display",
        "currency",
        "reference",
        "recorded_by",
        "stripe_payment_intent_id",
    )
    list_display_links = None
    list_select_related = ("order__conference", "order__user", "created_by")
    list_filter = (
        ("order__conference", RelatedDropdownFilter),
        ("method", ChoicesDropdownFilter),
        ("status", ChoicesDropdownFilter),
        ("created_at", InclusiveDateRangeFilter),
    )
    list_filter_submit = True
    search_fields = (
        "order__reference",
        "order__billing_email",
        "order__user__email",
        "reference",
        "stripe_payment_intent_id",
        "stripe_charge_id",
    )
    search_help_text = "Order reference, attendee email, payment reference or Stripe id."
    list_per_page = 50
    # A COUNT(*) over the whole ledger on every page view is wasted at a million rows.
    show_full_result_count = False
    ordering = ("-created_at", "-id")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Exact, indexed lookups for pasted identifiers; substring search for the rest."""
        found = search_payments(queryset, search_term)
        if found is not None:
            return found, False
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Payments are recorded by the payment services, never typed in here."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Payment | None = None) -> bool:
        """The ledger is immutable in the admin."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Payment | None = None) -> bool:
        """The ledger is immutable in the admin."""
        return False

    @display(description="Date", ordering="created_at")
    def created(self, payment: Payment) -> str:
        """When the payment was recorded, in the site's time zone."""
        moment = date_format(timezone.localtime(payment.created_at), "Y-m-d H:i")
        return format_html('<span class="whitespace-nowrap">{}</span>', moment)

    @display(description="Order", ordering="order__reference")
    def order_link(self, payment: Payment) -> str:
        """The order's reference, linking to the order when its admin page exists."""
        try:
            url = reverse("admin:backoffice_order_change", args=[payment.order_id])
        except NoReverseMatch:
            return payment.order.reference
        return format_html(
            '<a class="text-primary-600 whitespace-nowrap" href="{}">{}</a>',
            url,
            payment.order.reference,
        )

    @display(description="Attendee")
    def attendee(self, payment: Payment) -> str:
        """The attendee's email (billing email first)."""
        return attendee_email(payment.order)

    @display(description="Conference", ordering="order__conference__name")
    def conference(self, payment: Payment) -> str:
        """The order's conference."""
        return payment.order.conference.name

    @display(
        description="Status",
        ordering="status",
        label={str(status.label): colour for status, colour in STATUS_COLOURS.items()},
    )
    def status_label(self, payment: Payment) -> str:
        """The status as a coloured label."""
        return payment.get_status_display()

    @display(description="Amount", ordering="amount")
    def amount_display(self, payment: Payment) -> str:
        """The amount in the conference's currency."""
        currency = payment.order.conference.currency
        return f"{amount_for_export(payment.amount, currency):,}"

    @display(description="Currency")
    def currency(self, payment: Payment) -> str:
        """The conference's currency code."""
        return payment.order.conference.currency

    @display(description="Recorded by", ordering="created_by__username")
    def recorded_by(self, payment: Payment) -> str:
        """The staff member who recorded the payment, or Stripe for a card payment."""
        return payment.actor_name
