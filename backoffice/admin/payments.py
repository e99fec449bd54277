"""The payments ledger: a read-only list with filters, search and exports."""

from django.contrib import admin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.decorators import display

from backoffice.admin.date_filters import InclusiveDateRangeFilter
from backoffice.admin.exporting import LedgerExportMixin
from backoffice.admin.ledger import ReadOnlyLedgerAdmin, order_link
from backoffice.exports import PaymentResource, amount_for_export, attendee_email
from backoffice.models import Payment
from backoffice.services.ledger import search_payments
from backoffice.services.search import search_payments_text

STATUS_COLOURS = {
    Payment.Status.PENDING: "info",
    Payment.Status.PROCESSING: "info",
    Payment.Status.SUCCEEDED: "success",
    Payment.Status.FAILED: "danger",
    Payment.Status.CANCELED: "warning",
    Payment.Status.REFUNDED: "warning",
}


@admin.register(Payment)
class PaymentAdmin(LedgerExportMixin, ReadOnlyLedgerAdmin):
    """Payments as finance sees them; a ledger nobody edits here (superusers included)."""

    resource_classes = [PaymentResource]
    list_display = (
        "created",
        "order_link",
        "attendee",
        "conference",
        "method",
        "channel",
        "status_label",
        "amount_display",
        "currency",
        "reference",
        "recorded_by",
        "stripe_payment_intent_id",
    )
    list_select_related = ("order__conference", "order__user", "created_by")
    list_filter = (
        ("order__conference", RelatedDropdownFilter),
        ("method", ChoicesDropdownFilter),
        ("channel", ChoicesDropdownFilter),
        ("status", ChoicesDropdownFilter),
        ("created_at", InclusiveDateRangeFilter),
    )
    search_fields = (
        "order__reference",
        "order__billing_email",
        "order__user__email",
        "reference",
        "stripe_payment_intent_id",
        "stripe_charge_id",
    )
    search_help_text = "Order reference, attendee email, payment reference or Stripe id."
    search_selector = staticmethod(search_payments)
    text_selector = staticmethod(search_payments_text)

    @display(description="Order", ordering="order__reference")
    def order_link(self, payment: Payment) -> str:
        """The order's reference, linking to the order when its admin page exists."""
        return order_link(payment.order)

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
