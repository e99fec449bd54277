"""The Stripe webhook endpoint: signatures, storage once per event, and what it answers."""

import json
import time
from decimal import Decimal

import pytest
from django.urls import reverse

from backoffice.models import Order, OrderHistoryEntry, Payment, Refund, StripeEvent
from backoffice.services.payment import PaymentService
from tests.stripe_fixtures import (
    CARD_DECLINED,
    build_event,
    post_body,
    post_event,
    sign_payload,
    succeeded_intent,
)

pytestmark = pytest.mark.django_db


def intent_id_of(client_secret: str) -> str:
    """The PaymentIntent id inside a client secret."""
    return client_secret.split("_secret_")[0]


@pytest.fixture
def paid_intent(stripe_conference, make_order, localstripe):
    """An order whose intent localstripe has just confirmed; returns (order, intent)."""
    order = make_order("100.00", conference=stripe_conference)
    intent_id = intent_id_of(PaymentService.initiate_payment(order))
    return order, localstripe.confirm_payment_intent(intent_id)


def webhook_url(conference) -> str:
    return reverse("backoffice:stripe_webhook", args=[conference.slug])


def test_signed_succeeded_event_marks_the_order_paid(client, stripe_conference, paid_intent):
    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)

    response = post_event(client, stripe_conference, event)

    assert response.status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert stored.type == "payment_intent.succeeded"
    assert stored.conference == stripe_conference
    assert stored.processed_at is not None
    assert stored.last_error == ""
    assert stored.payload["data"]["object"]["id"] == intent["id"]
    assert stored.livemode is False


def test_localstripes_own_event_is_accepted(client, stripe_conference, paid_intent, localstripe):
    """The exact event localstripe generated (its shape, not ours), signed and posted."""
    order, intent = paid_intent
    event = next(
        e
        for e in localstripe.events("payment_intent.succeeded")
        if e["data"]["object"]["id"] == intent["id"]
    )

    assert post_event(client, stripe_conference, event).status_code == 200

    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_duplicate_delivery_is_a_200_no_op(client, stripe_conference, paid_intent, run_tasks):
    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)
    fired = []

    def receiver(sender, order, user, **kwargs):
        fired.append(order.pk)

    from backoffice.signals import order_paid

    order_paid.connect(receiver)
    try:
        first = post_event(client, stripe_conference, event)
        run_tasks()
        second = post_event(client, stripe_conference, event)
        run_tasks()
    finally:
        order_paid.disconnect(receiver)

    assert (first.status_code, second.status_code) == (200, 200)
    assert StripeEvent.objects.filter(stripe_event_id=event["id"]).count() == 1
    assert Payment.objects.filter(order=order).count() == 1
    assert fired == [order.pk]


def test_replayed_event_with_a_new_id_changes_nothing(client, stripe_conference, paid_intent):
    """Stripe may send the same change twice under two event ids: the ledger stays right."""
    order, intent = paid_intent
    post_event(client, stripe_conference, build_event("payment_intent.succeeded", intent))

    response = post_event(
        client, stripe_conference, build_event("payment_intent.succeeded", intent)
    )

    assert response.status_code == 200
    assert Payment.objects.filter(order=order).count() == 1
    assert Payment.objects.get(order=order).amount == Decimal("100.00")
    assert StripeEvent.objects.count() == 2


def test_forged_signature_is_refused_and_nothing_stored(client, stripe_conference, paid_intent):
    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)

    response = post_event(client, stripe_conference, event, secret="whsec_attacker")

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_missing_signature_is_refused(client, stripe_conference, paid_intent):
    _, intent = paid_intent
    response = client.post(
        webhook_url(stripe_conference),
        data=json.dumps(build_event("payment_intent.succeeded", intent)),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_expired_signature_is_refused(client, stripe_conference, paid_intent):
    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)

    response = post_event(client, stripe_conference, event, timestamp=int(time.time()) - 10 * 60)

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_body_altered_after_signing_is_refused(client, stripe_conference, paid_intent):
    _, intent = paid_intent
    body = json.dumps(build_event("payment_intent.succeeded", intent))
    header = sign_payload(body, stripe_conference.stripe_webhook_secret)

    response = client.post(
        webhook_url(stripe_conference),
        data=body.replace('"livemode": false', '"livemode": true'),
        content_type="application/json",
        headers={"Stripe-Signature": header},
    )

    assert response.status_code == 400


def test_malformed_body_with_valid_signature_is_refused(client, stripe_conference):
    body = "{not json"
    response = client.post(
        webhook_url(stripe_conference),
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign_payload(body, stripe_conference.stripe_webhook_secret)},
    )

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_body_that_is_not_utf8_is_refused(client, stripe_conference):
    response = client.post(
        webhook_url(stripe_conference),
        data=b"\xff\xfe{}",
        content_type="application/json",
        headers={"Stripe-Signature": "t=1,v1=abc"},
    )

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_json_that_is_not_an_event_is_refused(client, stripe_conference):
    body = json.dumps({"hello": "world"})
    response = client.post(
        webhook_url(stripe_conference),
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign_payload(body, stripe_conference.stripe_webhook_secret)},
    )

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_unknown_conference_is_refused(client, stripe_conference, paid_intent):
    _, intent = paid_intent
    body = json.dumps(build_event("payment_intent.succeeded", intent))

    response = client.post(
        reverse("backoffice:stripe_webhook", args=["no-such-conference"]),
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign_payload(body, stripe_conference.stripe_webhook_secret)},
    )

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_another_conferences_secret_is_refused(
    client, stripe_conference, stripe_jpy_conference, paid_intent
):
    stripe_jpy_conference.stripe_webhook_secret = "whsec_jp_only"
    stripe_jpy_conference.save()
    _, intent = paid_intent

    response = post_event(
        client,
        stripe_conference,
        build_event("payment_intent.succeeded", intent),
        secret="whsec_jp_only",
    )

    assert response.status_code == 400


def test_shared_stripe_account_sibling_answers_200_and_the_owner_applies_the_event(
    client, stripe_conference, stripe_jpy_conference, paid_intent
):
    """Two conferences on one Stripe account: both endpoints get the same event."""
    stripe_jpy_conference.stripe_webhook_secret = "whsec_jp_only"
    stripe_jpy_conference.save()
    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)

    sibling = post_event(client, stripe_jpy_conference, event, secret="whsec_jp_only")
    owner = post_event(client, stripe_conference, event)

    assert (sibling.status_code, owner.status_code) == (200, 200)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    stored = StripeEvent.objects.filter(stripe_event_id=event["id"])
    assert {e.conference_id: e.processed_at is not None for e in stored} == {
        stripe_jpy_conference.pk: True,
        stripe_conference.pk: True,
    }
    # A retry of the sibling's delivery is a duplicate, not a second no-op run.
    assert post_event(client, stripe_jpy_conference, event, secret="whsec_jp_only").status_code == (
        200
    )
    assert stored.count() == 2


def test_get_is_not_allowed(client, stripe_conference):
    assert client.get(webhook_url(stripe_conference)).status_code == 405


def test_webhook_needs_no_csrf_token(stripe_conference, paid_intent):
    from django.test import Client

    _, intent = paid_intent
    response = post_event(
        Client(enforce_csrf_checks=True),
        stripe_conference,
        build_event("payment_intent.succeeded", intent),
    )

    assert response.status_code == 200


def test_unknown_event_types_are_stored_and_acknowledged(client, stripe_conference):
    event = build_event("customer.created", {"id": "cus_123", "object": "customer"})

    response = post_event(client, stripe_conference, event)

    assert response.status_code == 200
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert stored.processed_at is not None


def test_declined_card_event_marks_attempt_failed(
    client, stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order)), card=CARD_DECLINED
    )

    response = post_event(
        client, stripe_conference, build_event("payment_intent.payment_failed", intent)
    )

    assert response.status_code == 200
    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.FAILED
    assert "declined" in payment.note


def test_canceled_event_marks_attempt_canceled(client, stripe_conference, make_order, localstripe):
    order = make_order("100.00", conference=stripe_conference)
    intent_id = intent_id_of(PaymentService.initiate_payment(order))
    intent = localstripe.api("POST", f"/v1/payment_intents/{intent_id}/cancel")

    post_event(client, stripe_conference, build_event("payment_intent.canceled", intent))

    assert Payment.objects.get(order=order).status == Payment.Status.CANCELED


def test_out_of_order_failure_after_success_is_ignored(client, stripe_conference, paid_intent):
    order, intent = paid_intent
    failed = intent | {
        "status": "requires_payment_method",
        "last_payment_error": {"message": "Your card was declined."},
    }
    post_event(client, stripe_conference, build_event("payment_intent.succeeded", intent))

    response = post_event(
        client, stripe_conference, build_event("payment_intent.payment_failed", failed)
    )

    assert response.status_code == 200
    assert Payment.objects.get(order=order).status == Payment.Status.SUCCEEDED
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_success_for_a_cancelled_order_is_flagged_not_lost(client, stripe_conference, paid_intent):
    order, intent = paid_intent
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)

    response = post_event(
        client, stripe_conference, build_event("payment_intent.succeeded", intent)
    )

    assert response.status_code == 200
    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.SUCCEEDED
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.needs_attention
    assert "Overpaid" in order.attention_reason


def test_charge_refunded_event_signed_by_us(client, stripe_conference, paid_intent, localstripe):
    """localstripe never sends charge.refunded: we build and sign it from its real charge."""
    order, intent = paid_intent
    post_event(client, stripe_conference, build_event("payment_intent.succeeded", intent))
    charge_id = intent["latest_charge"]["id"]
    localstripe.api("POST", "/v1/refunds", charge=charge_id)
    charge = localstripe.api("GET", f"/v1/charges/{charge_id}")

    response = post_event(client, stripe_conference, build_event("charge.refunded", charge))

    assert response.status_code == 200
    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.REFUNDED
    assert payment.refunded_amount == Decimal("100.00")
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED


def test_money_for_an_order_we_cannot_place_is_stored_unapplied_and_answered_200(
    stripe_conference,
):
    """Stripe retries every non-2xx for days; the same event would fail the same way."""
    from django.test import Client

    intent = {
        "id": "pi_orphan",
        "object": "payment_intent",
        "amount": 1000,
        "amount_received": 1000,
        "currency": "usd",
        "metadata": {"order_id": "424242", "order_reference": "ORD-GONE"},
    }
    event = build_event("payment_intent.succeeded", intent)

    response = post_event(Client(raise_request_exception=False), stripe_conference, event)

    assert response.status_code == 200
    assert b"stored but not applied" in response.content
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert stored.processed_at is None
    assert stored.last_error == (
        "Stripe payment pi_orphan names order ORD-GONE, which does not exist here."
    )
    assert not Payment.objects.exists()


def test_a_failed_event_is_applied_when_stripe_retries(stripe_conference, paid_intent, monkeypatch):
    from django.db import OperationalError
    from django.test import Client

    from backoffice.services import webhooks

    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)
    real_handler = webhooks.HANDLERS["payment_intent.succeeded"]
    calls = []

    def flaky(conference, obj):
        calls.append(obj["id"])
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return real_handler(conference, obj)

    monkeypatch.setitem(webhooks.HANDLERS, "payment_intent.succeeded", flaky)
    client = Client(raise_request_exception=False)

    assert post_event(client, stripe_conference, event).status_code == 500
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert "deadlock detected" in stored.last_error
    assert stored.processed_at is None
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING

    assert post_event(client, stripe_conference, event).status_code == 200  # Stripe retries

    stored.refresh_from_db()
    assert stored.processed_at is not None
    assert stored.last_error == ""
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


@pytest.mark.django_db(transaction=True)
def test_event_for_an_order_locked_too_long_answers_503_and_applies_on_retry(
    stripe_conference, make_order, settings
):
    """A clerk's transaction holds the order: the webhook gives up and Stripe retries."""
    import threading

    from django.db import connection, connections, transaction
    from django.test import Client

    if connection.vendor != "postgresql":
        pytest.skip("lock_timeout is a PostgreSQL setting")
    settings.STRIPE_WEBHOOK_LOCK_TIMEOUT_MS = 200
    order = make_order("100.00", conference=stripe_conference)
    intent = succeeded_intent(order, "pi_locked")
    event = build_event("payment_intent.succeeded", intent)
    locked, release = threading.Event(), threading.Event()

    def clerk_holds_the_order() -> None:
        try:
            with transaction.atomic():
                Order.objects.select_for_update().get(pk=order.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    clerk = threading.Thread(target=clerk_holds_the_order)
    clerk.start()
    try:
        assert locked.wait(timeout=10)
        busy = post_event(Client(), stripe_conference, event)
    finally:
        release.set()
        clerk.join(timeout=30)

    assert busy.status_code == 503
    assert busy["Retry-After"]
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert stored.processed_at is None and stored.last_error == ""
    assert not Payment.objects.filter(order=order).exists()

    retried = post_event(Client(), stripe_conference, event)

    assert retried.status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


# --- Hostile but correctly signed bodies ---------------------------------------------------


@pytest.fixture
def signed_conference(conference):
    """A conference with a webhook secret (no Stripe API needed: nothing here calls it)."""
    conference.stripe_webhook_secret = "whsec_hostile_test"
    conference.save()
    return conference


@pytest.fixture
def succeeded_event(signed_conference, make_order):
    """A well-formed ``payment_intent.succeeded`` paying a pending order of 100.00 USD."""
    order = make_order("100.00", conference=signed_conference)
    intent = succeeded_intent(order, "pi_hostile")
    return order, build_event("payment_intent.succeeded", intent, "evt_hostile")


def replaced(event: dict, path: str, value) -> dict:
    """A deep copy of the event with the field at a dotted path set (or, for ..., removed)."""
    copy = json.loads(json.dumps(event))
    *parents, last = path.split(".")
    target = copy
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return copy


# A well-formed envelope whose data.object holds one value, written as raw JSON text.
EVENT_AROUND = '{"id": "evt_1", "type": "x.y", "data": {"object": {"v": %s}}}'


def envelope(**fields) -> str:
    """A body with the given top-level fields around an empty object."""
    return json.dumps({"data": {"object": {}}, **fields})


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[]", id="a list"),
        pytest.param('"evt_1"', id="a string"),
        pytest.param("42", id="a number"),
        pytest.param("null", id="null"),
        pytest.param(envelope(type="payment_intent.succeeded"), id="no id"),
        pytest.param(envelope(id=42, type="payment_intent.succeeded"), id="numeric id"),
        pytest.param(envelope(id=["evt_1"], type="payment_intent.succeeded"), id="list id"),
        pytest.param(envelope(id="", type="payment_intent.succeeded"), id="empty id"),
        pytest.param(envelope(id="evt_" + "9" * 252, type="x"), id="id over 255 characters"),
        pytest.param(envelope(id="evt_1"), id="no type"),
        pytest.param(envelope(id="evt_1", type=7), id="numeric type"),
        pytest.param(envelope(id="evt_1", type="t" * 101), id="type over 100 characters"),
        pytest.param(EVENT_AROUND % "NaN", id="NaN"),
        pytest.param(EVENT_AROUND % "-Infinity", id="Infinity"),
        pytest.param(EVENT_AROUND % "1e400", id="float overflow"),
        pytest.param(EVENT_AROUND % ("1" + "0" * 5000), id="5001-digit integer"),
        pytest.param(EVENT_AROUND % ("[" * 40 + "]" * 40), id="nested 40 deep"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="deeper than the parser's stack"),
    ],
)
def test_signed_body_whose_envelope_cannot_be_stored_is_refused_400(
    client, signed_conference, body
):
    response = post_body(client, signed_conference, body)

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_event_id_at_the_column_length_is_stored(client, signed_conference):
    event_id = "evt_" + "9" * 251

    response = post_body(client, signed_conference, envelope(id=event_id, type="x.y"))

    assert response.status_code == 200
    assert StripeEvent.objects.get().stripe_event_id == event_id


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (
            "data.object.amount_received",
            "abc",
            'data.object.amount_received is "abc", not a whole, non-negative number of minor '
            "units (cents).",
        ),
        ("data.object.amount_received", [10000], "data.object.amount_received is a list,"),
        ("data.object.amount_received", -10000, "data.object.amount_received is -10000,"),
        ("data.object.amount_received", 100.5, "data.object.amount_received is 100.5,"),
        ("data.object.amount_received", True, "data.object.amount_received is true,"),
        ("data.object.amount", {"value": 1}, "data.object.amount is an object,"),
        (
            "data.object.amount_received",
            10**20,
            "data.object.amount_received is 100000000000000000000, more than the ledger holds",
        ),
        (
            "data.object.metadata",
            ["order_id", "1"],
            "data.object.metadata is a list, not an object.",
        ),
        ("data.object.metadata", "order 1", 'data.object.metadata is "order 1", not an object.'),
        ("data.object.metadata.order_id", 5, "data.object.metadata.order_id is 5, not text."),
        (
            "data.object.currency",
            840,
            "data.object.currency is 840, not a three-letter currency code.",
        ),
        ("data.object.currency", ..., "data.object.currency is missing,"),
        ("data.object.currency", "dollars", 'data.object.currency is "dollars",'),
        ("data.object.id", 42, "data.object.id is 42, not a Stripe id"),
        ("data.object.id", ..., "data.object.id is missing, not a Stripe id"),
        (
            "data.object.id",
            "pi_" + "x" * 300,
            'data.object.id is "pi_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…", not a Stripe id '
            "(text of 1 to 255 characters).",
        ),
        ("data.object.latest_charge", "ch_" + "x" * 300, "data.object.latest_charge is"),
        ("data.object.latest_charge", 7, "data.object.latest_charge is 7, not a Stripe id"),
        ("data.object.latest_charge", {"id": 7}, "data.object.latest_charge.id is 7,"),
        ("data.object.charges", [], "data.object.charges is a list, not an object."),
        ("data.object.last_payment_error", "boom", 'data.object.last_payment_error is "boom"'),
        ("data.object", [], "data.object is a list, not an object."),
        ("data.object", "pi_1", 'data.object is "pi_1", not an object.'),
        ("data.object", ..., "data.object is missing, not an object."),
        ("data", "pi_1", 'data is "pi_1", not an object.'),
        ("data", ..., "data is missing, not an object."),
    ],
)
def test_signed_event_with_malformed_content_is_stored_unapplied_and_answered_200(
    client, signed_conference, succeeded_event, path, value, reason
):
    order, event = succeeded_event

    response = post_event(client, signed_conference, replaced(event, path, value))

    assert response.status_code == 200
    assert response.content.decode().startswith(f"Event stored but not applied: {reason}")
    stored = StripeEvent.objects.get(stripe_event_id="evt_hostile")
    assert stored.processed_at is None
    assert stored.last_error.startswith(reason)
    assert not Payment.objects.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_the_same_well_formed_event_is_applied(client, signed_conference, succeeded_event):
    """The baseline of the malformed cases above: unchanged, it pays the order."""
    order, event = succeeded_event

    assert post_event(client, signed_conference, event).status_code == 200

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert StripeEvent.objects.get().last_error == ""


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("data.object.amount_refunded", "abc", 'data.object.amount_refunded is "abc",'),
        ("data.object.amount_refunded", -1, "data.object.amount_refunded is -1,"),
        ("data.object.payment_intent", 7, "data.object.payment_intent is 7, not a Stripe id"),
        ("data.object.metadata", [], "data.object.metadata is a list, not an object."),
        ("data.object.currency", None, "data.object.currency is missing,"),
        ("data.object.currency", "jpy", "Refunded charge ch_hostile is in JPY, but ORD-"),
    ],
)
def test_malformed_refund_is_stored_unapplied_and_answered_200(
    client, signed_conference, succeeded_event, path, value, reason
):
    order, paying = succeeded_event
    post_event(client, signed_conference, paying)
    charge = {
        "id": "ch_hostile",
        "object": "charge",
        "payment_intent": "pi_hostile",
        "currency": "usd",
        "amount": 10000,
        "amount_refunded": 10000,
    }
    event = replaced(build_event("charge.refunded", charge, "evt_refund"), path, value)

    response = post_event(client, signed_conference, event)

    assert response.status_code == 200
    stored = StripeEvent.objects.get(stripe_event_id="evt_refund")
    assert stored.processed_at is None
    assert stored.last_error.startswith(reason)
    payment = Payment.objects.get(order=order)
    assert (payment.status, payment.refunded_amount) == (Payment.Status.SUCCEEDED, 0)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_nul_characters_and_lone_surrogates_are_stored_replaced_and_the_event_applied(
    client, signed_conference, succeeded_event
):
    """PostgreSQL refuses NUL in text and jsonb: the stored copy has U+FFFD instead."""
    order, event = succeeded_event
    event["data"]["object"]["metadata"]["note"] = "cash\u0000desk \ud800"
    event["data"]["object"]["description"] = {"key\u0000": "\u0000"}

    response = post_event(client, signed_conference, event)

    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    intent = stored.payload["data"]["object"]
    assert intent["metadata"]["note"] == "cash\ufffddesk \ufffd"
    assert intent["description"] == {"key\ufffd": "\ufffd"}
    assert stored.processed_at is not None
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_nul_in_the_event_id_and_type_is_stored_replaced(client, signed_conference):
    response = post_body(
        client, signed_conference, envelope(id="evt_\u0000", type="customer.\u0000")
    )

    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert (stored.stripe_event_id, stored.type) == ("evt_\ufffd", "customer.\ufffd")
    assert stored.processed_at is not None


@pytest.mark.postgres
def test_postgresql_refuses_nul_in_jsonb_which_is_why_it_is_replaced(signed_conference):
    """The reason for the replacement above: without it this is the webhook's 500."""
    from django.db import DataError, connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("NUL in jsonb is refused by PostgreSQL only")
    with pytest.raises(DataError), transaction.atomic():
        StripeEvent.objects.create(
            stripe_event_id="evt_nul", conference=signed_conference, type="x", payload={"a": "\0"}
        )


# --- Refund events (localstripe sends none: built from its real objects, signed here) ---


def refund_started_here(order, staff_user, amount: str = "40.00"):
    """A card refund made by the service against localstripe; returns the Refund row."""
    payment = Payment.objects.get(order=order)
    return PaymentService.refund(
        payment, amount=Decimal(amount), reason=Refund.Reason.OTHER, staff_user=staff_user
    )


def test_refund_events_duplicated_and_out_of_order_never_count_twice(
    client, stripe_conference, paid_intent, localstripe, staff_user
):
    order, intent = paid_intent
    post_event(client, stripe_conference, build_event("payment_intent.succeeded", intent))
    refund = refund_started_here(order, staff_user)
    made = localstripe.api("GET", f"/v1/refunds/{refund.stripe_refund_id}")
    charge = localstripe.api("GET", f"/v1/charges/{made['charge']}")
    updated = build_event("refund.updated", made)
    events = [
        updated,
        build_event("charge.refunded", charge),
        build_event("charge.refund.updated", made),
        updated,  # the same delivery again
        build_event("refund.created", made | {"status": "pending"}),  # the oldest, arrives last
    ]

    answers = [post_event(client, stripe_conference, event).status_code for event in events]

    assert answers == [200] * 5
    [row] = Refund.objects.filter(payment__order=order)
    assert (row.pk, row.status) == (refund.pk, Refund.Status.SUCCEEDED)
    payment = Payment.objects.get(order=order)
    assert payment.refunded_amount == Decimal("40.00")
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED
    assert not StripeEvent.objects.exclude(last_error="").exists()


def test_a_dashboard_refund_event_shows_on_the_timeline_by_stripe(
    client, admin_client, stripe_conference, paid_intent, localstripe
):
    order, intent = paid_intent
    post_event(client, stripe_conference, build_event("payment_intent.succeeded", intent))
    made = localstripe.api("POST", "/v1/refunds", payment_intent=intent["id"], amount=10000)

    response = post_event(client, stripe_conference, build_event("refund.created", made))

    assert response.status_code == 200
    row = Refund.objects.get(stripe_refund_id=made["id"])
    assert (row.status, row.amount, row.created_by) == (
        Refund.Status.SUCCEEDED,
        Decimal("100.00"),
        None,
    )
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    entry = OrderHistoryEntry.objects.filter(order=order).order_by("created_at", "id").last()
    assert (entry.action, entry.actor_name) == (OrderHistoryEntry.Action.REFUND, "Stripe")
    page = admin_client.get(reverse("admin:backoffice_order_change", args=[order.pk]))
    timeline = page.content.decode()
    assert made["id"] in timeline
    assert "Stripe" in timeline


def test_a_malformed_refund_event_is_stored_unapplied(client, stripe_conference, paid_intent):
    order, intent = paid_intent
    post_event(client, stripe_conference, build_event("payment_intent.succeeded", intent))
    bad = {
        "id": "re_bad",
        "object": "refund",
        "amount": "lots",
        "currency": "usd",
        "payment_intent": intent["id"],
        "status": "succeeded",
    }

    response = post_event(client, stripe_conference, build_event("refund.updated", bad, "evt_bad"))

    assert response.status_code == 200
    stored = StripeEvent.objects.get(stripe_event_id="evt_bad")
    assert stored.processed_at is None
    assert "data.object.amount" in stored.last_error
    assert not Refund.objects.exists()


# --- Database errors: 503 with Retry-After, nothing changed --------------------------------


def injected_database_error(sqlstate: str, when: str):  # noqa: ANN201 (an execute wrapper)
    """An execute wrapper: the first statement containing ``when`` is replaced by one that
    makes PostgreSQL itself raise ``sqlstate`` (a real server error, at a chosen moment)."""
    fired = []

    def wrapper(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        if when in sql and not fired:
            fired.append(sql)
            sql = f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$"
            return execute(sql, None, many, context)
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sqlstate", ["40001", "40P01"], ids=["serialization-failure", "deadlock"])
def test_a_transaction_rolled_back_by_the_database_answers_503_and_applies_on_retry(
    client, stripe_conference, make_order, sqlstate
):
    """The order's row lock ends in a serialization failure or deadlock: Stripe retries."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("serialization failures and deadlocks are PostgreSQL's SQLSTATEs")
    order = make_order("100.00", conference=stripe_conference)
    event = build_event("payment_intent.succeeded", succeeded_intent(order, "pi_busy"))
    order_lock = f'FOR UPDATE OF "{Order._meta.db_table}"'  # lock_order, inside _apply

    with connection.execute_wrapper(injected_database_error(sqlstate, order_lock)):
        busy = post_event(client, stripe_conference, event)

    assert busy.status_code == 503
    assert int(busy["Retry-After"]) > 0
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert (stored.processed_at, stored.last_error) == (None, "")
    assert not Payment.objects.filter(order=order).exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING

    retried = post_event(client, stripe_conference, event)

    assert retried.status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_event_lookup_runs_under_the_statement_time_limit(
    client, stripe_conference, make_order, settings
):
    """With the events table locked, the first query of the webhook gives up in time."""
    from django.db import connection

    from tests.deploy_env import shared_database_url
    from tests.fault_injection import table_locked

    if connection.vendor != "postgresql":
        pytest.skip("statement_timeout and LOCK TABLE are PostgreSQL's")
    settings.STRIPE_WEBHOOK_LOCK_TIMEOUT_MS = 5000  # longer: the statement limit fires first
    settings.STRIPE_WEBHOOK_STATEMENT_TIMEOUT_MS = 300
    order = make_order("100.00", conference=stripe_conference)
    event = build_event("payment_intent.succeeded", succeeded_intent(order, "pi_slow"))

    with table_locked(shared_database_url(), StripeEvent._meta.db_table, release_after=20):
        started = time.monotonic()
        busy = post_event(client, stripe_conference, event)
        seconds = time.monotonic() - started

    assert busy.status_code == 503
    assert int(busy["Retry-After"]) > 0
    assert seconds < 2
    assert not StripeEvent.objects.exists()
    assert not Payment.objects.exists()
    with connection.cursor() as cursor:  # the request's limits did not outlive it
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


@pytest.mark.django_db(transaction=True)
def test_a_locked_sqlite_database_answers_503(client, stripe_conference, make_order):
    """SQLite (development): another connection holds the file's lock past the timeout."""
    import sqlite3

    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's file lock; PostgreSQL's lock waits are tested above")
    order = make_order("100.00", conference=stripe_conference)
    event = build_event("payment_intent.succeeded", succeeded_intent(order, "pi_locked_file"))
    options = connection.settings_dict.setdefault("OPTIONS", {})
    timeout = options.get("timeout")
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        connection.close()
        options["timeout"] = 0.1
        holder.execute("BEGIN EXCLUSIVE")
        busy = post_event(client, stripe_conference, event)
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        connection.close()
        options["timeout"] = timeout

    assert busy.status_code == 503
    assert int(busy["Retry-After"]) > 0
    assert not StripeEvent.objects.exists()
    assert post_event(client, stripe_conference, event).status_code == 200
