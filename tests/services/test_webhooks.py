"""Storing and applying Stripe events: once per id, errors kept, staff reprocessing."""

import pytest
from django.core.exceptions import ValidationError

from backoffice.models import Order, Payment, StripeEvent
from backoffice.services.payment import PaymentService
from backoffice.services.webhooks import (
    StripeEventFailed,
    receive_stripe_event,
    reprocess_stripe_event,
)
from tests.stripe_fixtures import build_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def confirmed(stripe_conference, make_order, localstripe):
    """An order and its confirmed intent at localstripe."""
    order = make_order("100.00", conference=stripe_conference)
    intent_id = PaymentService.initiate_payment(order).split("_secret_")[0]
    return order, localstripe.confirm_payment_intent(intent_id)


def test_receive_stores_and_applies_once(stripe_conference, confirmed):
    order, intent = confirmed
    event = build_event("payment_intent.succeeded", intent)

    first = receive_stripe_event(conference=stripe_conference, event=event)
    second = receive_stripe_event(conference=stripe_conference, event=event)

    assert first.pk == second.pk
    assert first.processed_at == second.processed_at
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_same_event_id_from_another_conference_is_refused(
    stripe_conference, stripe_jpy_conference, confirmed
):
    _, intent = confirmed
    event = build_event("payment_intent.succeeded", intent)
    receive_stripe_event(conference=stripe_conference, event=event)

    with pytest.raises(ValidationError, match="another conference"):
        receive_stripe_event(conference=stripe_jpy_conference, event=event)


def test_failure_is_stored_on_the_event(stripe_conference, confirmed):
    _, intent = confirmed
    event = build_event("payment_intent.succeeded", intent | {"currency": "eur"})

    with pytest.raises(StripeEventFailed):
        receive_stripe_event(conference=stripe_conference, event=event)

    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert stored.processed_at is None
    assert "EUR" in stored.last_error


def test_reprocess_applies_a_failed_event_after_the_cause_is_fixed(stripe_conference, confirmed):
    order, intent = confirmed
    bad_intent = intent | {"metadata": {"order_id": "0", "order_reference": "ORD-MISSING"}}
    bad_intent["id"] = "pi_not_on_file"
    event = build_event("payment_intent.succeeded", bad_intent)
    with pytest.raises(StripeEventFailed):
        receive_stripe_event(conference=stripe_conference, event=event)
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])

    with pytest.raises(ValidationError, match="failed again"):
        reprocess_stripe_event(stored)

    # Staff fix the data (the payload now names the real order) and reprocess.
    stored.payload["data"]["object"]["metadata"] = intent["metadata"]
    stored.save()
    reprocess_stripe_event(stored)

    stored.refresh_from_db()
    assert stored.processed_at is not None
    assert stored.last_error == ""
    assert Payment.objects.filter(
        order=order, stripe_payment_intent_id="pi_not_on_file", status=Payment.Status.SUCCEEDED
    ).exists()


def test_reprocessing_a_processed_event_changes_nothing(stripe_conference, confirmed):
    order, intent = confirmed
    stored = receive_stripe_event(
        conference=stripe_conference, event=build_event("payment_intent.succeeded", intent)
    )

    reprocess_stripe_event(stored)

    assert Payment.objects.filter(order=order).count() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
