"""What Stripe reports, applied once: each change is one history entry with its actor."""

from decimal import Decimal

import pytest

from backoffice.models import Order, OrderHistoryEntry, Payment
from backoffice.services.payment import PaymentService
from tests.stripe_fixtures import CARD_DECLINED, build_event, post_event

pytestmark = pytest.mark.django_db
Action = OrderHistoryEntry.Action


def intent_id_of(client_secret: str) -> str:
    """The PaymentIntent id inside a client secret."""
    return client_secret.split("_secret_")[0]


def entries(order: Order) -> list[OrderHistoryEntry]:
    """The order's history, oldest first."""
    return list(OrderHistoryEntry.objects.filter(order=order).order_by("created_at", "id"))


@pytest.fixture
def paid_intent(stripe_conference, make_order, localstripe):
    """An order whose intent localstripe has just confirmed; returns (order, intent)."""
    order = make_order("100.00", conference=stripe_conference)
    intent_id = intent_id_of(PaymentService.initiate_payment(order))
    return order, localstripe.confirm_payment_intent(intent_id)


def test_a_webhook_success_is_one_entry_by_stripe(client, stripe_conference, paid_intent):
    order, intent = paid_intent

    response = post_event(
        client, stripe_conference, build_event("payment_intent.succeeded", intent)
    )

    assert response.status_code == 200
    [entry] = entries(order)
    assert entry.action == Action.CARD_PAYMENT
    assert entry.actor_name == "Stripe"
    assert (entry.status_before, entry.status_after) == (Order.Status.PENDING, Order.Status.PAID)
    assert entry.amount == Decimal("100.00")
    assert intent["id"] in entry.message


def test_a_duplicate_or_replayed_delivery_adds_no_entry(client, stripe_conference, paid_intent):
    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)
    post_event(client, stripe_conference, event)

    post_event(client, stripe_conference, event)  # the same event again
    post_event(client, stripe_conference, build_event("payment_intent.succeeded", intent))

    assert len(entries(order)) == 1


def test_the_return_page_records_checkout_as_the_actor(stripe_conference, paid_intent):
    order, _intent = paid_intent

    PaymentService.refresh_from_stripe(order)

    [entry] = entries(order)
    assert (entry.action, entry.actor_name) == (Action.CARD_PAYMENT, "checkout")
    assert entry.status_after == Order.Status.PAID


def test_a_declined_card_is_an_update_that_changes_no_status(
    client, stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent_id = intent_id_of(PaymentService.initiate_payment(order))
    declined = localstripe.confirm_payment_intent(intent_id, card=CARD_DECLINED)

    post_event(client, stripe_conference, build_event("payment_intent.payment_failed", declined))

    [entry] = entries(order)
    assert (entry.action, entry.actor_name, entry.amount) == (Action.CARD_UPDATE, "Stripe", None)
    assert (entry.status_before, entry.status_after) == (Order.Status.PENDING,) * 2
    assert Payment.objects.get(order=order).status == Payment.Status.FAILED


def test_cash_replacing_an_open_card_attempt_records_both_by_the_clerk(
    stripe_conference, make_order, staff_user, django_capture_on_commit_callbacks
):
    order = make_order("100.00", conference=stripe_conference)
    PaymentService.initiate_payment(order)

    with django_capture_on_commit_callbacks(execute=True):
        PaymentService.record_manual(order, amount=Decimal("40.00"), staff_user=staff_user)

    manual, retired = entries(order)
    assert manual.action == Action.MANUAL_PAYMENT
    assert (retired.action, retired.actor) == (Action.CARD_UPDATE, staff_user)
    assert Payment.objects.get(method=Payment.Method.STRIPE).status == Payment.Status.CANCELED
