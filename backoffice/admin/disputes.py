"""The disputes ledger: a read-only list of Stripe's chargebacks, next to Payments and Refunds."""

from django.contrib import admin
from django.utils.html import format_html
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.decorators import display

from backoffice.admin.date_filters import InclusiveDateRangeFilter
from backoffice.admin.ledger import ReadOnlyLedgerAdmin, local_moment, order_link
from backoffice.admin.stripe_links import conference_livemode, stripe_link
from backoffice.models import Dispute
from backoffice.money import format_amount
from backoffice.services.ledger import search_disputes
from backoffice.services.search import search_disputes_text

DISPUTE_STATUS_COLOURS = {
    Dispute.Status.WARNING_NEEDS_RESPONSE: "warning",
    Dispute.Status.WARNING_UNDER_REVIEW: "info",
    Dispute.Status.WARNING_CLOSED: "success",
    Dispute.Status.NEEDS_RESPONSE: "danger",
    Dispute.Status.UNDER_REVIEW: "info",
    Dispute.Status.WON: "success",
    Dispute.Status.LOST: "danger",
    Dispute.Status.PREVENTED: "success",
}


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyLedgerAdmin):
    """Disputes as finance sees them; written from Stripe's reports, never edited here."""

    list_display = (
        "created",
        "order",
        "payment_display",
        "amount_display",
        "status_label",
        "reason_display",
        "closed",
        "stripe_dispute",
    )
    list_select_related = ("payment__order__conference",)
    list_filter = (
        ("payment__order__conference", RelatedDropdownFilter),
        ("status", ChoicesDropdownFilter),
        ("created_at", InclusiveDateRangeFilter),
    )
    search_fields = ("payment__order__reference", "stripe_dispute_id", "reason")
    search_help_text = "Order reference, attendee email, Stripe dispute, payment or charge id."
    search_selector = staticmethod(search_disputes)
    text_selector = staticmethod(search_disputes_text)

    @display(description="Opened", ordering="created_at")
    def created(self, dispute: Dispute) -> str:
        """When Stripe opened the dispute, in the site's time zone."""
        return local_moment(dispute.created_at)

    @display(description="Reason", ordering="reason")
    def reason_display(self, dispute: Dispute) -> str:
        """Stripe's reason in words ("product_not_received": "Product not received")."""
        return dispute.reason.replace("_", " ").capitalize() or "—"

    @display(description="Closed", ordering="closed_at")
    def closed(self, dispute: Dispute) -> str:
        """When the dispute was first seen closed, or a dash while it is open."""
        return local_moment(dispute.closed_at) if dispute.closed_at else "—"

    @display(description="Order", ordering="payment__order__reference")
    def order(self, dispute: Dispute) -> str:
        """The disputed order's reference, linking to it."""
        return order_link(dispute.payment.order)

    @display(description="Payment")
    def payment_display(self, dispute: Dispute) -> str:
        """The disputed payment: its Stripe id (a dashboard link) and ledger id (the export's)."""
        payment = dispute.payment
        stripe_id = payment.stripe_payment_intent_id or payment.stripe_charge_id
        livemode = conference_livemode(payment.order.conference)
        return format_html(
            '<span class="whitespace-nowrap">{} #{}</span>',
            stripe_link(stripe_id, livemode=livemode),
            payment.pk,
        )

    @display(description="Stripe dispute id", ordering="stripe_dispute_id")
    def stripe_dispute(self, dispute: Dispute) -> str:
        """The dispute at Stripe, a link to its page in Stripe's dashboard."""
        livemode = conference_livemode(dispute.payment.order.conference)
        return stripe_link(dispute.stripe_dispute_id, livemode=livemode)

    @display(description="Amount", ordering="amount")
    def amount_display(self, dispute: Dispute) -> str:
        """The disputed amount, with the conference's currency."""
        return format_amount(dispute.amount, dispute.payment.order.conference.currency)

    @display(
        description="Status",
        ordering="status",
        label={str(status.label): colour for status, colour in DISPUTE_STATUS_COLOURS.items()},
    )
    def status_label(self, dispute: Dispute) -> str:
        """The status as a coloured label."""
        return dispute.get_status_display()
