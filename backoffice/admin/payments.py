"""The payments ledger: a read-only list with filters, search and exports."""

from django.contrib import admin
from django.utils.html import format_html
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.decorators import display

from backoffice.admin.date_filters import InclusiveDateRangeFilter
from backoffice.admin.exporting import LedgerExportMixin
from backoffice.admin.ledger import ReadOnlyLedgerAdmin, clipped, order_link, two_lines
from backoffice.admin.stripe_links import conference_livemode, stripe_link
from backoffice.exports import PaymentResource, attendee_email
from backoffice.models import Payment
from backoffice.money import format_amount
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
    # The file has a row per payment, then one per refund and lost dispute of it.
    export_row_units = ("payment", "payments")
    export_rows_note = "each followed by its refunds and lost disputes as rows of their own"
    # Nine columns that fit a 1440 px window beside the sidebar: the attendee under the
    # order, the channel under the method, the currency with the amount, the Stripe id with
    # the reference (long ones cut short, whole in their tooltip).
    list_display = (
        "created",
        "order_link",
        "conference",
        "method_display",
        "status_label",
        "amount_display",
        "reference_display",
        "recorded_by",
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
        """The order's reference (a link to it) over the attendee's e-mail."""
        return two_lines(
            order_link(payment.order), clipped(attendee_email(payment.order), wide=True)
        )

    @display(description="Conference", ordering="order__conference__name")
    def conference(self, payment: Payment) -> str:
        """The order's conference."""
        return payment.order.conference.name

    @display(description="Method", ordering="method")
    def method_display(self, payment: Payment) -> str:
        """How the payment was made, over the channel a manual payment came through."""
        return two_lines(payment.get_method_display(), payment.get_channel_display())

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
        """The amount with the conference's currency, on one line."""
        amount = format_amount(payment.amount, payment.order.conference.currency)
        return format_html('<span class="whitespace-nowrap">{}</span>', amount)

    @display(description="Reference", ordering="reference")
    def reference_display(self, payment: Payment) -> str:
        """The clerk's reference over the Stripe payment (its intent, else its charge)."""
        stripe_id = payment.stripe_payment_intent_id or payment.stripe_charge_id
        livemode = conference_livemode(payment.order.conference)
        link = stripe_link(stripe_id, livemode=livemode) if stripe_id else ""
        return two_lines(clipped(payment.reference), link) or "—"
