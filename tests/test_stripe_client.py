"""StripeClient against localstripe: configuration, customers, amounts, idempotency, errors."""

import socket
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from backoffice.models import StripeCustomer
from backoffice.stripe_client import (
    InvalidWebhook,
    MalformedStripeEvent,
    PaymentIntentMissing,
    PaymentProviderError,
    StripeClient,
    StripeNotConfigured,
    StripePaymentIntent,
    StripeRefund,
    from_stripe_amount,
    parse_charge,
    parse_payment_intent,
    parse_refund,
    to_stripe_amount,
    verify_webhook,
)
from tests.stripe_fixtures import build_event, sign_payload

pytestmark = pytest.mark.django_db


class RecordingProxy:
    """Forwards requests to localstripe, records their headers, and can drop responses."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[dict] = []
        self.fail_next = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers)}
                )
                upstream = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    data=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                    timeout=10,
                )
                if proxy.fail_next:
                    # The request reached "Stripe" but the answer is lost: a 500.
                    proxy.fail_next -= 1
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    payload = b'{"error": {"message": "upstream hiccup"}}'
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(stripe_settings, settings):
    recording = RecordingProxy(stripe_settings.url)
    settings.STRIPE_API_BASE = recording.url
    yield recording
    recording.close()


def test_missing_secret_key_is_a_value_error_naming_the_conference(conference):
    with pytest.raises(StripeNotConfigured, match="PyCon Test") as excinfo:
        StripeClient(conference)
    assert isinstance(excinfo.value, ValueError)


def test_client_talks_to_the_configured_api_base(stripe_conference, attendee, localstripe):
    customer = StripeClient(stripe_conference).get_or_create_customer(attendee)

    remote = localstripe.api("GET", f"/v1/customers/{customer.stripe_customer_id}")
    assert remote["email"] == "attendee@example.com"
    assert remote["metadata"] == {"user_id": str(attendee.pk), "conference": "stripecon"}


def test_get_or_create_customer_creates_one_customer_per_user_and_conference(
    stripe_conference, stripe_jpy_conference, attendee
):
    first = StripeClient(stripe_conference).get_or_create_customer(attendee)
    again = StripeClient(stripe_conference).get_or_create_customer(attendee)
    other = StripeClient(stripe_jpy_conference).get_or_create_customer(attendee)

    assert first.pk == again.pk
    assert other.pk != first.pk
    assert StripeCustomer.objects.count() == 2


def test_concurrent_customer_creation_resolves_to_one_row(
    stripe_conference, attendee, localstripe, monkeypatch
):
    """Another request stores its customer while ours is being created at Stripe."""
    client = StripeClient(stripe_conference)
    real_call = client._call
    winner: list[StripeCustomer] = []

    def call_then_lose_the_race(action, fn):
        result = real_call(action, fn)
        if action == "create a customer" and not winner:
            other = localstripe.api("POST", "/v1/customers", email="attendee@example.com")
            winner.append(
                StripeCustomer.objects.create(
                    user=attendee, conference=stripe_conference, stripe_customer_id=other["id"]
                )
            )
        return result

    monkeypatch.setattr(client, "_call", call_then_lose_the_race)

    customer = client.get_or_create_customer(attendee)

    assert customer.pk == winner[0].pk
    assert StripeCustomer.objects.filter(user=attendee).count() == 1


def test_every_create_carries_a_stable_idempotency_key(
    stripe_conference, attendee, make_order, proxy
):
    order = make_order("100.00", conference=stripe_conference)
    StripeClient(stripe_conference).create_payment_intent(
        order, amount=Decimal("100.00"), idempotency_key="order-key-1"
    )

    posts = [r for r in proxy.requests if r["method"] == "POST"]
    assert [r["path"] for r in posts] == ["/v1/customers", "/v1/payment_intents"]
    keys = [r["headers"].get("Idempotency-Key") for r in posts]
    assert keys[0].startswith(f"customer-{stripe_conference.pk}-{attendee.pk}-")
    assert keys[1] == "order-key-1"


def test_a_retried_create_reuses_its_idempotency_key(stripe_conference, attendee, proxy, settings):
    """The answer to the first try is lost; the retry must carry the same key."""
    settings.STRIPE_MAX_NETWORK_RETRIES = 2
    proxy.fail_next = 1

    StripeClient(stripe_conference).get_or_create_customer(attendee)

    posts = [r for r in proxy.requests if r["method"] == "POST"]
    assert len(posts) == 2
    assert posts[0]["headers"]["Idempotency-Key"] == posts[1]["headers"]["Idempotency-Key"]
    assert StripeCustomer.objects.count() == 1


def test_a_stripe_that_never_answers_times_out(stripe_conference, attendee, settings):
    """A server that accepts the connection and then says nothing: the timeout ends the wait."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{silent.getsockname()[1]}"
    settings.STRIPE_TIMEOUT_SECONDS = 0.5
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    started = time.monotonic()
    try:
        with pytest.raises(PaymentProviderError, match="Could not reach Stripe"):
            StripeClient(stripe_conference).get_or_create_customer(attendee)
    finally:
        silent.close()

    assert time.monotonic() - started < 5
    assert not StripeCustomer.objects.exists()


def test_stripe_refusal_becomes_a_readable_error(stripe_conference, make_order, localstripe):
    order = make_order("100.00", conference=stripe_conference)
    client = StripeClient(stripe_conference)
    intent = client.create_payment_intent(order, amount=Decimal("100.00"), idempotency_key="k")
    localstripe.confirm_payment_intent(intent.id)

    with pytest.raises(PaymentProviderError, match="Stripe could not cancel"):
        client.cancel_payment_intent(intent.id)  # a succeeded payment cannot be cancelled


@pytest.mark.django_db
def test_api_answers_are_typed_intents_with_decimal_amounts(
    stripe_jpy_conference, make_order, localstripe
):
    """Create, retrieve and cancel hand the services a StripePaymentIntent, never Stripe's JSON."""
    order = make_order("5000", conference=stripe_jpy_conference)
    client = StripeClient(stripe_jpy_conference)

    created = client.create_payment_intent(order, amount=Decimal("5000"), idempotency_key="t1")
    fetched = client.retrieve_payment_intent(created.id)
    cancelled = client.cancel_payment_intent(created.id)

    assert isinstance(created, StripePaymentIntent)
    assert (fetched.id, fetched.currency, fetched.amount) == (created.id, "JPY", Decimal("5000"))
    assert fetched.status == "requires_payment_method"
    assert fetched.client_secret == created.client_secret
    assert created.client_secret.startswith(f"{created.id}_secret_")
    assert fetched.metadata["order_reference"] == order.reference
    assert (cancelled.status, fetched.failed) == ("canceled", False)


def test_list_refunds_gives_every_refund_of_a_payment_typed(
    stripe_jpy_conference, make_order, localstripe
):
    order = make_order("5000", conference=stripe_jpy_conference)
    client = StripeClient(stripe_jpy_conference)
    intent = client.create_payment_intent(order, amount=Decimal("5000"), idempotency_key="r1")
    localstripe.confirm_payment_intent(intent.id)
    first = localstripe.api("POST", "/v1/refunds", payment_intent=intent.id, amount=1000)
    second = localstripe.api("POST", "/v1/refunds", payment_intent=intent.id, amount=500)

    refunds = client.list_refunds(intent.id)

    assert {(r.id, r.amount, r.currency, r.status) for r in refunds} == {
        (first["id"], Decimal("1000"), "JPY", "succeeded"),
        (second["id"], Decimal("500"), "JPY", "succeeded"),
    }
    assert len(refunds) == 2
    assert all(isinstance(r, StripeRefund) and r.payment_intent_id == intent.id for r in refunds)


def test_unknown_payment_intent_is_reported_as_missing(stripe_conference):
    with pytest.raises(PaymentIntentMissing, match="pi_does_not_exist"):
        StripeClient(stripe_conference).retrieve_payment_intent("pi_does_not_exist")


def test_a_customer_stripe_forgot_is_replaced(stripe_conference, make_order, localstripe):
    order = make_order("100.00", conference=stripe_conference)
    StripeCustomer.objects.create(
        user=order.user, conference=stripe_conference, stripe_customer_id="cus_gone"
    )

    intent = StripeClient(stripe_conference).create_payment_intent(
        order, amount=Decimal("100.00"), idempotency_key="k2"
    )

    customer = StripeCustomer.objects.get(user=order.user, conference=stripe_conference)
    assert customer.stripe_customer_id != "cus_gone"
    at_stripe = localstripe.api("GET", f"/v1/payment_intents/{intent.id}")
    assert at_stripe["customer"] == customer.stripe_customer_id


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        (Decimal("100.00"), "USD", 10000),
        (Decimal("0.10"), "EUR", 10),
        (Decimal("5000"), "JPY", 5000),
        (Decimal("12345"), "KRW", 12345),
        (Decimal("1.50"), "KWD", 1500),
        (Decimal("19.99"), "usd", 1999),
        (Decimal("1500"), "ISK", 150000),  # hundredths at Stripe, whole krónur only
    ],
)
def test_amounts_go_to_stripe_in_minor_units_exactly(amount, currency, minor):
    assert to_stripe_amount(amount, currency) == minor
    assert from_stripe_amount(minor, currency) == amount


def test_fractional_yen_is_refused():
    with pytest.raises(ValueError, match="JPY"):
        to_stripe_amount(Decimal("100.50"), "JPY")


def test_float_amounts_are_refused():
    with pytest.raises(TypeError):
        to_stripe_amount(19.99, "USD")


def test_verify_webhook_accepts_a_valid_signature():
    body = '{"id": "evt_1", "type": "x.y", "data": {"object": {}}}'
    event = verify_webhook(body.encode(), sign_payload(body, "whsec_x"), "whsec_x")
    assert event["id"] == "evt_1"


@pytest.mark.parametrize(
    "header",
    [None, "", "t=1,v1=deadbeef", "garbage"],
)
def test_verify_webhook_refuses_bad_headers(header):
    body = '{"id": "evt_1", "type": "x.y", "data": {"object": {}}}'
    with pytest.raises(InvalidWebhook):
        verify_webhook(body.encode(), header, "whsec_x")


def test_verify_webhook_refuses_a_body_that_is_not_utf8():
    with pytest.raises(InvalidWebhook, match="UTF-8"):
        verify_webhook(b"\xff\xfe{}", "t=1,v1=abc", "whsec_x")


def test_verify_webhook_refuses_an_empty_secret():
    import json

    body = json.dumps(build_event("x.y", {}))
    with pytest.raises(InvalidWebhook):
        verify_webhook(body.encode(), sign_payload(body, ""), "")


def test_verify_webhook_returns_a_copy_without_nul_or_lone_surrogates():
    body = '{"id": "evt_1", "type": "x.y", "data": {"object": {"a\\u0000": ["\\ud800b"]}}}'

    event = verify_webhook(body.encode(), sign_payload(body, "whsec_x"), "whsec_x")

    assert event["data"]["object"] == {"a\ufffd": ["\ufffdb"]}


def test_parse_payment_intent_reads_stripes_shapes():
    """The expanded charge object, the legacy charges list, amounts in minor units."""
    legacy = {
        "id": "pi_1",
        "currency": "jpy",
        "amount": 1200,
        "amount_received": 0,
        "charges": {"data": [{"id": "ch_old"}, "ch_new"]},
        "last_payment_error": {"message": "Declined"},
        "metadata": {"order_id": "7"},
        "status": "requires_payment_method",
        "client_secret": "pi_1_secret_x",
    }
    expanded = legacy | {"latest_charge": {"id": "ch_x", "object": "charge"}, "metadata": None}

    assert parse_payment_intent(legacy) == StripePaymentIntent(
        id="pi_1",
        currency="JPY",
        amount=Decimal("1200"),
        charge_id="ch_new",
        failure_message="Declined",
        metadata={"order_id": "7"},
        status="requires_payment_method",
        client_secret="pi_1_secret_x",
        failed=True,
    )
    parsed = parse_payment_intent(expanded)
    assert (parsed.charge_id, parsed.metadata) == ("ch_x", {})


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"id": "pi_1", "currency": "usd", "amount": 1, "charges": {"data": [None]}},
            "data.object.charges.data[0] is missing, not a charge or its id.",
        ),
        (
            {"id": "pi_1", "currency": "usd", "amount": "x" * 100},
            'data.object.amount is "' + "x" * 38 + '…", not a whole',
        ),
        (
            {"id": "pi_1", "currency": "kwd", "amount": 1005},
            "data.object.amount is 1005, finer than KWD amounts can be.",
        ),
    ],
)
def test_parse_payment_intent_names_the_field_and_a_short_value(obj, message):
    with pytest.raises(MalformedStripeEvent) as raised:
        parse_payment_intent(obj)

    assert str(raised.value).startswith(message)


def test_parse_charge_prefixes_fields_with_where_they_came_from():
    with pytest.raises(MalformedStripeEvent, match=r"^the Charge\.amount_refunded is -5,"):
        parse_charge({"id": "ch_1", "currency": "usd", "amount_refunded": -5}, "the Charge")


# --- Refunds ------------------------------------------------------------------------


def test_parse_refund_types_a_refund():
    refund = parse_refund(
        {
            "id": "re_1",
            "object": "refund",
            "amount": 1234,
            "currency": "usd",
            "status": "pending",
            "charge": "ch_1",
            "payment_intent": "pi_1",
            "metadata": {"refund_id": "7"},
        }
    )

    assert refund == StripeRefund(
        id="re_1",
        currency="USD",
        amount=Decimal("12.34"),
        status="pending",
        charge_id="ch_1",
        payment_intent_id="pi_1",
        metadata={"refund_id": "7"},
    )


@pytest.mark.parametrize("amount", [0, None, -1, "12"])
def test_parse_refund_refuses_an_amount_that_is_not_above_zero(amount):
    with pytest.raises(MalformedStripeEvent, match="data.object.amount"):
        parse_refund({"id": "re_1", "amount": amount, "currency": "usd"})


def test_a_charges_refund_list_is_typed_and_its_absence_is_none():
    listed = parse_charge(
        {
            "id": "ch_1",
            "currency": "usd",
            "amount": 5000,
            "amount_refunded": 1000,
            "refunds": {"data": [{"id": "re_1", "amount": 1000, "currency": "usd"}]},
        }
    )
    bare = parse_charge({"id": "ch_2", "currency": "usd", "amount": 5000})

    assert [refund.id for refund in listed.refunds] == ["re_1"]
    assert bare.refunds is None


def test_a_malformed_refund_list_names_the_field():
    with pytest.raises(MalformedStripeEvent, match=r"data.object.refunds.data\[0\].amount"):
        parse_charge(
            {
                "id": "ch_1",
                "currency": "usd",
                "refunds": {"data": [{"id": "re_1", "amount": "x", "currency": "usd"}]},
            }
        )
