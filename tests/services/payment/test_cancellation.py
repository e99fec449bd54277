"""Cancelling an order: only a pending one holding no money; its card attempt dies at Stripe."""

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from backoffice.models import Order, OrderHistoryEntry, Payment
from backoffice.services.payment import (
    OrderAction,
    PaymentService,
    allowed_actions,
    apply_payment_intent,
)
from backoffice.services.payment.cancellation import (
    ATTEMPT_CANCELLED,
    HoldState,
    cancelled_at,
    with_hold,
)
from backoffice.signals import order_paid
from backoffice.stripe_client import StripePaymentIntent
from tests.races import outcome, run_at_once
from tests.stripe_fixtures import build_event, free_port, post_event

pytestmark = pytest.mark.django_db
Action = OrderHistoryEntry.Action
ROUNDS = 6  # orders raced on, one cancel against one cash payment each


def entries(order: Order) -> list[OrderHistoryEntry]:
    """The order's history, oldest first."""
    return list(OrderHistoryEntry.objects.filter(order=order).order_by("created_at", "id"))


def intent_id_of(client_secret: str) -> str:
    """The PaymentIntent id inside a client secret."""
    return client_secret.split("_secret_")[0]


@pytest.fixture
def card_order(stripe_conference, make_order):
    """A pending 100.00 USD order whose pay page was opened: one open attempt at localstripe."""
    order = make_order("100.00", conference=stripe_conference)
    PaymentService.initiate_payment(order)
    return order


@pytest.fixture
def stripe_down(settings):
    """Point the Stripe client at a closed port: every call fails to connect."""
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"


def test_cancel_a_pending_order_is_one_entry_by_the_clerk_with_the_reason(make_order, staff_user):
    order = make_order("100.00", hold_expires_at=timezone.now() - timedelta(days=1))

    returned = PaymentService.cancel_order(
        order, reason="  Hold expired; no reply.  ", staff_user=staff_user
    )

    assert returned is order
    assert order.status == Order.Status.CANCELLED
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.hold_expires_at is None
    assert not order.needs_attention
    [entry] = entries(order)
    assert (entry.action, entry.actor, entry.amount) == (Action.CANCEL, staff_user, None)
    assert entry.message == "Hold expired; no reply."
    assert (entry.status_before, entry.status_after) == (
        Order.Status.PENDING,
        Order.Status.CANCELLED,
    )
    assert cancelled_at(order) == entry.created_at


def test_cancel_refuses_an_order_holding_money_and_changes_nothing(make_order, staff_user):
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("50.00"), staff_user=staff_user)

    with pytest.raises(ValidationError) as refused:
        PaymentService.cancel_order(order, reason="No show", staff_user=staff_user)

    assert refused.value.messages == [f"{order.reference} holds 50.00 USD; refund it first."]
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert [e.action for e in entries(order)] == [Action.MANUAL_PAYMENT]


def test_cancel_refuses_a_paid_order(make_order, staff_user):
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("100.00"), staff_user=staff_user)

    with pytest.raises(ValidationError, match="is paid; only a pending order with no money"):
        PaymentService.cancel_order(order, reason="Changed mind", staff_user=staff_user)

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert len(entries(order)) == 1


def test_cancel_refuses_an_order_with_a_card_payment_being_processed(
    stripe_conference, card_order, staff_user
):
    attempt = Payment.objects.get(order=card_order)
    processing = StripePaymentIntent(
        id=attempt.stripe_payment_intent_id,
        currency="USD",
        amount=Decimal("100.00"),
        status="processing",
    )
    apply_payment_intent(stripe_conference, processing, Payment.Status.PROCESSING)

    with pytest.raises(ValidationError, match="card payment of 100.00 USD being processed"):
        PaymentService.cancel_order(card_order, reason="No show", staff_user=staff_user)

    card_order.refresh_from_db()
    assert card_order.status == Order.Status.PENDING
    assert Payment.objects.get(order=card_order).status == Payment.Status.PROCESSING


def test_cancelling_twice_is_refused_with_a_clear_sentence(make_order, staff_user):
    order = make_order("100.00")
    PaymentService.cancel_order(order, reason="Duplicate", staff_user=staff_user)

    with pytest.raises(ValidationError) as refused:
        PaymentService.cancel_order(order, reason="Again", staff_user=staff_user)

    assert refused.value.messages == [f"{order.reference} is already cancelled."]
    assert len(entries(order)) == 1


def test_cancel_needs_a_reason(make_order, staff_user):
    order = make_order("100.00")

    with pytest.raises(ValidationError, match="Give a reason"):
        PaymentService.cancel_order(order, reason="   ", staff_user=staff_user)

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert entries(order) == []


def test_allowed_actions_say_why_cancel_does_not_apply(make_order, staff_user):
    pending = make_order("100.00")
    part_paid = make_order("100.00")
    PaymentService.record_manual(part_paid, amount=Decimal("30.00"), staff_user=staff_user)

    assert allowed_actions(pending)[OrderAction.CANCEL].allowed
    refused = allowed_actions(part_paid)[OrderAction.CANCEL]
    assert not refused.allowed
    assert refused.reason == f"{part_paid.reference} holds 30.00 USD; refund it first."


def test_the_open_card_attempt_is_cancelled_at_stripe_only_after_commit(
    card_order, staff_user, localstripe, django_capture_on_commit_callbacks
):
    attempt = Payment.objects.get(order=card_order)
    intent_id = attempt.stripe_payment_intent_id

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        PaymentService.cancel_order(card_order, reason="No show", staff_user=staff_user)
    # Committed, but the callbacks have not run: Stripe has not been called yet.
    assert localstripe.api("GET", f"/v1/payment_intents/{intent_id}")["status"] != "canceled"
    for callback in callbacks:
        callback()

    assert localstripe.api("GET", f"/v1/payment_intents/{intent_id}")["status"] == "canceled"
    attempt.refresh_from_db()
    assert (attempt.status, attempt.note) == (Payment.Status.CANCELED, ATTEMPT_CANCELLED)
    cancel, retired = entries(card_order)
    assert cancel.action == Action.CANCEL
    assert (retired.action, retired.actor) == (Action.CARD_UPDATE, staff_user)
    assert retired.status_after == Order.Status.CANCELLED


def test_a_rolled_back_cancel_calls_stripe_for_nothing(
    card_order, staff_user, localstripe, django_capture_on_commit_callbacks
):
    intent_id = Payment.objects.get(order=card_order).stripe_payment_intent_id

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        PaymentService.cancel_order(card_order, reason="No show", staff_user=staff_user)
        raise RuntimeError("the caller's transaction fails after the cancel")

    assert callbacks == []
    assert localstripe.api("GET", f"/v1/payment_intents/{intent_id}")["status"] != "canceled"
    card_order.refresh_from_db()
    assert card_order.status == Order.Status.PENDING
    assert entries(card_order) == []


def test_cancelling_never_sends_order_paid(
    make_order, staff_user, django_capture_on_commit_callbacks
):
    sent = []

    def receiver(**kwargs):
        sent.append(kwargs["order"].pk)

    order_paid.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            PaymentService.cancel_order(make_order("0.00"), reason="Speaker", staff_user=staff_user)
            PaymentService.cancel_order(make_order("80.00"), reason="Dup", staff_user=staff_user)
    finally:
        order_paid.disconnect(receiver)

    assert sent == []
    assert Order.objects.filter(status=Order.Status.CANCELLED).count() == 2


def test_stripe_down_keeps_the_cancel_and_leaves_the_attempt_for_the_webhook(
    client,
    stripe_conference,
    card_order,
    staff_user,
    stripe_down,
    caplog,
    django_capture_on_commit_callbacks,
):
    attempt = Payment.objects.get(order=card_order)

    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        PaymentService.cancel_order(card_order, reason="No show", staff_user=staff_user)

    assert "Could not cancel the card payment attempt at Stripe" in caplog.text
    attempt.refresh_from_db()
    assert attempt.status == Payment.Status.PENDING
    card_order.refresh_from_db()
    assert card_order.status == Order.Status.CANCELLED
    # Stripe cancels it later (e.g. expiry, or a retry): its webhook settles the row.
    canceled = {
        "id": attempt.stripe_payment_intent_id,
        "object": "payment_intent",
        "status": "canceled",
        "currency": "usd",
        "amount": 10000,
        "metadata": {"order_id": str(card_order.pk), "order_reference": card_order.reference},
    }
    response = post_event(
        client, stripe_conference, build_event("payment_intent.canceled", canceled)
    )

    assert response.status_code == 200
    attempt.refresh_from_db()
    assert attempt.status == Payment.Status.CANCELED
    card_order.refresh_from_db()
    assert card_order.status == Order.Status.CANCELLED
    assert not card_order.needs_attention


def test_a_late_card_payment_keeps_the_order_cancelled_and_flags_it(
    client,
    settings,
    stripe_conference,
    card_order,
    staff_user,
    localstripe,
    django_capture_on_commit_callbacks,
):
    intent_id = Payment.objects.get(order=card_order).stripe_payment_intent_id
    reachable = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # the cancel cannot reach Stripe
    with django_capture_on_commit_callbacks(execute=True):
        PaymentService.cancel_order(card_order, reason="No show", staff_user=staff_user)
    settings.STRIPE_API_BASE = reachable
    paid = localstripe.confirm_payment_intent(intent_id)  # the attendee's page was still open

    response = post_event(client, stripe_conference, build_event("payment_intent.succeeded", paid))

    assert response.status_code == 200
    card_order.refresh_from_db()
    assert card_order.status == Order.Status.CANCELLED
    assert card_order.needs_attention
    assert "while the order was cancelled" in card_order.attention_reason
    assert Payment.objects.get(order=card_order).status == Payment.Status.SUCCEEDED
    assert [e.action for e in entries(card_order)] == [Action.CANCEL, Action.CARD_PAYMENT]
    assert entries(card_order)[-1].status_after == Order.Status.CANCELLED


def test_with_hold_finds_pending_orders_by_their_hold(make_order, staff_user):
    now = timezone.now()
    expired = make_order("10.00", hold_expires_at=now - timedelta(minutes=1))
    active = make_order("10.00", hold_expires_at=now + timedelta(days=1))
    no_hold = make_order("10.00")
    paid_late = make_order("10.00", hold_expires_at=now - timedelta(days=2))
    PaymentService.record_manual(paid_late, amount=Decimal("4.00"), staff_user=staff_user)
    cancelled = make_order("10.00", hold_expires_at=now - timedelta(days=3))
    PaymentService.cancel_order(cancelled, reason="Expired", staff_user=staff_user)
    orders = Order.objects.all()

    assert set(with_hold(orders, HoldState.EXPIRED)) == {expired, paid_late}
    assert set(with_hold(orders, HoldState.ACTIVE)) == {active}
    assert set(with_hold(orders, HoldState.NONE)) == {no_hold}  # the cancelled one is not pending


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_clerk_cancelling_while_another_takes_the_cash_never_does_both(make_order, staff_user):
    """Under the order's row lock one of the two wins; the other is refused with a reason."""
    if connection.vendor != "postgresql":
        pytest.skip("row-lock race test needs PostgreSQL (SQLite serialises all writers)")
    orders = [make_order("100.00") for _ in range(ROUNDS)]
    outcomes: list[tuple[str, str]] = []

    for order in orders:
        stale = [Order.objects.get(pk=order.pk) for _ in range(2)]  # read before either commits

        def cancel(stale: Order = stale[0]) -> object:
            return PaymentService.cancel_order(stale, reason="No show", staff_user=staff_user)

        def cash(stale: Order = stale[1]) -> object:
            return PaymentService.record_manual(stale, amount=Decimal("100.00"))

        results = run_at_once([cancel, cash])
        outcomes += [("cancel", outcome(results[0])), ("cash", outcome(results[1]))]

    assert len(outcomes) == 2 * ROUNDS
    assert sum(result == "ok" for _, result in outcomes) == ROUNDS
    for order in orders:
        order.refresh_from_db()
        payments = Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED)
        if order.status == Order.Status.CANCELLED:
            assert not payments.exists()
        else:
            assert order.status == Order.Status.PAID and payments.count() == 1
        assert not order.needs_attention
