"""Storing and applying Stripe events: once per id, errors kept, staff reprocessing."""

import pytest
from django.core.exceptions import ValidationError

from backoffice.models import Order, Payment, StripeEvent
from backoffice.services.payment import PaymentService
from backoffice.services.webhooks import (
    StripeEventFailed,
    StripeEventNotApplied,
    order_of_event,
    receive_stripe_event,
    reprocess_stripe_event,
)
from tests.stripe_fixtures import build_event, refunded_charge, succeeded_intent

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


def test_conferences_sharing_a_stripe_account_each_store_the_event_only_the_owner_applies_it(
    stripe_conference, stripe_jpy_conference, confirmed
):
    """Stripe sends each event of an account (same id) to every endpoint of that account."""
    order, intent = confirmed
    event = build_event("payment_intent.succeeded", intent)

    sibling = receive_stripe_event(conference=stripe_jpy_conference, event=event)  # first

    assert sibling.processed_at is not None
    assert sibling.last_error == ""
    assert sibling.note.startswith("Not for this conference")
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert Payment.objects.get(order=order).status == Payment.Status.PENDING

    owner = receive_stripe_event(conference=stripe_conference, event=event)

    assert owner.pk != sibling.pk
    assert owner.processed_at is not None
    assert owner.note == ""
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert StripeEvent.objects.filter(stripe_event_id=event["id"]).count() == 2


def test_intent_made_for_another_conference_is_a_no_op_even_if_unknown_here(
    stripe_conference, stripe_jpy_conference
):
    """A sibling conference's intent whose order this site does not have: not an error."""
    intent = {
        "id": "pi_sibling",
        "object": "payment_intent",
        "amount": 1000,
        "amount_received": 1000,
        "currency": "jpy",
        "metadata": {"order_id": "999999", "order_reference": "ORD-ELSEWHERE", "conference": "x"},
    }

    stored = receive_stripe_event(
        conference=stripe_conference, event=build_event("payment_intent.succeeded", intent)
    )

    assert stored.processed_at is not None
    assert "made for conference x" in stored.note
    assert not Payment.objects.exists()


def test_refund_of_a_sibling_conferences_charge_is_a_no_op(
    stripe_conference, stripe_jpy_conference, confirmed
):
    order, intent = confirmed
    receive_stripe_event(
        conference=stripe_conference, event=build_event("payment_intent.succeeded", intent)
    )
    charge = {
        "id": intent["latest_charge"]["id"],
        "object": "charge",
        "payment_intent": intent["id"],
        "currency": "usd",
        "amount": 10000,
        "amount_refunded": 10000,
    }

    stored = receive_stripe_event(
        conference=stripe_jpy_conference, event=build_event("charge.refunded", charge)
    )

    assert stored.processed_at is not None
    assert "another conference" in stored.note
    assert Payment.objects.get(order=order).refunded_amount == 0
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


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


def _intent_for(order, **fields) -> dict:
    """A succeeded PaymentIntent paying the order in full, with fields replaced."""
    return succeeded_intent(order, "pi_typed", **fields)


def test_malformed_content_is_stored_unapplied_with_a_readable_reason(signed_conference_order):
    conference, order = signed_conference_order
    event = build_event("payment_intent.succeeded", _intent_for(order, amount_received="abc"))

    with pytest.raises(StripeEventNotApplied) as raised:
        receive_stripe_event(conference=conference, event=event)

    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    reason = (
        'data.object.amount_received is "abc", not a whole, non-negative number of minor '
        "units (cents)."
    )
    assert raised.value.error == reason
    assert stored.last_error == reason
    assert stored.processed_at is None
    assert not Payment.objects.exists()


def test_a_retried_delivery_of_an_unapplied_event_fails_the_same_way(signed_conference_order):
    conference, order = signed_conference_order
    event = build_event("payment_intent.succeeded", _intent_for(order, metadata=["x"]))
    with pytest.raises(StripeEventNotApplied):
        receive_stripe_event(conference=conference, event=event)

    with pytest.raises(StripeEventNotApplied, match="metadata is a list"):
        receive_stripe_event(conference=conference, event=event)

    assert StripeEvent.objects.count() == 1


def test_reprocess_of_a_malformed_event_says_why_and_applies_once_fixed(signed_conference_order):
    conference, order = signed_conference_order
    event = build_event("payment_intent.succeeded", _intent_for(order, currency=840))
    with pytest.raises(StripeEventNotApplied):
        receive_stripe_event(conference=conference, event=event)
    stored = StripeEvent.objects.get()

    with pytest.raises(ValidationError, match="failed again: data.object.currency is 840"):
        reprocess_stripe_event(stored)

    stored.payload["data"]["object"]["currency"] = "usd"
    stored.save()
    reprocess_stripe_event(stored)
    stored.refresh_from_db()
    assert (stored.processed_at is not None, stored.last_error) == (True, "")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_unknown_event_types_are_not_parsed(signed_conference_order):
    """Only allow-listed events are applied, so only they must have Stripe's shapes."""
    conference, _ = signed_conference_order
    event = build_event("customer.updated", {"id": 7, "currency": ["no"]})
    event["data"] = "anything"

    stored = receive_stripe_event(conference=conference, event=event)

    assert stored.processed_at is not None
    assert stored.last_error == ""


@pytest.fixture
def signed_conference_order(conference, make_order):
    """A conference (no Stripe API needed) and a pending 100.00 USD order."""
    return conference, make_order("100.00")


# --- Each stored event names the order its object is about ---------------------


def test_an_event_is_linked_to_the_order_of_its_payment(stripe_conference, confirmed):
    order, intent = confirmed

    stored = receive_stripe_event(
        conference=stripe_conference, event=build_event("payment_intent.succeeded", intent)
    )

    assert StripeEvent.objects.get(pk=stored.pk).order == order


def test_an_event_about_no_payment_on_file_is_linked_by_its_metadata(signed_conference_order):
    conference, order = signed_conference_order

    stored = receive_stripe_event(
        conference=conference, event=build_event("payment_intent.succeeded", _intent_for(order))
    )

    assert StripeEvent.objects.get(pk=stored.pk).order == order


def test_a_refunded_charge_without_an_intent_is_linked_by_its_charge(signed_conference_order):
    conference, order = signed_conference_order
    receive_stripe_event(
        conference=conference, event=build_event("payment_intent.succeeded", _intent_for(order))
    )

    stored = receive_stripe_event(
        conference=conference,
        event=build_event("charge.refunded", refunded_charge("ch_typed", None, 10000, 10000)),
    )

    assert StripeEvent.objects.get(pk=stored.pk).order == order


def test_a_dispute_event_is_linked_through_its_payment_intent(signed_conference_order):
    """Disputes name the intent and the charge; no handler is needed to link them."""
    conference, order = signed_conference_order
    receive_stripe_event(
        conference=conference, event=build_event("payment_intent.succeeded", _intent_for(order))
    )
    dispute = {"id": "dp_1", "object": "dispute", "charge": "ch_x", "payment_intent": "pi_typed"}

    # Asked directly: the dispute handlers (and what they parse) are not this test's subject.
    assert order_of_event(conference, build_event("charge.dispute.created", dispute)) == order.pk


def test_an_event_that_failed_is_still_linked_to_its_order(signed_conference_order):
    """Failed events are the ones the order's "Needs attention" reasons must find."""
    conference, order = signed_conference_order
    event = build_event("payment_intent.succeeded", _intent_for(order, amount_received="abc"))

    with pytest.raises(StripeEventNotApplied):
        receive_stripe_event(conference=conference, event=event)

    assert StripeEvent.objects.get().order == order


def test_a_sibling_conferences_copy_of_an_event_links_no_order(
    stripe_conference, stripe_jpy_conference, confirmed
):
    _, intent = confirmed

    sibling = receive_stripe_event(
        conference=stripe_jpy_conference, event=build_event("payment_intent.succeeded", intent)
    )

    assert StripeEvent.objects.get(pk=sibling.pk).order is None


@pytest.mark.parametrize(
    "obj",
    [
        {"id": "pi_elsewhere", "object": "payment_intent", "metadata": {}},
        {"id": "pi_elsewhere", "object": "payment_intent", "metadata": {"order_id": "١٢"}},
        {"id": 7, "object": "charge", "payment_intent": ["x"], "metadata": "x"},
        "not an object",
    ],
)
def test_an_event_about_nothing_of_ours_links_no_order(signed_conference_order, obj):
    conference, _ = signed_conference_order

    stored = receive_stripe_event(conference=conference, event=build_event("customer.updated", obj))

    assert StripeEvent.objects.get(pk=stored.pk).order is None


def test_finding_an_events_order_costs_one_query(
    signed_conference_order, django_assert_num_queries
):
    conference, order = signed_conference_order
    receive_stripe_event(
        conference=conference, event=build_event("payment_intent.succeeded", _intent_for(order))
    )
    event = build_event("charge.refunded", refunded_charge("ch_typed", "pi_typed", 10000, 1000))

    with django_assert_num_queries(1):
        found = order_of_event(conference, event)

    assert found == order.pk


def test_reprocessing_an_event_stored_before_the_link_links_it(signed_conference_order):
    conference, order = signed_conference_order
    stored = receive_stripe_event(
        conference=conference, event=build_event("payment_intent.succeeded", _intent_for(order))
    )
    StripeEvent.objects.filter(pk=stored.pk).update(order=None)  # as stored before 0011
    stored.refresh_from_db()

    reprocess_stripe_event(stored)

    assert StripeEvent.objects.get(pk=stored.pk).order == order
