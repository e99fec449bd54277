"""The pay link of a cancelled order: says so, with the date and whom to contact; no Stripe call."""

import re

import pytest
from django.urls import reverse

from backoffice.dates import format_day
from backoffice.models import Order, Payment
from backoffice.services.payment import PaymentService
from backoffice.services.payment.cancellation import cancelled_at
from tests.stripe_fixtures import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def cancelled(stripe_conference, make_order, staff_user) -> Order:
    """An order whose pay page was opened (one card attempt), then cancelled at the desk."""
    order = make_order("100.00", conference=stripe_conference)
    PaymentService.initiate_payment(order)
    PaymentService.cancel_order(order, reason="Hold expired", staff_user=staff_user)
    return order


@pytest.fixture
def stripe_unreachable(settings) -> None:
    """Any call to Stripe now fails to connect: a page that calls it cannot render normally."""
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"


def assert_cancelled_page(response, order: Order) -> None:
    """The cancelled page: its date, the reference, the organisers, and no payment form."""
    assert response.status_code == 200
    html = response.content.decode()
    when = format_day(cancelled_at(order))  # the site's one date format, "29 Nov 2026"
    assert re.search(r'<h1 id="cancelled-message">This order was cancelled</h1>', html)
    assert f"Order {order.reference} was cancelled on {when}" in html
    assert "contact the StripeCon organisers and quote order" in html
    assert 'id="payment-element"' not in html
    assert 'id="pay-button"' not in html
    assert "data-client-secret" not in html


def test_pay_link_of_a_cancelled_order_shows_it_cancelled_without_calling_stripe(
    client, cancelled, stripe_unreachable
):
    response = client.get(reverse("backoffice:pay", args=[cancelled.payment_token]))

    assert_cancelled_page(response, cancelled)
    assert Payment.objects.filter(order=cancelled).count() == 1  # no new attempt


def test_return_page_of_a_cancelled_order_shows_it_cancelled_without_calling_stripe(
    client, cancelled, stripe_unreachable
):
    intent_id = Payment.objects.get(order=cancelled).stripe_payment_intent_id
    url = reverse("backoffice:pay_complete", args=[cancelled.payment_token])

    response = client.get(url, {"payment_intent": intent_id})

    assert_cancelled_page(response, cancelled)
    assert "could not confirm your payment" not in response.content.decode()
    assert Payment.objects.get(order=cancelled).status == Payment.Status.PENDING


def test_the_closed_port_does_fail_a_pending_orders_pages(
    client, stripe_conference, make_order, stripe_unreachable
):
    """The control: the same unreachable Stripe breaks the pay page of an order not cancelled."""
    order = make_order("100.00", conference=stripe_conference)

    pay = client.get(reverse("backoffice:pay", args=[order.payment_token]))

    assert pay.status_code == 503
    assert "temporarily unavailable" in pay.content.decode()
