"""Re-sync from Stripe (``PaymentService.sync_from_stripe``) against localstripe, no webhook."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from backoffice.models import Dispute, Order, OrderHistoryEntry, Payment, Refund
from backoffice.services.payment import PaymentService
from backoffice.stripe_client import StripeUnreachable
from tests.stripe_fixtures import (
    build_event,
    dispute_object,
    paid_at_stripe,
    pay_by_card,
    post_event,
)

pytestmark = pytest.mark.django_db
Action = OrderHistoryEntry.Action


def entries(order: Order) -> list[OrderHistoryEntry]:
    """The order's history, oldest first."""
    return list(OrderHistoryEntry.objects.filter(order=order).order_by("created_at", "id"))


def ledger(order: Order) -> list[tuple]:
    """The order's payments and refunds as comparable rows (ids left out)."""
    return [
        (
            p.method,
            p.status,
            p.amount,
            p.refunded_amount,
            bool(p.stripe_charge_id),
            [(r.status, r.amount, bool(r.stripe_refund_id)) for r in p.refunds.order_by("id")],
        )
        for p in Payment.objects.filter(order=order).order_by("created_at", "id")
    ]


def test_a_card_payment_with_no_webhook_is_paid_after_the_sync(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent_id = paid_at_stripe(order, localstripe)
    assert Payment.objects.get(order=order).status == Payment.Status.PENDING

    report = PaymentService.sync_from_stripe(order)

    payment = Payment.objects.get(order=order)
    assert (payment.status, payment.amount) == (Payment.Status.SUCCEEDED, Decimal("100.00"))
    assert payment.stripe_charge_id
    assert order.status == Order.Status.PAID  # the caller's instance is up to date
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert not order.needs_attention
    [entry] = entries(order)
    assert (entry.action, entry.actor_name) == (Action.CARD_PAYMENT, "Stripe (re-sync)")
    assert (entry.status_before, entry.status_after) == (Order.Status.PENDING, Order.Status.PAID)
    assert report.changed
    assert report.payments_changed == 1
    assert report.summary() == (
        f"{order.reference}: Card payment: Stripe payment {intent_id} of 100.00 USD "
        "(order pending → paid)."
    )


def test_a_second_sync_changes_nothing_and_says_all_in_order(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    paid_at_stripe(order, localstripe)
    PaymentService.sync_from_stripe(order)
    history, rows = entries(order), ledger(order)

    report = PaymentService.sync_from_stripe(order)

    assert entries(order) == history
    assert ledger(order) == rows
    assert not report.changed
    assert report.summary() == f"{order.reference}: all in order."


def test_the_sync_leaves_the_ledger_the_missed_webhook_would_have(
    client, stripe_conference, make_order, localstripe
):
    synced = make_order("100.00", conference=stripe_conference)
    paid_at_stripe(synced, localstripe)
    hooked = make_order("100.00", conference=stripe_conference)
    intent_id = paid_at_stripe(hooked, localstripe)
    intent = localstripe.api("GET", f"/v1/payment_intents/{intent_id}")

    PaymentService.sync_from_stripe(synced)
    post_event(client, stripe_conference, build_event("payment_intent.succeeded", intent))

    assert ledger(synced) == ledger(hooked)
    synced.refresh_from_db()
    hooked.refresh_from_db()
    assert (synced.status, synced.needs_attention) == (hooked.status, hooked.needs_attention)
    assert [e.action for e in entries(synced)] == [e.action for e in entries(hooked)]


def test_a_refund_made_at_stripe_without_an_event_is_on_the_ledger_after_the_sync(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    payment = pay_by_card(order, localstripe)
    stripe_refund = localstripe.api(
        "POST", "/v1/refunds", payment_intent=payment.stripe_payment_intent_id, amount=3000
    )

    report = PaymentService.sync_from_stripe(order)

    refund = Refund.objects.get(payment=payment)
    assert (refund.status, refund.amount) == (Refund.Status.SUCCEEDED, Decimal("30.00"))
    assert refund.stripe_refund_id == stripe_refund["id"]
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("30.00")
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED
    assert entries(order)[-1].action == Action.REFUND
    assert report.changed
    assert "Refund" in report.summary()
    history = entries(order)

    again = PaymentService.sync_from_stripe(order)

    assert not again.changed
    assert entries(order) == history
    assert Refund.objects.filter(payment=payment).count() == 1


def test_a_payment_and_its_refund_both_missed_are_applied_in_order(
    stripe_conference, make_order, localstripe
):
    """Paid and fully refunded at Stripe, no event at all: the order ends refunded."""
    order = make_order("100.00", conference=stripe_conference)
    intent_id = paid_at_stripe(order, localstripe)
    localstripe.api("POST", "/v1/refunds", payment_intent=intent_id)

    report = PaymentService.sync_from_stripe(order)

    payment = Payment.objects.get(order=order)
    assert (payment.status, payment.refunded_amount) == (
        Payment.Status.REFUNDED,
        Decimal("100.00"),
    )
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert [e.action for e in entries(order)] == [Action.CARD_PAYMENT, Action.REFUND]
    assert len(report.changes) == 2


def test_an_attempt_cancelled_at_stripe_is_cancelled_after_the_sync(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent_id = PaymentService.initiate_payment(order).split("_secret_")[0]
    localstripe.api("POST", f"/v1/payment_intents/{intent_id}/cancel")

    report = PaymentService.sync_from_stripe(order)

    assert Payment.objects.get(order=order).status == Payment.Status.CANCELED
    [entry] = entries(order)
    assert entry.action == Action.CARD_UPDATE
    assert report.changed


def test_an_open_attempt_is_in_order(stripe_conference, make_order, localstripe):
    order = make_order("100.00", conference=stripe_conference)
    PaymentService.initiate_payment(order)

    report = PaymentService.sync_from_stripe(order)

    assert not report.changed
    assert Payment.objects.get(order=order).status == Payment.Status.PENDING
    assert entries(order) == []


def test_stripe_unreachable_raises_and_writes_nothing(
    stripe_conference, make_order, localstripe, settings, stripe_unreachable
):
    order = make_order("100.00", conference=stripe_conference)
    settings.STRIPE_API_BASE = localstripe.url
    paid_at_stripe(order, localstripe)
    rows = ledger(order)
    settings.STRIPE_API_BASE = stripe_unreachable

    with pytest.raises(StripeUnreachable, match="Could not reach Stripe"):
        PaymentService.sync_from_stripe(order)

    assert ledger(order) == rows
    assert entries(order) == []
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_a_payment_stripe_no_longer_knows_is_reported_not_crashed(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent_id = paid_at_stripe(order, localstripe)
    # The conference moved to another Stripe account: an old attempt's intent is not there.
    # (No service writes such a row on purpose; it is what a key change leaves behind.)
    Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        amount=Decimal("100.00"),
        stripe_payment_intent_id="pi_at_the_old_account",
    )

    report = PaymentService.sync_from_stripe(order)

    assert Payment.objects.get(stripe_payment_intent_id=intent_id).status == (
        Payment.Status.SUCCEEDED
    )
    assert report.changed
    assert report.notes == (
        "Stripe no longer knows payment pi_at_the_old_account (were the keys changed?).",
    )
    assert "pi_at_the_old_account" in report.summary()
    stale = Payment.objects.get(stripe_payment_intent_id="pi_at_the_old_account")
    assert stale.status == Payment.Status.PENDING


def test_an_order_without_a_stripe_payment_is_refused(stripe_conference, make_order):
    order = make_order("100.00", conference=stripe_conference)
    PaymentService.record_manual(order, amount=Decimal("100.00"))

    with pytest.raises(ValidationError) as refused:
        PaymentService.sync_from_stripe(order)

    assert refused.value.messages == [f"{order.reference} has no Stripe payment to re-sync."]


def test_a_conference_without_stripe_keys_is_refused(stripe_conference, make_order, localstripe):
    order = make_order("100.00", conference=stripe_conference)
    paid_at_stripe(order, localstripe)
    stripe_conference.stripe_secret_key = ""
    stripe_conference.save()
    order = Order.objects.get(pk=order.pk)

    with pytest.raises(ValidationError, match="has no Stripe secret key"):
        PaymentService.sync_from_stripe(order)

    assert Payment.objects.get(order=order).status == Payment.Status.PENDING


def test_a_dispute_with_no_event_is_on_the_ledger_after_the_sync(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent_id = paid_at_stripe(order, localstripe)
    PaymentService.sync_from_stripe(order)
    charge_id = Payment.objects.get(order=order).stripe_charge_id
    opened = localstripe.put_dispute(dispute_object(intent_id, charge_id, 10000))

    report = PaymentService.sync_from_stripe(order)

    dispute = Dispute.objects.get(stripe_dispute_id=opened["id"])
    assert (dispute.status, dispute.amount) == (Dispute.Status.NEEDS_RESPONSE, Decimal("100.00"))
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.needs_attention
    assert opened["id"] in order.attention_reason
    assert report.changed
    assert entries(order)[-1].action == Action.DISPUTE

    history = entries(order)
    assert not PaymentService.sync_from_stripe(order).changed
    assert entries(order) == history


def test_a_dispute_lost_at_stripe_counts_as_money_out_after_the_sync(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent_id = paid_at_stripe(order, localstripe)
    PaymentService.sync_from_stripe(order)
    charge_id = Payment.objects.get(order=order).stripe_charge_id
    opened = localstripe.put_dispute(dispute_object(intent_id, charge_id, 10000))
    PaymentService.sync_from_stripe(order)
    localstripe.put_dispute({"id": opened["id"], "status": "lost"})

    report = PaymentService.sync_from_stripe(order)

    assert Dispute.objects.get(stripe_dispute_id=opened["id"]).status == Dispute.Status.LOST
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert order.amount_paid == Decimal("0.00")
    assert not order.needs_attention
    assert report.changed and entries(order)[-1].action == Action.DISPUTE_LOST


def test_an_attempt_abandoned_for_a_day_is_cancelled_at_stripe_and_the_link_starts_a_new_one(
    settings, stripe_conference, make_order, localstripe
):
    settings.BACKOFFICE_ABANDONED_ATTEMPT_HOURS = 24
    old = make_order("100.00", conference=stripe_conference)
    fresh = make_order("100.00", conference=stripe_conference)
    for order in (old, fresh):
        PaymentService.initiate_payment(order)
    Payment.objects.filter(order=old).update(created_at=timezone.now() - timedelta(hours=25))
    Payment.objects.filter(order=fresh).update(created_at=timezone.now() - timedelta(hours=23))

    report = PaymentService.sync_from_stripe(old)
    assert not PaymentService.sync_from_stripe(fresh).changed

    attempt = Payment.objects.get(order=old)
    assert attempt.status == Payment.Status.CANCELED
    intent = localstripe.api("GET", f"/v1/payment_intents/{attempt.stripe_payment_intent_id}")
    assert intent["status"] == "canceled"
    assert report.changed
    assert Payment.objects.get(order=fresh).status == Payment.Status.PENDING
    old.refresh_from_db()
    assert old.status == Order.Status.PENDING
    # The attendee comes back: the pay link opens a new attempt.
    PaymentService.initiate_payment(old)
    assert Payment.objects.filter(order=old, status=Payment.Status.PENDING).count() == 1
