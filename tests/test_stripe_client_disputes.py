"""The Stripe client's disputes: ``parse_dispute``, and ``list_disputes`` against localstripe."""

import datetime
import uuid
from decimal import Decimal

import pytest

from backoffice.stripe_client import (
    MalformedStripeEvent,
    PaymentProviderError,
    StripeClient,
    StripeDispute,
    parse_dispute,
)
from tests.stripe_fixtures import dispute_object, pay_by_card

OPENED = int(datetime.datetime(2026, 11, 2, 9, 30, tzinfo=datetime.UTC).timestamp())


def test_parse_dispute_types_a_dispute():
    obj = dispute_object(
        "pi_1", "ch_1", 1234, status="under_review", dispute_id="dp_1", created=OPENED
    )
    obj["metadata"] = {"note": "x"}

    assert parse_dispute(obj) == StripeDispute(
        id="dp_1",
        currency="USD",
        amount=Decimal("12.34"),
        status="under_review",
        reason="fraudulent",
        created=datetime.datetime(2026, 11, 2, 9, 30, tzinfo=datetime.UTC),
        charge_id="ch_1",
        payment_intent_id="pi_1",
        metadata={"note": "x"},
    )


def test_parse_dispute_reads_an_expanded_charge_and_no_intent():
    obj = dispute_object(None, "unused", 500, currency="jpy") | {"charge": {"id": "ch_9"}}

    dispute = parse_dispute(obj)

    assert (dispute.charge_id, dispute.payment_intent_id) == ("ch_9", "")
    assert (dispute.amount, dispute.currency) == (Decimal("500"), "JPY")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("status", "charge_refunded", 'data.object.status is "charge_refunded", not a dispute'),
        ("status", None, "data.object.status is missing, not a dispute status"),
        ("amount", None, "data.object.amount is missing, not an amount"),
        ("amount", -1, "data.object.amount is -1, not a whole"),
        ("charge", None, "data.object.charge is missing, not a Stripe id"),
        ("created", "yesterday", 'data.object.created is "yesterday", not a Unix timestamp'),
        ("created", True, "data.object.created is true, not a Unix timestamp"),
        ("currency", "dollars", 'data.object.currency is "dollars", not a three-letter'),
        ("reason", 7, "data.object.reason is 7, not text"),
    ],
)
def test_parse_dispute_names_the_field_it_refuses(field, value, message):
    obj = dispute_object("pi_1", "ch_1", 1000) | {field: value}

    with pytest.raises(MalformedStripeEvent) as raised:
        parse_dispute(obj)

    assert str(raised.value).startswith(message)


def test_list_disputes_returns_the_intents_disputes_from_stripe(
    stripe_conference, make_order, localstripe
):
    payment = pay_by_card(make_order("100.00", conference=stripe_conference), localstripe)
    intent, charge = payment.stripe_payment_intent_id, payment.stripe_charge_id
    first = localstripe.put_dispute(dispute_object(intent, charge, 4000, created=OPENED))
    second = localstripe.put_dispute(
        dispute_object(intent, charge, 6000, status="lost", created=OPENED + 60)
    )
    localstripe.put_dispute(dispute_object(f"pi_other_{uuid.uuid4().hex[:8]}", "ch_other", 100))

    disputes = StripeClient(stripe_conference).list_disputes(intent)

    assert [(d.id, d.amount, d.status) for d in disputes] == [
        (second["id"], Decimal("60.00"), "lost"),
        (first["id"], Decimal("40.00"), "needs_response"),
    ]
    assert {(d.payment_intent_id, d.charge_id) for d in disputes} == {(intent, charge)}


def test_list_disputes_of_an_intent_without_any_is_empty(stripe_conference):
    assert StripeClient(stripe_conference).list_disputes(f"pi_none_{uuid.uuid4().hex}") == []


def test_an_unreadable_dispute_from_stripe_is_a_provider_error(stripe_conference, localstripe):
    intent = f"pi_bad_{uuid.uuid4().hex[:8]}"
    localstripe.put_dispute(dispute_object(intent, "ch_bad", 100, status="mystery"))

    with pytest.raises(
        PaymentProviderError, match=r"cannot read: Stripe's list of disputes\[0\].status"
    ):
        StripeClient(stripe_conference).list_disputes(intent)


def test_an_unreachable_stripe_is_a_provider_error(stripe_conference, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens on the discard port

    with pytest.raises(PaymentProviderError, match="list the payment's disputes"):
        StripeClient(stripe_conference).list_disputes("pi_1")
