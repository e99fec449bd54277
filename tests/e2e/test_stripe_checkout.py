"""End to end over real HTTP: the pay page on a live server, localstripe, its signed webhook.

The browser part (Stripe.js's Payment Element) cannot run here; the card is
confirmed server-side at localstripe exactly as Stripe.js would, and
localstripe then signs and delivers the webhook to the live server.
"""

import re
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from django.db import OperationalError
from django.urls import reverse

from backoffice.models import Order, Payment, StripeEvent
from backoffice.signals import order_paid
from tests.stripe_fixtures import CARD_DECLINED, LocalStripe, start_localstripe
from tests.worker import run_db_worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """A localstripe of this module's own: no other test's late webhooks reach the live server."""
    with start_localstripe(tmp_path_factory.mktemp("localstripe-e2e")) as server:
        yield server


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll until the condition holds (the webhook arrives ~1 s after the event).

    On SQLite the live server and this thread share one in-memory database, whose
    tables are locked while the webhook writes: such a poll just tries again.
    """

    def holds() -> bool:
        try:
            return condition()
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return False

    deadline = time.monotonic() + timeout
    while not holds():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the webhook")
        time.sleep(0.1)


@pytest.fixture
def webhook_to_live_server(live_server, stripe_conference, localstripe_webhook):
    """localstripe delivers signed events to the live server's webhook URL."""
    url = live_server.url + reverse("backoffice:stripe_webhook", args=[stripe_conference.slug])
    localstripe_webhook(url, stripe_conference.stripe_webhook_secret)
    return url


@pytest.fixture
def paid_signals():
    fired: list[int] = []

    def receiver(sender, order, user, **kwargs):
        fired.append(order.pk)

    order_paid.connect(receiver)
    yield fired
    order_paid.disconnect(receiver)


def load_pay_page(live_server, order: Order) -> str:
    response = requests.get(
        live_server.url + reverse("backoffice:pay", args=[order.payment_token]), timeout=30
    )
    assert response.status_code == 200
    return response.text


def test_attendee_pays_and_the_webhook_marks_the_order_paid(
    live_server,
    stripe_conference,
    make_order,
    localstripe,
    webhook_to_live_server,
    paid_signals,
    admin_client,
):
    order = make_order("100.00", conference=stripe_conference)

    html = load_pay_page(live_server, order)
    secret = re.search(r'data-client-secret="([^"]+)"', html).group(1)
    intent_id = secret.split("_secret_")[0]
    assert Payment.objects.filter(order=order, status=Payment.Status.PENDING).count() == 1

    html_again = load_pay_page(live_server, order)
    assert re.search(r'data-client-secret="([^"]+)"', html_again).group(1) == secret
    assert Payment.objects.filter(order=order).count() == 1

    localstripe.confirm_payment_intent(intent_id)
    wait_for(
        lambda: StripeEvent.objects.filter(
            type="payment_intent.succeeded",
            payload__data__object__id=intent_id,
            processed_at__isnull=False,
        ).exists()
    )

    # The webhook's transaction enqueued order_paid; the background worker sends it.
    run_db_worker()
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert paid_signals == [order.pk]
    payment = Payment.objects.get(order=order)
    assert payment.method == Payment.Method.STRIPE
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_payment_intent_id == intent_id
    assert payment.stripe_charge_id.startswith("ch_")
    event = StripeEvent.objects.get(
        type="payment_intent.succeeded", payload__data__object__id=intent_id
    )
    assert event.conference == stripe_conference
    assert event.last_error == ""

    history = admin_client.get(
        reverse("admin:backoffice_order_change", args=[order.pk])
    ).content.decode()
    assert intent_id in history
    assert payment.stripe_charge_id in history

    paid_page = load_pay_page(live_server, order)
    assert 'id="paid-message"' in paid_page
    assert 'id="pay-button"' not in paid_page
    assert Payment.objects.filter(order=order).count() == 1


def test_declined_card_webhook_marks_the_attempt_failed(
    live_server, stripe_conference, make_order, localstripe, webhook_to_live_server
):
    order = make_order("100.00", conference=stripe_conference)
    html = load_pay_page(live_server, order)
    intent_id = re.search(r'data-client-secret="(pi_[^_"]+)_secret_', html).group(1)

    localstripe.confirm_payment_intent(intent_id, card=CARD_DECLINED)
    wait_for(
        lambda: StripeEvent.objects.filter(
            type="payment_intent.payment_failed",
            payload__data__object__id=intent_id,
            processed_at__isnull=False,
        ).exists()
    )

    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.FAILED
    assert payment.note == "Your card was declined."
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
