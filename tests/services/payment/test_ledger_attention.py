"""Resolving an order's attention flag: through the ledger, with history, and it stays resolved.

The flag stays cleared through later writes that change nothing about the
money (a declined card, a new payment link, a refund that still leaves the
order overpaid) and comes back only when new money raises it again.
"""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from backoffice.models import Conference, Order, OrderHistoryEntry, Payment
from backoffice.services.payment import (
    PaymentService,
    allowed_actions,
    apply_charge_refund,
    apply_payment_intent,
)
from backoffice.services.payment.ledger import OrderAction
from backoffice.stripe_client import parse_charge, parse_payment_intent
from tests.stripe_fixtures import refunded_charge, succeeded_intent

pytestmark = pytest.mark.django_db

S = Order.Status


def pay_by_card(conference: Conference, order: Order, intent_id: str, **intent) -> None:
    """Apply a succeeded card payment of the order (by default of its total), as a webhook does."""
    payload = succeeded_intent(order, intent_id, **intent)
    apply_payment_intent(conference, parse_payment_intent(payload), Payment.Status.SUCCEEDED)


@pytest.fixture
def overpaid(conference, make_order) -> Order:
    """A 100.00 order paid 30.00 in cash, then 100.00 by card: overpaid by 30.00 and flagged."""
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("30.00"), channel=Payment.Channel.CASH)
    pay_by_card(conference, order, "pi_over")
    order.refresh_from_db()
    assert order.needs_attention
    return order


def test_resolving_clears_the_flag_and_writes_one_entry_by_the_clerk(overpaid, staff_user):
    reason = overpaid.attention_reason
    before = OrderHistoryEntry.objects.filter(order=overpaid).count()

    entry = PaymentService.resolve_attention(
        overpaid, note="  Attendee donates the difference.  ", staff_user=staff_user
    )

    overpaid.refresh_from_db()
    assert (overpaid.needs_attention, overpaid.attention_reason) == (False, "")
    assert overpaid.status == S.PAID
    assert OrderHistoryEntry.objects.filter(order=overpaid).count() == before + 1
    entry.refresh_from_db()
    assert entry.action == OrderHistoryEntry.Action.ATTENTION_RESOLVED
    assert entry.actor == staff_user
    assert entry.message == f"Attendee donates the difference. (flagged: {reason})"
    assert (entry.status_before, entry.status_after, entry.amount) == (S.PAID, S.PAID, None)


def test_resolving_updates_the_callers_copy(overpaid, staff_user):
    PaymentService.resolve_attention(overpaid, note="Checked", staff_user=staff_user)

    assert (overpaid.needs_attention, overpaid.attention_reason) == (False, "")


@pytest.mark.parametrize("note", ["", "   ", "\n"])
def test_resolving_needs_a_note(overpaid, staff_user, note):
    with pytest.raises(ValidationError, match="a note is required"):
        PaymentService.resolve_attention(overpaid, note=note, staff_user=staff_user)

    overpaid.refresh_from_db()
    assert overpaid.needs_attention
    assert not overpaid.history.filter(action=OrderHistoryEntry.Action.ATTENTION_RESOLVED)


def test_resolving_an_order_that_needs_no_attention_is_refused(make_order, staff_user):
    order = make_order("100.00")

    with pytest.raises(ValidationError) as refused:
        PaymentService.resolve_attention(order, note="Checked", staff_user=staff_user)

    assert refused.value.messages == [f"{order.reference} does not need attention."]
    assert not order.history.exists()


def test_a_second_clerk_resolving_a_stale_copy_is_refused(overpaid, staff_user):
    stale = Order.objects.get(pk=overpaid.pk)
    PaymentService.resolve_attention(overpaid, note="First", staff_user=staff_user)

    with pytest.raises(ValidationError, match="does not need attention"):
        PaymentService.resolve_attention(stale, note="Second", staff_user=staff_user)

    assert overpaid.history.filter(action=OrderHistoryEntry.Action.ATTENTION_RESOLVED).count() == 1


def test_allowed_actions_offer_resolving_only_a_flagged_order(overpaid, staff_user):
    assert allowed_actions(overpaid)[OrderAction.RESOLVE_ATTENTION].allowed

    PaymentService.resolve_attention(overpaid, note="Checked", staff_user=staff_user)

    assert not allowed_actions(overpaid)[OrderAction.RESOLVE_ATTENTION].allowed


def test_later_writes_that_bring_no_new_money_keep_it_resolved(conference, overpaid, staff_user):
    PaymentService.resolve_attention(overpaid, note="Donation", staff_user=staff_user)
    # A declined attempt, and a refund of 10.00 that leaves the order overpaid by 20.00.
    Payment.objects.create(
        order=overpaid,
        method=Payment.Method.STRIPE,
        amount=Decimal("100.00"),
        stripe_payment_intent_id="pi_declined",
    )
    declined = succeeded_intent(
        overpaid, "pi_declined", status="requires_payment_method", amount_received=0
    )
    apply_payment_intent(conference, parse_payment_intent(declined), Payment.Status.FAILED)
    apply_charge_refund(
        conference, parse_charge(refunded_charge("ch_over", "pi_over", 10000, 1000))
    )

    overpaid.refresh_from_db()
    assert (overpaid.needs_attention, overpaid.attention_reason) == (False, "")
    actions = list(overpaid.history.values_list("action", flat=True))
    assert actions[-3:] == ["attention_resolved", "card_update", "refund"]


def test_new_money_after_resolving_raises_the_flag_again(conference, overpaid, staff_user):
    PaymentService.resolve_attention(overpaid, note="Donation", staff_user=staff_user)

    pay_by_card(conference, overpaid, "pi_again", amount=5000, amount_received=5000)

    overpaid.refresh_from_db()
    assert overpaid.needs_attention
    [reason] = overpaid.attention_reason.splitlines()  # the new one only, not the resolved one
    assert reason.startswith("Overpaid: Stripe payment pi_again of 50.00 USD succeeded while")
