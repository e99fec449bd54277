"""Disputes Stripe reports (``apply_stripe_dispute``): created, updated, won, lost, in any order."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from backoffice.models import Conference, Dispute, Order, OrderHistoryEntry, Payment
from backoffice.services.dashboard import finance_summary
from backoffice.services.payment import (
    PaymentOfAnotherConference,
    PaymentService,
    UnmatchedPaymentError,
    apply_payment_intent,
    apply_stripe_dispute,
    apply_stripe_refund,
    net_received,
    refundable_payments,
)
from backoffice.stripe_client import parse_dispute, parse_payment_intent, parse_refund
from tests.stripe_fixtures import dispute_object, succeeded_intent

pytestmark = pytest.mark.django_db
S = Dispute.Status
A = OrderHistoryEntry.Action
D = Decimal


@pytest.fixture
def paid(conference, make_order) -> tuple[Order, Payment]:
    """An order of 100.00 paid in full by card (intent pi_paid, charge ch_paid)."""
    order = make_order("100.00")
    intent = parse_payment_intent(succeeded_intent(order, "pi_paid"))
    payment = apply_payment_intent(conference, intent, Payment.Status.SUCCEEDED)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    return order, payment


def report(conference: Conference, status: str, minor: int = 10000, **fields) -> Dispute | None:
    """Apply dispute dp_1 on pi_paid/ch_paid as Stripe reports it with this status."""
    obj = dispute_object("pi_paid", "ch_paid", minor, status=status, dispute_id="dp_1", **fields)
    return apply_stripe_dispute(conference, parse_dispute(obj))


def history(order: Order) -> list[OrderHistoryEntry]:
    """The order's history, oldest first."""
    return list(order.history.order_by("created_at", "id"))


def test_a_new_dispute_is_stored_and_flags_the_order_naming_dispute_and_payment(conference, paid):
    order, payment = paid
    opened = int(datetime.datetime(2026, 11, 2, 9, 30, tzinfo=datetime.UTC).timestamp())

    row = report(conference, S.NEEDS_RESPONSE, created=opened)

    stored = Dispute.objects.get(stripe_dispute_id="dp_1")
    assert row == stored
    assert (stored.payment, stored.amount, stored.status) == (
        payment,
        D("100.00"),
        S.NEEDS_RESPONSE,
    )
    assert stored.reason == "fraudulent"
    assert stored.created_at == datetime.datetime(2026, 11, 2, 9, 30, tzinfo=datetime.UTC)
    assert stored.closed_at is None
    order.refresh_from_db()
    assert order.status == Order.Status.PAID  # an open dispute takes no money yet
    assert order.needs_attention
    assert order.attention_reason == (
        "Disputed: Stripe dispute dp_1 of 100.00 USD on Stripe payment pi_paid (fraudulent): "
        "needs response; answer it in Stripe's dashboard."
    )
    assert net_received(order) == D("100.00")
    entry = history(order)[-1]
    assert (entry.action, entry.amount, entry.actor_name) == (A.DISPUTE, D("100.00"), "Stripe")
    assert "dp_1" in entry.message and "pi_paid" in entry.message


def test_an_update_moves_the_dispute_forward_and_keeps_one_flag(conference, paid):
    order, _ = paid
    report(conference, S.NEEDS_RESPONSE)

    row = report(conference, S.UNDER_REVIEW)

    assert row is not None and row.status == S.UNDER_REVIEW
    assert Dispute.objects.get().status == S.UNDER_REVIEW
    order.refresh_from_db()
    [reason] = order.attention_reason.splitlines()
    assert reason.startswith("Disputed: Stripe dispute dp_1") and "under review" in reason
    assert history(order)[-1].message.endswith("under review (was needs response).")


def test_a_won_dispute_no_longer_flags_and_takes_nothing(conference, paid):
    order, payment = paid
    report(conference, S.NEEDS_RESPONSE)

    report(conference, S.WON)

    row = Dispute.objects.get()
    assert row.status == S.WON
    assert row.closed_at is not None
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert (order.needs_attention, order.attention_reason) == (False, "")
    assert payment.lost_dispute_amount == D("0.00")
    assert net_received(order) == order.amount_paid == D("100.00")
    assert history(order)[-1].action == A.DISPUTE


def test_a_lost_dispute_is_money_out_like_a_full_refund(conference, paid):
    order, payment = paid
    report(conference, S.NEEDS_RESPONSE)

    report(conference, S.LOST)

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert (order.needs_attention, order.attention_reason) == (False, "")
    assert payment.lost_dispute_amount == D("100.00")
    assert payment.status == Payment.Status.SUCCEEDED  # the payment took place; it was clawed back
    assert net_received(order) == order.amount_paid == D("0.00")
    assert Order.objects.with_amounts().get(pk=order.pk).paid_sum == D("0.00")
    entry = history(order)[-1]
    assert (entry.action, entry.amount) == (A.DISPUTE_LOST, D("100.00"))
    assert (entry.status_before, entry.status_after) == (Order.Status.PAID, Order.Status.REFUNDED)
    assert refundable_payments(order) == []  # nothing is left to give back


def test_a_partly_lost_dispute_leaves_the_rest_to_the_cent(conference, paid):
    order, payment = paid

    report(conference, S.LOST, minor=3333)

    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED
    assert net_received(order) == D("66.67")
    assert [(p.pk, rest) for p, rest in refundable_payments(order)] == [(payment.pk, D("66.67"))]


def test_a_lost_dispute_counts_with_a_refund_of_the_same_payment(conference, paid, staff_user):
    order, payment = paid
    report(conference, S.LOST, minor=4000)

    with pytest.raises(ValidationError, match="more than the 60.00 USD left"):
        PaymentService.refund(payment, amount=D("60.01"), reason="other", staff_user=staff_user)

    order.refresh_from_db()
    assert net_received(order) == D("60.00")


def test_the_same_dispute_twice_changes_nothing_the_second_time(conference, paid):
    order, _ = paid
    report(conference, S.LOST)
    order.refresh_from_db()
    before = (order.status, order.updated_at, len(history(order)))
    row_before = Dispute.objects.get()

    again = report(conference, S.LOST)

    assert again is None
    order.refresh_from_db()
    assert (order.status, order.updated_at, len(history(order))) == before
    assert Dispute.objects.get().updated_at == row_before.updated_at
    assert Payment.objects.get(stripe_payment_intent_id="pi_paid").lost_dispute_amount == D(
        "100.00"
    )


@pytest.mark.parametrize(
    ("arrival", "final"),
    [
        # The closing event first, then the older ones: the dispute is never reopened.
        ((S.LOST, S.NEEDS_RESPONSE, S.UNDER_REVIEW), S.LOST),
        ((S.WON, S.UNDER_REVIEW, S.NEEDS_RESPONSE), S.WON),
        ((S.UNDER_REVIEW, S.NEEDS_RESPONSE, S.WON), S.WON),
        # An inquiry escalated to a chargeback; the inquiry's events arrive late.
        ((S.NEEDS_RESPONSE, S.WARNING_NEEDS_RESPONSE, S.WARNING_CLOSED), S.NEEDS_RESPONSE),
        # Once decided, the other decision never arrives for real: the first one stands.
        ((S.WON, S.LOST), S.WON),
    ],
)
def test_events_out_of_order_never_move_a_dispute_back(conference, paid, arrival, final):
    order, payment = paid
    results = [report(conference, status) for status in arrival]

    assert results[0] is not None
    assert Dispute.objects.get().status == final
    order.refresh_from_db()
    payment.refresh_from_db()
    lost = final == S.LOST
    assert payment.lost_dispute_amount == (D("100.00") if lost else D("0.00"))
    assert order.status == (Order.Status.REFUNDED if lost else Order.Status.PAID)
    assert order.needs_attention == (final not in (S.WON, S.LOST))
    assert len([e for e in history(order) if e.action in (A.DISPUTE, A.DISPUTE_LOST)]) == (
        sum(result is not None for result in results)
    )


def test_an_inquiry_closed_clears_the_flag_without_money(conference, paid):
    order, _ = paid
    report(conference, S.WARNING_NEEDS_RESPONSE, reason="general")
    order.refresh_from_db()
    assert "inquiry: needs response" in order.attention_reason

    report(conference, S.WARNING_CLOSED)

    order.refresh_from_db()
    assert (order.status, order.needs_attention) == (Order.Status.PAID, False)
    assert Dispute.objects.get().closed_at is not None


def test_two_open_disputes_each_flag_and_closing_one_keeps_the_other(conference, paid):
    order, _ = paid
    report(conference, S.NEEDS_RESPONSE, minor=4000)
    second = dispute_object("pi_paid", "ch_paid", 6000, dispute_id="dp_2")
    apply_stripe_dispute(conference, parse_dispute(second))

    report(conference, S.WON, minor=4000)

    order.refresh_from_db()
    [reason] = order.attention_reason.splitlines()
    assert "dp_2" in reason and "dp_1" not in reason


def test_a_dispute_found_by_its_charge_when_stripe_names_no_intent(conference, paid):
    _, payment = paid
    obj = dispute_object(None, "ch_paid", 10000, dispute_id="dp_charge")

    row = apply_stripe_dispute(conference, parse_dispute(obj))

    assert row is not None and row.payment == payment


def test_a_dispute_on_an_unknown_payment_is_refused_with_a_readable_reason(conference, paid):
    obj = dispute_object("pi_unknown", "ch_unknown", 5000, dispute_id="dp_lost_track")

    with pytest.raises(UnmatchedPaymentError, match="dp_lost_track.*pi_unknown.*matches no"):
        apply_stripe_dispute(conference, parse_dispute(obj))

    assert not Dispute.objects.exists()


def test_a_dispute_of_another_conferences_payment_changes_nothing_here(conference, paid):
    other = Conference.objects.create(name="Other", slug="other", currency="USD")
    order, _ = paid

    with pytest.raises(PaymentOfAnotherConference):
        apply_stripe_dispute(other, parse_dispute(dispute_object("pi_paid", "ch_paid", 10000)))

    assert not Dispute.objects.exists()
    order.refresh_from_db()
    assert not order.needs_attention


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"currency": "eur"}, "is in EUR, but"),
        ({"amount": 10001}, "more than the 100.00 USD of its payment"),
    ],
)
def test_a_dispute_that_does_not_fit_its_payment_is_refused(conference, paid, fields, message):
    obj = dispute_object("pi_paid", "ch_paid", 10000) | fields

    with pytest.raises(UnmatchedPaymentError, match=message):
        apply_stripe_dispute(conference, parse_dispute(obj))

    assert not Dispute.objects.exists()


def test_a_dispute_before_the_payments_success_records_both(conference, make_order):
    """The dispute proves the charge succeeded: the pending attempt is recorded as taken first."""
    order = make_order("100.00")
    payment = Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        status=Payment.Status.PENDING,
        amount=D("100.00"),
        stripe_payment_intent_id="pi_paid",
    )

    report(conference, S.LOST)

    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, payment.stripe_charge_id) == (Payment.Status.SUCCEEDED, "ch_paid")
    assert payment.lost_dispute_amount == D("100.00")
    assert order.status == Order.Status.REFUNDED
    assert [e.action for e in history(order)] == [A.CARD_PAYMENT, A.DISPUTE_LOST]


def refunded_at_stripe(conference: Conference, payment: Payment, minor: int) -> None:
    """Stripe reports a succeeded refund of ``minor`` on the payment (``refund.updated``)."""
    refund = {
        "id": "re_before_dispute",
        "object": "refund",
        "amount": minor,
        "currency": "usd",
        "status": "succeeded",
        "payment_intent": payment.stripe_payment_intent_id,
        "charge": payment.stripe_charge_id,
    }
    apply_stripe_refund(conference, parse_refund(refund))


@pytest.mark.parametrize("refunded", [10000, 5000])
def test_a_dispute_lost_on_a_refunded_payment_is_money_out_twice_everywhere_and_flagged(
    conference, paid, refunded
):
    order, payment = paid
    refunded_at_stripe(conference, payment, refunded)
    report(conference, S.NEEDS_RESPONSE)

    report(conference, S.LOST)

    order.refresh_from_db()
    payment.refresh_from_db()
    given_back = D(refunded) / 100 + D("100.00")
    net = D("100.00") - given_back
    assert net_received(order) == order.amount_paid == net
    assert Order.objects.with_amounts().get(pk=order.pk).paid_sum == net
    summary = finance_summary()
    assert [(row.refunded, row.net) for row in summary.revenue] == [(given_back, net)]
    assert sum(summary.daily.by_currency["USD"]) == net
    assert order.status == Order.Status.REFUNDED
    assert order.needs_attention
    assert (
        f"Given back twice: Stripe payment pi_paid of 100.00 USD was refunded "
        f"{order.format(D(refunded) / 100)} and lost a dispute of 100.00 USD"
    ) in order.attention_reason
