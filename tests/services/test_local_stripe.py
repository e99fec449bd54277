"""The local fake Stripe: when the card form stands in, wiring a conference, paying a test card."""

import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.exceptions import ValidationError

from backoffice.models import Conference
from backoffice.services.local_stripe import (
    LOCAL_PUBLISHABLE_KEY,
    LOCAL_SECRET_KEY,
    LOCAL_WEBHOOK_SECRET,
    RETRY_AFTER_DECLINE,
    is_local_address,
    pay_with_test_card,
    stand_in_enabled,
    wire_conference,
)
from backoffice.services.payment import PaymentService
from backoffice.stripe_client import TestCard, verify_webhook
from tests.stripe_fixtures import CARD_DECLINED, CARD_OK, LocalStripe, start_localstripe

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8420", True),
        ("http://localhost:8420/", True),
        ("http://[::1]:8420", True),
        ("https://api.stripe.com", False),
        ("http://127.0.0.1.example.com:8420", False),
        ("http://10.0.0.5:8420", False),
        ("file://127.0.0.1/etc/passwd", False),
        ("", False),
    ],
)
def test_is_local_address_accepts_only_this_machine_over_http(url: str, local: bool) -> None:
    assert is_local_address(url) is local


@pytest.mark.parametrize(
    ("debug", "api_base", "enabled"),
    [
        (True, "http://127.0.0.1:8420", True),
        (False, "http://127.0.0.1:8420", False),  # production settings: never
        (True, "", False),  # Stripe's real API
        (True, "https://api.stripe.com", False),
    ],
)
def test_stand_in_is_enabled_only_with_debug_and_a_local_api_base(
    settings, debug: bool, api_base: str, enabled: bool
) -> None:
    settings.DEBUG = debug
    settings.STRIPE_API_BASE = api_base

    assert stand_in_enabled() is enabled


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """A localstripe of this module's own: its webhooks reach only this module's receiver."""
    with start_localstripe(tmp_path_factory.mktemp("localstripe")) as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue]]:
    """An HTTP server that stores every POST (body, Stripe-Signature); its URL and the queue."""
    received: queue.Queue = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((self.path, body, self.headers.get("Stripe-Signature")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def demo(db) -> Conference:
    """A conference without Stripe keys, as seed_demo creates it."""
    return Conference.objects.create(name="PyCon Demo", slug="pycon-demo", currency="USD")


def test_wire_conference_gives_the_local_keys_and_the_fake_posts_signed_events_to_the_site(
    demo: Conference, fake: LocalStripe, receiver: tuple[str, queue.Queue]
) -> None:
    site_url, received = receiver

    webhook_url = wire_conference(demo, api_base=fake.url, site_url=site_url)
    fake.secret_key = LOCAL_SECRET_KEY
    customer = fake.api("POST", "/v1/customers", email="ada@example.com")

    demo.refresh_from_db()
    assert (demo.stripe_publishable_key, demo.stripe_secret_key, demo.stripe_webhook_secret) == (
        LOCAL_PUBLISHABLE_KEY,
        LOCAL_SECRET_KEY,
        LOCAL_WEBHOOK_SECRET,
    )
    assert webhook_url == f"{site_url}/stripe/webhook/pycon-demo/"
    path, body, signature = received.get(timeout=15)
    assert path == "/stripe/webhook/pycon-demo/"
    event = verify_webhook(body, signature, LOCAL_WEBHOOK_SECRET)
    assert event["type"] == "customer.created"
    assert json.loads(body)["data"]["object"]["id"] == customer["id"]


def test_wire_conference_again_after_a_restart_keeps_the_keys_and_registers_again(
    demo: Conference, fake: LocalStripe, receiver: tuple[str, queue.Queue], tmp_path
) -> None:
    site_url, received = receiver
    wire_conference(demo, api_base=fake.url, site_url=site_url)

    with start_localstripe(tmp_path) as restarted:  # a new, empty fake on another port
        wire_conference(demo, api_base=restarted.url, site_url=site_url)
        restarted.secret_key = LOCAL_SECRET_KEY
        restarted.api("POST", "/v1/customers", email="ada@example.com")
        path, body, signature = received.get(timeout=15)

    demo.refresh_from_db()
    assert demo.stripe_secret_key == LOCAL_SECRET_KEY
    assert verify_webhook(body, signature, LOCAL_WEBHOOK_SECRET)["type"] == "customer.created"


def test_wire_conference_leaves_a_conference_with_keys_of_its_own_alone(
    demo: Conference, fake: LocalStripe
) -> None:
    demo.stripe_publishable_key = "pk_test_51RealAccount"
    demo.stripe_secret_key = "sk_test_51RealAccount"
    demo.save()

    with pytest.raises(ValidationError, match="has Stripe keys of its own"):
        wire_conference(demo, api_base=fake.url, site_url="http://127.0.0.1:8000")

    demo.refresh_from_db()
    assert demo.stripe_secret_key == "sk_test_51RealAccount"


def test_wire_conference_refuses_an_api_base_that_is_not_local(demo: Conference) -> None:
    with pytest.raises(ValidationError, match="not a local address"):
        wire_conference(demo, api_base="https://api.stripe.com", site_url="http://127.0.0.1:8000")

    demo.refresh_from_db()
    assert demo.stripe_secret_key == ""


@pytest.fixture
def intent(settings, stripe_conference, make_order) -> tuple[str, str]:
    """(intent id, client secret) of a pending order's card attempt at localstripe, in DEBUG."""
    settings.DEBUG = True  # `make run`: the local card form is on
    client_secret = PaymentService.initiate_payment(
        make_order("100.00", conference=stripe_conference)
    )
    return client_secret.split("_secret_")[0], client_secret


def pay(intent: tuple[str, str], number: str, client_secret: str | None = None) -> dict:
    intent_id, secret = intent
    card = TestCard(number=number, exp_month="12", exp_year="2034", cvc="123")
    return pay_with_test_card(intent_id=intent_id, client_secret=client_secret or secret, card=card)


def test_pay_with_test_card_pays_the_intent_at_the_fake(intent, localstripe) -> None:
    result = pay(intent, CARD_OK)

    assert result == {"paymentIntent": {"id": intent[0], "status": "succeeded"}}
    assert localstripe.api("GET", f"/v1/payment_intents/{intent[0]}")["status"] == "succeeded"


def test_pay_with_test_card_answers_a_decline_as_stripe_js_does(intent, localstripe) -> None:
    assert pay(intent, CARD_DECLINED) == {
        "error": {
            "type": "card_error",
            "code": "card_declined",
            "message": "Your card was declined.",
        }
    }

    # The fake cannot confirm a declined intent again: say so instead of a bare 400.
    assert pay(intent, CARD_OK)["error"]["message"] == RETRY_AFTER_DECLINE
    assert localstripe.api("GET", f"/v1/payment_intents/{intent[0]}")["status"] == (
        "requires_payment_method"
    )


def test_pay_with_test_card_refuses_a_wrong_client_secret(intent, localstripe) -> None:
    result = pay(intent, CARD_OK, client_secret=f"{intent[0]}_secret_guessed")

    assert result["error"]["code"] == "resource_missing"
    assert localstripe.api("GET", f"/v1/payment_intents/{intent[0]}")["status"] == (
        "requires_payment_method"
    )


def test_pay_with_test_card_says_the_form_does_not_show_3d_secure(intent) -> None:
    result = pay(intent, "4000002500003155")

    assert result["error"]["code"] == "authentication_required"
    assert "3-D Secure" in result["error"]["message"]


def test_pay_with_test_card_never_acts_with_a_live_key(
    intent, stripe_conference, localstripe
) -> None:
    stripe_conference.stripe_secret_key = "sk_live_51RealAccount"
    stripe_conference.save()

    assert pay(intent, CARD_OK)["error"]["code"] == "resource_missing"
    assert localstripe.api("GET", f"/v1/payment_intents/{intent[0]}")["status"] == (
        "requires_payment_method"
    )


@pytest.mark.parametrize(
    ("debug", "api_base"), [(False, "local"), (True, "https://api.stripe.com")]
)
def test_pay_with_test_card_refuses_outside_development(
    intent, settings, localstripe, debug: bool, api_base: str
) -> None:
    settings.DEBUG = debug
    settings.STRIPE_API_BASE = localstripe.url if api_base == "local" else api_base

    with pytest.raises(ValidationError, match="only at a local fake Stripe"):
        pay(intent, CARD_OK)

    settings.STRIPE_API_BASE = localstripe.url
    assert localstripe.api("GET", f"/v1/payment_intents/{intent[0]}")["status"] == (
        "requires_payment_method"
    )


@pytest.mark.parametrize(
    ("number", "outcome"),
    [
        ("4242424242424242", "succeeded"),
        ("4000000000000341", "card_declined"),
        ("4000000000000002", "succeeded"),  # real Stripe declines it; the fake does not
        ("4000000000009995", "succeeded"),  # same
        ("4000002500003155", "authentication_required"),
    ],
)
def test_the_readme_s_test_cards_do_on_the_fake_what_it_says(
    intent, number: str, outcome: str
) -> None:
    result = pay(intent, number)

    paid = result.get("paymentIntent")
    assert (paid["status"] if paid else result["error"]["code"]) == outcome
