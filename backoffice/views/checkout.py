"""Attendee checkout: the pay page behind an order's payment link, and Stripe's return URL.

No login: the unguessable token in the URL is the credential; a wrong token is
a 404, rendered in the checkout's look by views/errors.py. Each view calls one
service and turns its refusals into a friendly page.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from backoffice.models import ZERO, Order, Payment
from backoffice.services.local_stripe import stand_in_enabled
from backoffice.services.payment import PaymentProviderError, PaymentService, StripeNotConfigured
from backoffice.services.payment.cancellation import cancelled_at

PAID_STATUSES = (Order.Status.PAID, Order.Status.REFUNDED, Order.Status.PARTIALLY_REFUNDED)
# When Stripe cannot be reached, the pay page asks to come back after this long.
PAYMENTS_RETRY_AFTER_SECONDS = 60


def _get_order(token: str) -> Order:
    """The order behind a payment link, or 404."""
    return get_object_or_404(
        Order.objects.select_related("conference").prefetch_related("line_items"),
        payment_token=token,
    )


def _order_context(order: Order) -> dict:
    """What every checkout page shows about the order."""
    paid = order.amount_paid
    return {
        "order": order,
        "conference": order.conference,
        "line_items": list(order.line_items.all()),
        "total": order.format(order.total),
        "paid": order.format(paid),
        "due": order.format(max(order.total - paid, ZERO)),
    }


def _status_page(request: HttpRequest, order: Order) -> HttpResponse | None:
    """The page for an order that cannot be paid (paid, cancelled, no keys), or None."""
    context = _order_context(order)
    if order.status in PAID_STATUSES:
        context["payments"] = order.payments.filter(
            status__in=(Payment.Status.SUCCEEDED, Payment.Status.REFUNDED)
        ).order_by("created_at", "id")
        return render(request, "checkout/paid.html", context)
    if order.status == Order.Status.CANCELLED:
        context["cancelled_at"] = cancelled_at(order)
        return render(request, "checkout/cancelled.html", context)
    conference = order.conference
    if not (conference.stripe_publishable_key and conference.stripe_secret_key):
        return render(request, "checkout/unavailable.html", context)
    return None


@never_cache
@require_safe
def pay(request: HttpRequest, token: str) -> HttpResponse:
    """Show the order and Stripe's Payment Element for its balance due."""
    order = _get_order(token)
    page = _status_page(request, order)
    if page is not None:
        return page
    try:
        client_secret = PaymentService.initiate_payment(order)
    except ValidationError as exc:
        order.refresh_from_db()
        page = _status_page(request, order)
        if page is not None:
            return page
        context = _order_context(order) | {"problem": " ".join(exc.messages)}
        return render(request, "checkout/problem.html", context)
    except StripeNotConfigured:
        return render(request, "checkout/unavailable.html", _order_context(order))
    except PaymentProviderError as exc:
        context = _order_context(order) | {"problem": str(exc), "temporary": True}
        response = render(request, "checkout/unavailable.html", context, status=503)
        response["Retry-After"] = str(PAYMENTS_RETRY_AFTER_SECONDS)  # "try again in a minute"
        return response
    local_card_form = stand_in_enabled()
    context = _order_context(order) | {
        "client_secret": client_secret,
        "local_card_form": local_card_form,
        "publishable_key": order.conference.stripe_publishable_key,
        "return_url": request.build_absolute_uri(
            reverse("backoffice:pay_complete", args=[order.payment_token])
        ),
        "stripe_js_url": (
            reverse("backoffice:local_stripe_js") if local_card_form else settings.STRIPE_JS_URL
        ),
    }
    return render(request, "checkout/pay.html", context)


@never_cache
@require_safe
def pay_complete(request: HttpRequest, token: str) -> HttpResponse:
    """Stripe's return URL: ask Stripe for the attempt's state, record it, go back to the order.

    A cancelled order is only shown as cancelled: Stripe is not asked (a payment
    made on it anyway reaches the ledger by webhook, flagged for staff).
    """
    order = _get_order(token)
    if order.status == Order.Status.CANCELLED:
        return _status_page(request, order)
    try:
        payment = PaymentService.refresh_from_stripe(
            order, payment_intent_id=request.GET.get("payment_intent", "")
        )
    except (PaymentProviderError, StripeNotConfigured):
        messages.warning(
            request,
            "We could not confirm your payment with Stripe yet. If you completed it, "
            "it will show here shortly; please do not pay twice.",
        )
        payment = None
    if payment is not None:
        if payment.status == Payment.Status.FAILED:
            messages.error(request, f"Your payment did not go through: {payment.note}")
        elif payment.status == Payment.Status.PROCESSING:
            messages.info(request, "Your payment is being processed.")
    return redirect("backoffice:pay", token=order.payment_token)
