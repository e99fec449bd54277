"""The refunds ledger: a read-only list with filters and search, next to Payments."""

from django.contrib import admin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.decorators import display

from backoffice.admin.date_filters import InclusiveDateRangeFilter
from backoffice.admin.ledger import ReadOnlyLedgerAdmin, order_link
from backoffice.admin.stripe_links import conference_livemode, stripe_link
from backoffice.models import Refund
from backoffice.money import format_amount
from backoffice.services.ledger import search_refunds
from backoffice.services.search import search_refunds_text

REFUND_STATUS_COLOURS = {
    Refund.Status.PENDING: "info",
    Refund.Status.SUCCEEDED: "success",
    Refund.Status.FAILED: "danger",
    Refund.Status.CANCELED: "warning",
}


@admin.register(Refund)
class RefundAdmin(ReadOnlyLedgerAdmin):
    """Refunds as finance sees them; written by the payment services, never edited here."""

    list_display = (
        "created",
        "order",
        "payment_display",
        "amount_display",
        "status_label",
        "reason",
        "channel",
        "recorded_by",
        "stripe_refund",
    )
    list_select_related = ("payment__order__conference", "created_by")
    list_filter = (
        ("payment__order__conference", RelatedDropdownFilter),
        ("status", ChoicesDropdownFilter),
        ("reason", ChoicesDropdownFilter),
        ("channel", ChoicesDropdownFilter),
        ("created_at", InclusiveDateRangeFilter),
    )
    search_fields = (
        "payment__order__reference",
        "payment__order__billing_email",
        "stripe_refund_id",
        "note",
    )
    search_help_text = "Order reference, attendee email or Stripe refund id."
    search_selector = staticmethod(search_refunds)
    text_selector = staticmethod(search_refunds_text)

    @display(description="Order", ordering="payment__order__reference")
    def order(self, refund: Refund) -> str:
        """The refunded order's reference, linking to it."""
        return order_link(refund.payment.order)

    @display(description="Payment")
    def payment_display(self, refund: Refund) -> str:
        """The refunded payment: its method and ledger id (the export's Payment ID)."""
        return f"{refund.payment.get_method_display()} #{refund.payment_id}"

    @display(description="Amount", ordering="amount")
    def amount_display(self, refund: Refund) -> str:
        """The amount given back, with the conference's currency."""
        return format_amount(refund.amount, refund.payment.order.conference.currency)

    @display(
        description="Status",
        ordering="status",
        label={str(status.label): colour for status, colour in REFUND_STATUS_COLOURS.items()},
    )
    def status_label(self, refund: Refund) -> str:
        """The status as a coloured label."""
        return refund.get_status_display()

    @display(description="Stripe refund id", ordering="stripe_refund_id")
    def stripe_refund(self, refund: Refund) -> str:
        """The refund at Stripe, a link to its page in Stripe's dashboard."""
        conference = refund.payment.order.conference
        return stripe_link(refund.stripe_refund_id, livemode=conference_livemode(conference))
