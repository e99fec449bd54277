"""Dispute events at the webhook: built and signed by the test (localstripe never sends them)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from backoffice.models import Dispute, Order, OrderHistoryEntry, Payment, StripeEvent
from backoffice.services.payment import PaymentService
from backoffice.services.webhooks import HANDLERS
from tests.stripe_fixtures import build_event, dispute_object, post_event

pytestmark = pytest.mark.django_db
DISPUTE_EVENTS = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)


@pytest.fixture
def paid(client, stripe_conference, make_order, localstripe) -> tuple[Order, dict]:
    """An order of 100.00 paid at localstripe and applied by its signed webhook; (order, intent)."""
    order = make_order("100.00", conference=stripe_conference)
    intent_id = PaymentService.initiate_payment(order).split("_secret_")[0]
    intent = localstripe.confirm_payment_intent(intent_id)
    post_event(client, stripe_conference, build_event("payment_intent.succeeded", intent))
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    return order, intent


def dispute_on(intent: dict, status: str, **fields) -> dict:
    """Dispute dp_web on the intent's real charge, as Stripe sends it."""
    return dispute_object(
        intent["id"], intent["latest_charge"], 10000, status=status, dispute_id="dp_web", **fields
    )


def test_every_dispute_event_type_is_allowed():
    assert set(DISPUTE_EVENTS) <= set(HANDLERS)


def test_a_dispute_created_event_stores_the_dispute_and_flags_the_order(
    client, stripe_conference, paid
):
    order, intent = paid
    event = build_event("charge.dispute.created", dispute_on(intent, "needs_response"))

    response = post_event(client, stripe_conference, event)

    assert response.status_code == 200
    dispute = Dispute.objects.get(stripe_dispute_id="dp_web")
    assert (dispute.status, dispute.amount) == (Dispute.Status.NEEDS_RESPONSE, Decimal("100.00"))
    assert dispute.payment.stripe_payment_intent_id == intent["id"]
    order.refresh_from_db()
    assert order.needs_attention
    assert "dp_web" in order.attention_reason and intent["id"] in order.attention_reason
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert (stored.processed_at is not None, stored.last_error) == (True, "")


def test_dispute_events_duplicated_and_out_of_order_end_lost_once(client, stripe_conference, paid):
    order, intent = paid
    created = build_event("charge.dispute.created", dispute_on(intent, "needs_response"))
    withdrawn = build_event("charge.dispute.funds_withdrawn", dispute_on(intent, "needs_response"))
    reviewed = build_event("charge.dispute.updated", dispute_on(intent, "under_review"))
    closed = build_event("charge.dispute.closed", dispute_on(intent, "lost"))

    # The closing event first, then a redelivery of it, then the older ones.
    for event in (closed, closed, reviewed, created, withdrawn, reviewed):
        assert post_event(client, stripe_conference, event).status_code == 200

    dispute = Dispute.objects.get()
    assert dispute.status == Dispute.Status.LOST
    payment = Payment.objects.get(stripe_payment_intent_id=intent["id"])
    assert payment.lost_dispute_amount == Decimal("100.00")
    order.refresh_from_db()
    assert (order.status, order.needs_attention) == (Order.Status.REFUNDED, False)
    actions = list(order.history.values_list("action", flat=True))
    assert actions.count(OrderHistoryEntry.Action.DISPUTE_LOST) == 1
    assert OrderHistoryEntry.Action.DISPUTE not in actions
    assert StripeEvent.objects.filter(processed_at__isnull=True).count() == 0
    assert StripeEvent.objects.filter(type__startswith="charge.dispute.").count() == 4


def test_a_won_dispute_reinstated_leaves_the_order_paid_and_unflagged(
    client, stripe_conference, paid
):
    order, intent = paid
    post_event(
        client,
        stripe_conference,
        build_event("charge.dispute.created", dispute_on(intent, "needs_response")),
    )
    for event_type, status in (
        ("charge.dispute.closed", "won"),
        ("charge.dispute.funds_reinstated", "won"),
    ):
        event = build_event(event_type, dispute_on(intent, status))
        assert post_event(client, stripe_conference, event).status_code == 200

    order.refresh_from_db()
    assert (order.status, order.needs_attention, order.attention_reason) == (
        Order.Status.PAID,
        False,
        "",
    )
    assert Dispute.objects.get().status == Dispute.Status.WON


def test_a_dispute_on_an_unknown_payment_is_stored_unapplied_with_its_reason(
    client, stripe_conference, paid
):
    event = build_event(
        "charge.dispute.created",
        dispute_object("pi_stranger", "ch_stranger", 2500, dispute_id="dp_stranger"),
        "evt_stranger",
    )

    response = post_event(client, stripe_conference, event)

    assert response.status_code == 200
    stored = StripeEvent.objects.get(stripe_event_id="evt_stranger")
    assert stored.processed_at is None
    assert stored.last_error.startswith(
        "Stripe dispute dp_stranger (needs_response, 25.00 USD) is on payment pi_stranger "
        "(charge ch_stranger), which matches no payment here"
    )
    assert not Dispute.objects.exists()


def test_a_malformed_dispute_event_is_stored_unapplied(client, stripe_conference, paid):
    _, intent = paid
    bad = dispute_on(intent, "needs_response", amount="lots")

    response = post_event(
        client, stripe_conference, build_event("charge.dispute.created", bad, "evt_bad")
    )

    assert response.status_code == 200
    stored = StripeEvent.objects.get(stripe_event_id="evt_bad")
    assert stored.processed_at is None
    assert stored.last_error.startswith('data.object.amount is "lots"')
    assert not Dispute.objects.exists()


def test_a_dispute_shows_in_the_payment_history_and_the_timeline(
    client, admin_client, stripe_conference, paid
):
    order, intent = paid
    post_event(
        client, stripe_conference, build_event("charge.dispute.closed", dispute_on(intent, "lost"))
    )

    page = admin_client.get(reverse("admin:backoffice_order_change", args=[order.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Disputes" in html  # the payment history's column
    assert "dp_web" in html
    assert "Dispute lost" in html  # the timeline's entry
    assert "lost to disputes 100.00" in html  # beside the payment's amount
