"""What each e-mail to an attendee says: subject, plain-text and HTML parts from templates.

Templates live under ``templates/emails/``: ``<kind>.txt`` and ``<kind>.html``
(the HTML extends ``emails/base.html``, one layout with inline styles, since
mail clients ignore style sheets). Amounts are rendered with the currency's
decimals (``100.00 USD``, ``5,000 JPY``) by ``backoffice.money.format_amount``.
"""

from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from backoffice.dates import format_day
from backoffice.models import ZERO, Conference, Order, OrderEmail, Payment, Refund

# The subject of each kind of e-mail.
SUBJECTS = {
    OrderEmail.Kind.PAYMENT_LINK: "{conference}: please pay order {reference}",
    OrderEmail.Kind.RECEIPT: "{conference}: receipt for order {reference}",
    OrderEmail.Kind.REFUND: "{conference}: refund of {amount} on order {reference}",
    OrderEmail.Kind.CANCELLATION: "{conference}: order {reference} is cancelled",
}


@dataclass(frozen=True)
class RenderedEmail:
    """An e-mail ready to store and send: its envelope and both parts."""

    subject: str
    from_email: str
    reply_to: str
    text_body: str
    html_body: str


def sender(conference: Conference) -> str:
    """The From header: the organiser's name with DEFAULT_FROM_EMAIL's address."""
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1] or settings.DEFAULT_FROM_EMAIL
    return formataddr((conference.organiser_name or conference.name, address))


def reply_address(conference: Conference) -> str:
    """Where the attendee's reply goes: the conference's reply-to, else its contact e-mail."""
    return conference.reply_to_email or conference.contact_email


def contact_address(conference: Conference) -> str:
    """Whom an attendee writes to: contact e-mail, else reply-to, else the sender's address."""
    return (
        conference.contact_email
        or conference.reply_to_email
        or parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
        or settings.DEFAULT_FROM_EMAIL
    )


def pay_url(order: Order) -> str:
    """The order's pay page as an absolute URL on ``BACKOFFICE_SITE_URL``."""
    return settings.BACKOFFICE_SITE_URL + reverse("backoffice:pay", args=[order.payment_token])


def _payment_reference(payment: Payment) -> str:
    """The reference an attendee can quote for a payment (the desk's, or Stripe's charge)."""
    return payment.reference or payment.stripe_charge_id or payment.stripe_payment_intent_id


def _payment_method(payment: Payment) -> str:
    """How a payment was made, e.g. 'Manual (bank transfer)', 'Stripe'."""
    if payment.channel:
        return f"{payment.get_method_display()} ({payment.get_channel_display().lower()})"
    return payment.get_method_display()


def _payments(order: Order) -> list[dict[str, str]]:
    """The money received on the order, oldest first, as rows for the templates."""
    payments = order.payments.filter(
        status__in=(Payment.Status.SUCCEEDED, Payment.Status.REFUNDED)
    ).order_by("created_at", "id")
    return [
        {
            "date": format_day(payment.created_at),
            "method": _payment_method(payment),
            "amount": order.format(payment.amount),
            "refunded": order.format(payment.refunded_amount) if payment.refunded_amount else "",
            "reference": _payment_reference(payment),
        }
        for payment in payments
    ]


def _context(order: Order, refund: Refund | None) -> dict[str, Any]:
    """What every e-mail's templates may show about the order and its conference."""
    conference = order.conference
    paid = order.amount_paid
    context: dict[str, Any] = {
        "order": order,
        "reference": order.reference,
        "conference": conference,
        "organiser_name": conference.organiser_name or conference.name,
        "organiser_address": conference.organiser_address,
        "contact_email": contact_address(conference),
        "attendee_name": order.billing_name or order.user.get_full_name(),
        "line_items": [
            {
                "description": item.description,
                "quantity": item.quantity,
                "amount": order.format(item.line_total),
            }
            for item in order.line_items.all()
        ],
        "total": order.format(order.total),
        "paid": order.format(paid),
        # A cancelled order asks for nothing more.
        "due": order.format(ZERO if order.status == Order.Status.CANCELLED else order.balance_due),
        "payments": _payments(order),
        "pay_url": pay_url(order),
    }
    if refund is not None:
        payment = refund.payment
        context["refund"] = {
            "amount": order.format(refund.amount),
            "reason": refund.get_reason_display(),
            "payment_method": _payment_method(payment),
            "payment_date": format_day(payment.created_at),
            "payment_amount": order.format(payment.amount),
            "payment_reference": _payment_reference(payment),
            "reference": refund.stripe_refund_id,
        }
    return context


def render_email(
    order: Order, kind: OrderEmail.Kind, *, refund: Refund | None = None
) -> RenderedEmail:
    """Render one kind of e-mail about the order (a refund confirmation names its refund)."""
    context = _context(order, refund)
    subject = SUBJECTS[kind].format(
        conference=order.conference.name,
        reference=order.reference,
        amount=context.get("refund", {}).get("amount", ""),
    )
    context["subject"] = subject
    return RenderedEmail(
        subject=subject,
        from_email=sender(order.conference),
        reply_to=reply_address(order.conference),
        text_body=render_to_string(f"emails/{kind}.txt", context).strip() + "\n",
        html_body=render_to_string(f"emails/{kind}.html", context),
    )
