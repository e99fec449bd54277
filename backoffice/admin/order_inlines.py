"""The order page's read-only tables: line items, payment history and timeline."""

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from unfold.admin import TabularInline
from unfold.decorators import display

from backoffice.admin.disputes import DISPUTE_STATUS_COLOURS
from backoffice.admin.inline_tables import TableInlineMixin
from backoffice.admin.ledger import local_moment
from backoffice.admin.order_columns import PAYMENT_STATUS_LABELS, coloured_label, money_cell
from backoffice.admin.refunds import REFUND_STATUS_COLOURS
from backoffice.admin.stripe_links import conference_livemode, stripe_link
from backoffice.models import Dispute, Order, OrderHistoryEntry, OrderLineItem, Payment, Refund


def _can_view_order(request: HttpRequest) -> bool:
    """Whether the user may see orders (and therefore their line items and payments)."""
    return request.user.has_perm("backoffice.view_order") or request.user.has_perm(
        "backoffice.change_order"
    )


class ReadOnlyOrderInline(TableInlineMixin, TabularInline):
    """An inline shown to whoever may see the order, never added to, edited or deleted.

    Line items are what the attendee bought (editing them would break the
    total); payments are a ledger written only by the payment service.
    """

    extra = 0
    max_num = 0
    can_delete = False
    show_title = False

    def has_view_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """Anyone who may see the order sees its inlines."""
        return _can_view_order(request)

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """Rows are never added from the admin."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """Rows are never edited from the admin."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """Rows are never deleted from the admin."""
        return False


class OrderLineItemInline(ReadOnlyOrderInline):
    """The order's purchased items, read-only: they are what the attendee bought."""

    model = OrderLineItem
    fields = ("description", "quantity", "unit_price_display", "line_total_display")
    readonly_fields = fields
    verbose_name = _("line item")
    verbose_name_plural = _("Line items")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderLineItem]:
        """Fetch the currency with the items."""
        return super().get_queryset(request).select_related("order__conference")

    @display(description=_("Unit price"))
    def unit_price_display(self, item: OrderLineItem) -> str:
        """Unit price with the currency."""
        return money_cell(item.unit_price, item.order.conference.currency)

    @display(description=_("Line total"))
    def line_total_display(self, item: OrderLineItem) -> str:
        """Line total with the currency."""
        return money_cell(item.line_total, item.order.conference.currency)


class PaymentHistoryInline(ReadOnlyOrderInline):
    """Every payment of the order, oldest first; a ledger, so strictly read-only."""

    model = Payment
    fields = (
        "recorded_at",
        "method",
        "status_label",
        "amount_display",
        "refunds_display",
        "disputes_display",
        "reference",
        "note",
        "recorded_by",
        "stripe_intent",
        "stripe_charge",
    )
    readonly_fields = fields
    ordering = ("created_at", "id")
    verbose_name = _("payment")
    verbose_name_plural = _("Payment history")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Payment]:
        """Fetch the recording staff member, the currency and the refunds with the payments."""
        return (
            super()
            .get_queryset(request)
            .select_related("created_by", "order__conference")
            .prefetch_related(
                Prefetch(
                    "refunds",
                    queryset=Refund.objects.select_related("created_by").order_by(
                        "created_at", "id"
                    ),
                ),
                Prefetch("disputes", queryset=Dispute.objects.order_by("created_at", "id")),
            )
        )

    @display(description=_("Date"))
    def recorded_at(self, payment: Payment) -> str:
        """When the payment was recorded, in the site's time zone."""
        return local_moment(payment.created_at)

    @display(description=_("Status"))
    def status_label(self, payment: Payment) -> str:
        """The payment status as a coloured label."""
        return coloured_label(payment.status, payment.get_status_display(), PAYMENT_STATUS_LABELS)

    @display(description=_("Amount"))
    def amount_display(self, payment: Payment) -> str:
        """The amount in the conference currency (with what was refunded of it)."""
        currency = payment.order.conference.currency
        text = money_cell(payment.amount, currency)
        if payment.refunded_amount:
            text = _("%(amount)s (refunded %(refunded)s)") % {
                "amount": text,
                "refunded": money_cell(payment.refunded_amount, currency),
            }
        if payment.lost_dispute_amount:
            text = _("%(amount)s (lost to disputes %(lost)s)") % {
                "amount": text,
                "lost": money_cell(payment.lost_dispute_amount, currency),
            }
        return text

    @display(description=_("Refunds"))
    def refunds_display(self, payment: Payment) -> str:
        """Each refund of the payment, oldest first: amount, status, reason, channel, when, who."""
        currency = payment.order.conference.currency
        rows = [
            (
                money_cell(refund.amount, currency),
                coloured_label(refund.status, refund.get_status_display(), REFUND_STATUS_COLOURS),
                refund.get_reason_display(),
                f" · {refund.get_channel_display()}" if refund.channel else "",
                local_moment(refund.created_at),
                refund.actor_name,
            )
            for refund in payment.refunds.all()
        ]
        if not rows:
            return "—"
        return format_html_join(
            "",
            # Amount and status stay together; the rest wraps so the table fits the page.
            '<div><span class="whitespace-nowrap">−{} {}</span> {}{} · {} · {}</div>',
            rows,
        )

    @display(description=_("Disputes"))
    def disputes_display(self, payment: Payment) -> str:
        """Each dispute of the payment, oldest first: amount, status, reason, opened, Stripe id."""
        currency = payment.order.conference.currency
        rows = [
            (
                money_cell(dispute.amount, currency),
                coloured_label(
                    dispute.status, dispute.get_status_display(), DISPUTE_STATUS_COLOURS
                ),
                dispute.reason.replace("_", " ") or "—",
                local_moment(dispute.created_at),
                stripe_link(
                    dispute.stripe_dispute_id,
                    livemode=conference_livemode(payment.order.conference),
                ),
            )
            for dispute in payment.disputes.all()
        ]
        if not rows:
            return "—"
        return format_html_join(
            "",
            '<div><span class="whitespace-nowrap">{} {}</span> {} · {} · {}</div>',
            rows,
        )

    @display(description=_("Recorded by"))
    def recorded_by(self, payment: Payment) -> str:
        """The staff member who recorded the payment, or Stripe for a card payment."""
        return payment.actor_name

    @display(description=_("Stripe payment intent"))
    def stripe_intent(self, payment: Payment) -> str:
        """The card payment at Stripe, a link to Stripe's dashboard."""
        livemode = conference_livemode(payment.order.conference)
        return stripe_link(payment.stripe_payment_intent_id, livemode=livemode)

    @display(description=_("Stripe charge"))
    def stripe_charge(self, payment: Payment) -> str:
        """The charge at Stripe, a link to Stripe's dashboard."""
        livemode = conference_livemode(payment.order.conference)
        return stripe_link(payment.stripe_charge_id, livemode=livemode)


class OrderHistoryInline(ReadOnlyOrderInline):
    """The order's timeline: every change of its money or status, with who made it.

    Oldest first, like the payment history above it and Django's History page:
    the order's story reads top to bottom. The History page shows the same rows
    (see ``OrderAdmin.history_view``), rendered by the same methods.
    """

    model = OrderHistoryEntry
    # Every column is a method (a model field's name would show the raw field instead).
    fields = ("when", "done_by", "what", "amount_display", "status_change", "details")
    readonly_fields = fields
    ordering = ("created_at", "id")
    verbose_name = _("history entry")
    verbose_name_plural = _("Timeline")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderHistoryEntry]:
        """Fetch the acting user and the currency with the entries."""
        return super().get_queryset(request).select_related("actor", "order__conference")

    @display(description=_("Date"))
    def when(self, entry: OrderHistoryEntry) -> str:
        """When it happened, in the site's time zone."""
        return local_moment(entry.created_at)

    @display(description=_("By"))
    def done_by(self, entry: OrderHistoryEntry) -> str:
        """Who did it: a staff member's name, Stripe, checkout or a command."""
        return entry.actor_name

    @display(description=_("What"))
    def what(self, entry: OrderHistoryEntry) -> str:
        """What happened."""
        return entry.get_action_display()

    @display(description=_("Amount"))
    def amount_display(self, entry: OrderHistoryEntry) -> str:
        """The amount involved, with the currency (a dash when none)."""
        if entry.amount is None:
            return "—"
        return money_cell(entry.amount, entry.order.conference.currency)

    @display(description=_("Status"))
    def status_change(self, entry: OrderHistoryEntry) -> str:
        """The order's status before → after, only when the entry changed it."""
        if not entry.status_before or entry.status_before == entry.status_after:
            return "—"
        return format_html(
            '<span class="whitespace-nowrap">{} → {}</span>',
            entry.get_status_before_display(),
            entry.get_status_after_display(),
        )

    @display(description=_("Details"))
    def details(self, entry: OrderHistoryEntry) -> str:
        """What the service or the clerk said about it (the reason, the event)."""
        return entry.message or "—"
