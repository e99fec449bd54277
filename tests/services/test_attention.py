"""The "Needs attention" selector: every reason appears, and goes away once resolved."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backoffice.models import Order, Payment, Refund, StripeEvent
from backoffice.services.attention import attention_count, attention_reasons, needing_attention
from backoffice.services.payment import (
    PaymentService,
    apply_payment_intent,
    apply_stripe_dispute,
    apply_stripe_refund,
)
from backoffice.services.webhooks import (
    StripeEventNotApplied,
    receive_stripe_event,
    reprocess_stripe_event,
)
from backoffice.stripe_client import parse_dispute, parse_payment_intent, parse_refund
from tests.stripe_fixtures import build_event, dispute_object, pay_by_card, succeeded_intent

pytestmark = pytest.mark.django_db


def listed(order: Order) -> list[str] | None:
    """The order's reasons when it is on the list, else None (and then it must have none)."""
    on_list = needing_attention().filter(pk=order.pk).exists()
    reasons = attention_reasons([Order.objects.get(pk=order.pk)]).get(order.pk)
    assert on_list == bool(reasons), (on_list, reasons)
    return reasons


def minutes_ago(minutes: int) -> object:
    return timezone.now() - timedelta(minutes=minutes)


def test_an_order_with_nothing_wrong_is_not_listed(make_order):
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("100.00"), channel=Payment.Channel.CASH)

    assert listed(order) is None
    assert attention_count() == 0


# --- Overpaid: the ledger's flag ------------------------------------------------


def test_an_overpaid_order_is_listed_until_staff_resolve_it(conference, make_order, staff_user):
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("30.00"), channel=Payment.Channel.CASH)
    intent = parse_payment_intent(succeeded_intent(order, "pi_over"))
    apply_payment_intent(conference, intent, Payment.Status.SUCCEEDED)

    [reason] = listed(order)
    assert reason.startswith("Overpaid by 30.00")

    PaymentService.resolve_attention(order, note="Gave 30.00 back in cash", staff_user=staff_user)

    assert listed(order) is None
    assert order.history.last().message.startswith("Gave 30.00 back in cash (flagged: Overpaid")


# --- A Stripe payment pending or processing too long ------------------------------


@pytest.fixture
def card_attempt(stripe_conference, make_order) -> Payment:
    """The attendee opened the pay page: a pending card attempt at localstripe."""
    order = make_order("100.00", conference=stripe_conference)
    PaymentService.initiate_payment(order)
    return Payment.objects.get(order=order, status=Payment.Status.PENDING)


def test_a_card_payment_pending_past_the_setting_is_listed_with_its_age(settings, card_attempt):
    settings.BACKOFFICE_STALE_PAYMENT_MINUTES = 30
    assert listed(card_attempt.order) is None  # just started

    Payment.objects.filter(pk=card_attempt.pk).update(updated_at=minutes_ago(29))
    assert listed(card_attempt.order) is None

    Payment.objects.filter(pk=card_attempt.pk).update(updated_at=minutes_ago(47))
    assert listed(card_attempt.order) == [
        f"Stripe payment {card_attempt.stripe_payment_intent_id} pending for 47 minutes; "
        "re-sync it from Stripe."
    ]

    settings.BACKOFFICE_STALE_PAYMENT_MINUTES = 60
    assert listed(card_attempt.order) is None


def test_an_abandoned_attempt_a_re_sync_found_still_waiting_leaves_the_list_for_a_while(
    settings, card_attempt
):
    settings.BACKOFFICE_STALE_PAYMENT_MINUTES = 30
    order = card_attempt.order
    Payment.objects.filter(pk=card_attempt.pk).update(updated_at=minutes_ago(120))
    assert listed(order)

    report = PaymentService.sync_from_stripe(order)

    assert not report.changed  # still waiting for a card at Stripe
    assert Payment.objects.get(pk=card_attempt.pk).status == Payment.Status.PENDING
    assert listed(order) is None

    # Nobody checked again for longer than the setting (the schedule stopped).
    Payment.objects.filter(pk=card_attempt.pk).update(stripe_checked_at=minutes_ago(50))
    assert listed(order) == [
        f"Stripe payment {card_attempt.stripe_payment_intent_id} pending for 120 minutes, "
        "last checked at Stripe 50 minutes ago; re-sync it from Stripe."
    ]


def test_a_stale_processing_payment_leaves_the_list_once_it_succeeds(
    stripe_conference, card_attempt, localstripe
):
    order = card_attempt.order
    Payment.objects.filter(pk=card_attempt.pk).update(
        status=Payment.Status.PROCESSING, updated_at=minutes_ago(90)
    )
    assert "processing for 90 minutes" in listed(order)[0]

    intent = localstripe.confirm_payment_intent(card_attempt.stripe_payment_intent_id)
    apply_payment_intent(stripe_conference, parse_payment_intent(intent), Payment.Status.SUCCEEDED)

    assert listed(order) is None
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


# --- Refunds pending or failed ------------------------------------------------------


@pytest.fixture
def card_payment(stripe_conference, make_order, localstripe) -> Payment:
    """A 100.00 order paid in full by card through localstripe."""
    return pay_by_card(make_order("100.00", conference=stripe_conference), localstripe)


def reported_refund(payment: Payment, status: str) -> dict:
    """A refund of 30.00 on the payment as Stripe's ``refund.*`` events report it."""
    return {
        "id": "re_pending",
        "object": "refund",
        "amount": 3000,
        "currency": "usd",
        "status": status,
        "payment_intent": payment.stripe_payment_intent_id,
        "charge": payment.stripe_charge_id,
    }


def test_a_pending_refund_is_listed_until_stripe_settles_it(stripe_conference, card_payment):
    order = card_payment.order
    apply_stripe_refund(stripe_conference, parse_refund(reported_refund(card_payment, "pending")))

    assert listed(order) == ["Refund re_pending of 30.00 USD pending."]

    apply_stripe_refund(stripe_conference, parse_refund(reported_refund(card_payment, "succeeded")))

    assert listed(order) is None
    assert Refund.objects.get().status == Refund.Status.SUCCEEDED


def test_a_failed_refund_is_listed_until_a_later_refund_gives_the_money_back(
    card_payment, staff_user
):
    order = card_payment.order
    intent_id = card_payment.stripe_payment_intent_id
    # Stripe refuses (it knows no such payment): the refund row is FAILED.
    Payment.objects.filter(pk=card_payment.pk).update(stripe_payment_intent_id="pi_elsewhere")
    with pytest.raises(Exception, match="Stripe could not refund"):
        PaymentService.refund(card_payment, amount="10.00", reason="other", staff_user=staff_user)

    assert listed(order) == ["Refund of 10.00 USD failed."]

    Payment.objects.filter(pk=card_payment.pk).update(stripe_payment_intent_id=intent_id)
    card_payment.refresh_from_db()
    PaymentService.refund(card_payment, amount="10.00", reason="other", staff_user=staff_user)

    assert listed(order) is None
    assert list(Refund.objects.order_by("id").values_list("status", flat=True)) == [
        Refund.Status.FAILED,
        Refund.Status.SUCCEEDED,
    ]


# --- Stripe events about the order -----------------------------------------------------


def test_a_failed_event_is_listed_until_it_is_reprocessed(conference, make_order):
    order = make_order("100.00")
    intent = succeeded_intent(order, "pi_bad", currency=840)
    event = build_event("payment_intent.succeeded", intent, event_id="evt_bad")
    with pytest.raises(StripeEventNotApplied):
        receive_stripe_event(conference=conference, event=event)

    [reason] = listed(order)
    assert reason.startswith("Stripe event evt_bad (payment_intent.succeeded) failed: ")
    assert "currency is 840" in reason

    stored = StripeEvent.objects.get()
    stored.payload["data"]["object"]["currency"] = "usd"
    stored.save()
    reprocess_stripe_event(stored)

    assert listed(order) is None
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_an_event_never_processed_is_listed_after_a_minute(conference, make_order):
    """The worker died between storing the event and applying it."""
    order = make_order("100.00")
    event = build_event("payment_intent.succeeded", succeeded_intent(order, "pi_x"), "evt_lost")
    stored = StripeEvent.objects.create(
        stripe_event_id="evt_lost",
        conference=conference,
        order=order,
        type=event["type"],
        payload=event,
    )
    assert listed(order) is None  # it may be being applied right now

    StripeEvent.objects.filter(pk=stored.pk).update(received_at=minutes_ago(2))

    assert listed(order) == ["Stripe event evt_lost (payment_intent.succeeded) not processed."]

    reprocess_stripe_event(stored)

    assert listed(order) is None


# --- Several reasons, many orders --------------------------------------------------------


def test_every_reason_of_an_order_is_listed(stripe_conference, card_payment):
    order = card_payment.order
    apply_stripe_refund(stripe_conference, parse_refund(reported_refund(card_payment, "pending")))
    stale = Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        status=Payment.Status.PENDING,
        amount=Decimal("100.00"),
        stripe_payment_intent_id="pi_second_tab",
    )
    Payment.objects.filter(pk=stale.pk).update(updated_at=minutes_ago(40))

    assert listed(order) == [
        "Stripe payment pi_second_tab pending for 40 minutes; re-sync it from Stripe.",
        "Refund re_pending of 30.00 USD pending.",
    ]
    assert attention_count() == 1


def make_troubled(make_order, conference, count: int) -> list[Order]:
    """Orders with one reason of each kind (a flag, a stale payment, a pending refund, an event).

    Rows written directly, not through the services: these tests count queries
    over many orders, and each state is one the services produce (see the tests above).
    """
    orders = []
    for index in range(count):
        order = make_order("100.00", needs_attention=True, attention_reason="Overpaid by 1.00 USD")
        payment = Payment.objects.create(
            order=order,
            method=Payment.Method.STRIPE,
            status=Payment.Status.PENDING,
            amount=Decimal("100.00"),
            stripe_payment_intent_id=f"pi_{index}",
        )
        Payment.objects.filter(pk=payment.pk).update(updated_at=minutes_ago(60))
        paid = Payment.objects.create(
            order=order, method=Payment.Method.MANUAL, amount=Decimal("10.00"), status="succeeded"
        )
        Refund.objects.create(payment=paid, amount=Decimal("1.00"), status=Refund.Status.PENDING)
        StripeEvent.objects.create(
            stripe_event_id=f"evt_{index}",
            conference=conference,
            order=order,
            type="payment_intent.succeeded",
            payload={},
            last_error="Boom",
        )
        orders.append(order)
    return orders


def test_reasons_cost_the_same_queries_for_one_order_or_many(conference, make_order):
    orders = make_troubled(make_order, conference, 6)

    with CaptureQueriesContext(connection) as one:
        reasons_of_one = attention_reasons(Order.objects.filter(pk=orders[0].pk))
    with CaptureQueriesContext(connection) as many:
        reasons_of_many = attention_reasons(Order.objects.all())

    assert len(reasons_of_one[orders[0].pk]) == 4
    assert all(len(reasons_of_many[order.pk]) == 4 for order in orders)
    assert len(one) == len(many) <= 5  # the orders, then one query per derived kind


def test_the_list_is_one_query(conference, make_order, django_assert_num_queries):
    orders = make_troubled(make_order, conference, 3)
    make_order("100.00")

    with django_assert_num_queries(1):
        found = set(needing_attention().values_list("pk", flat=True))

    assert found == {order.pk for order in orders}


def test_an_open_dispute_is_listed_until_it_closes_even_after_staff_resolve_the_flag(
    stripe_conference, card_payment, staff_user
):
    order = card_payment.order
    opened = dispute_object(
        card_payment.stripe_payment_intent_id, card_payment.stripe_charge_id, 10000
    )
    apply_stripe_dispute(stripe_conference, parse_dispute(opened))
    order.refresh_from_db()
    [reason] = listed(order)
    assert reason.startswith(f"Disputed: Stripe dispute {opened['id']} of 100.00 USD")

    PaymentService.resolve_attention(order, staff_user=staff_user, note="Answered in Stripe.")
    order.refresh_from_db()
    assert listed(order) == [reason]  # the dispute is still open

    apply_stripe_dispute(stripe_conference, parse_dispute({**opened, "status": "won"}))
    order.refresh_from_db()
    assert listed(order) is None


def test_a_pending_order_whose_hold_expired_is_listed_until_it_is_cancelled(make_order, staff_user):
    expired = make_order("100.00", hold_expires_at=datetime(2026, 5, 3, 14, 0, tzinfo=UTC))
    active = make_order("100.00", hold_expires_at=timezone.now() + timedelta(days=1))
    no_hold = make_order("100.00")

    assert listed(expired) == [
        "Hold expired on 3 May 2026, 14:00 UTC; cancel the order or take its payment."
    ]
    assert listed(active) is None
    assert listed(no_hold) is None

    PaymentService.cancel_order(expired, reason="Hold expired", staff_user=staff_user)
    assert listed(expired) is None


def test_an_order_paid_after_its_hold_expired_leaves_the_list(make_order):
    order = make_order("100.00", hold_expires_at=minutes_ago(60))
    assert listed(order) is not None

    PaymentService.record_manual(order, amount=Decimal("100.00"), channel=Payment.Channel.CASH)

    assert listed(order) is None


def test_the_count_is_the_number_of_orders_listed_once_each(conference, make_order):
    orders = make_troubled(make_order, conference, 3)  # several reasons each
    make_order("100.00")

    assert attention_count() == needing_attention().count() == len(orders)
