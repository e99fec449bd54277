"""How an order reads in the admin: coloured labels, money cells, OrderAdmin's columns."""

from decimal import Decimal
from functools import lru_cache

from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from unfold.decorators import display
from unfold.utils import display_for_label

from backoffice.admin.ledger import clipped, local_moment
from backoffice.dates import format_day, format_time
from backoffice.models import Order, Payment, user_name
from backoffice.money import format_amount
from backoffice.services.attention import attention_reasons
from backoffice.services.desk_work import awaits_comp

ORDER_STATUS_LABELS = {
    Order.Status.PENDING: "warning",
    Order.Status.PAID: "success",
    Order.Status.CANCELLED: "danger",
    Order.Status.REFUNDED: "info",
    Order.Status.PARTIALLY_REFUNDED: "info",
}

PAYMENT_STATUS_LABELS = {
    Payment.Status.PENDING: "warning",
    Payment.Status.PROCESSING: "warning",
    Payment.Status.SUCCEEDED: "success",
    Payment.Status.FAILED: "danger",
    Payment.Status.CANCELED: "danger",
    Payment.Status.REFUNDED: "info",
}


def coloured_label(value: str, text: str, labels: dict[str, str]) -> str:
    """Render a coloured unfold label as HTML (for read-only fields and inlines)."""
    if value not in labels:
        return rendered_label(value, None)
    return rendered_label(str(text), labels[value])


@lru_cache(maxsize=512)
def rendered_label(text: str, colour: str | None) -> str:
    """unfold's label HTML for a text and colour, rendered once."""
    # A template render per label was a third of the order page's time at fifty payments.
    return display_for_label(text, "-", {text: colour} if colour else {})


def money_cell(amount: Decimal, currency: str) -> str:
    """An amount with its currency that does not wrap inside a table cell."""
    return format_amount(amount, currency).replace(" ", "\u00a0")


def status_label(order: Order) -> str:
    """An order's status as a coloured label; a pending zero-total order reads "To comp"."""
    if awaits_comp(order):
        return rendered_label(str(_("To comp")), "primary")
    return coloured_label(order.status, order.get_status_display(), ORDER_STATUS_LABELS)


def reasons_html(reasons: list[str]) -> str:
    """An order's attention reasons, one per line."""
    if not reasons:
        return "—"
    return format_html_join(mark_safe("<br>"), "{}", ((reason,) for reason in reasons))


class OrderColumnsMixin:
    """OrderAdmin's list columns and the order page's read-only fields."""

    @display(description=_("Reference"), ordering="reference")
    def order_reference(self, order: Order) -> str:
        """The order reference, kept on one line."""
        return format_html('<span class="whitespace-nowrap">{}</span>', order.reference)

    @display(description=_("Attendee"), header=True)
    def attendee(self, order: Order) -> tuple[str, str]:
        """Billing name (or the user's name) over the e-mail address."""
        user = order.user
        name = order.billing_name or user.get_full_name() or user.get_username()
        return name, clipped(order.billing_email or user.email, wide=True)

    @display(description=_("Status"), ordering="status")
    def status_label(self, order: Order) -> str:
        """The order status as a coloured label (rendered once per status, not per row)."""
        return status_label(order)

    @display(description=_("Why"))
    def attention_reasons_column(self, order: Order) -> str:
        """Why the order needs attention (read for the whole page at once)."""
        return reasons_html(order.attention_reasons)

    @display(description=_("Needs attention now"))
    def attention_now(self, order: Order) -> str:
        """Every current reason to look at the order: its flag's and those its ledger gives."""
        return reasons_html(attention_reasons([order]).get(order.pk, []))

    @display(description=_("Status"))
    def status_badge(self, order: Order) -> str:
        """The order status as a coloured label (order page)."""
        return status_label(order)

    @display(description=_("Created"), ordering="created_at", header=True)
    def created(self, order: Order) -> tuple[str, str]:
        """When the order was placed: the date over the time."""
        return format_day(order.created_at), format_time(order.created_at)

    @display(description=_("User"))
    def account(self, order: Order) -> str:
        """The attendee's account, named as people are everywhere, linking to it when allowed."""
        name = user_name(order.user)
        try:
            url = reverse("admin:auth_user_change", args=[order.user_id])
        except NoReverseMatch:
            return name
        return format_html('<a class="text-primary-600" href="{}">{}</a>', url, name)

    @display(description=_("Created"))
    def created_on(self, order: Order) -> str:
        """When the order was placed (order page)."""
        return local_moment(order.created_at)

    @display(description=_("Last change"))
    def updated(self, order: Order) -> str:
        """When the order last changed."""
        return local_moment(order.updated_at)

    @display(description=_("Subtotal"))
    def subtotal_display(self, order: Order) -> str:
        """Subtotal with the currency."""
        return money_cell(order.subtotal, order.currency)

    @display(description=_("Discount"))
    def discount_display(self, order: Order) -> str:
        """Discount with the currency."""
        return money_cell(order.discount_amount, order.currency)

    @display(description=_("Total"), ordering="total")
    def total_display(self, order: Order) -> str:
        """Total with the currency."""
        return money_cell(order.total, order.currency)

    @display(description=_("Paid"))
    def paid_display(self, order: Order) -> str:
        """Sum of succeeded payments with the currency."""
        return money_cell(order.amount_paid, order.currency)

    @display(description=_("Balance due"))
    def balance_display(self, order: Order) -> str:
        """What is left to pay, with the currency."""
        return money_cell(order.balance_due, order.currency)

    @display(description=_("Payment link"))
    def payment_link(self, order: Order) -> str:
        """The attendee's pay page with a copy button (copy-link.js makes the URL absolute)."""
        url = reverse("backoffice:pay", args=[order.payment_token])
        return format_html(
            '<span class="flex flex-wrap items-center gap-2">'
            '<a id="payment-link" href="{}" target="_blank" rel="noopener noreferrer" '
            'class="break-all text-primary-600 underline" data-absolute-link>{}</a>'
            '<button type="button" data-copy-link="payment-link" '
            'class="border border-base-200 rounded-default px-2 py-1 font-medium '
            'hover:bg-base-50 dark:border-base-700 dark:hover:bg-base-800">{}</button>'
            '<span data-copy-status role="status" aria-live="polite"></span>'
            "</span>",
            url,
            url,
            _("Copy link"),
        )
