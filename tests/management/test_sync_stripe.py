"""sync_stripe: the scheduled re-sync from Stripe, against localstripe with no webhook sent."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from backoffice.models import Conference, Order, OrderHistoryEntry, Payment, Refund
from backoffice.services.payment import PaymentService
from tests.stripe_fixtures import (
    TEST_SECRET_KEY,
    paid_at_stripe,
    pay_by_card,
)

pytestmark = pytest.mark.django_db


def run(capsys, *args: str) -> tuple[list[str], list[str]]:
    """Run the command; its stdout and stderr lines."""
    call_command("sync_stripe", *args)
    captured = capsys.readouterr()
    return captured.out.splitlines(), captured.err.splitlines()


def age(payment_intent_id: str, minutes: int) -> None:
    """Make an attempt look unchanged for ``minutes`` (tests cannot wait that long)."""
    Payment.objects.filter(stripe_payment_intent_id=payment_intent_id).update(
        updated_at=timezone.now() - timedelta(minutes=minutes)
    )


@pytest.fixture
def unpaid_at_stripe(stripe_conference, make_order, localstripe) -> Order:
    """An order paid by card at Stripe whose webhook never arrived: pending here."""
    order = make_order("100.00", conference=stripe_conference)
    paid_at_stripe(order, localstripe)
    return order


def test_an_order_paid_at_stripe_with_no_webhook_is_paid_after_the_command(
    capsys, unpaid_at_stripe
):
    order = unpaid_at_stripe
    intent_id = Payment.objects.get(order=order).stripe_payment_intent_id

    out, err = run(capsys)

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert Payment.objects.get(order=order).status == Payment.Status.SUCCEEDED
    assert out == [
        f"{order.reference}: Card payment: Stripe payment {intent_id} of 100.00 USD "
        "(order pending → paid).",
        "Checked 1 order, 1 payment changed, 0 errors.",
    ]
    assert err == []
    [entry] = OrderHistoryEntry.objects.filter(order=order)
    assert entry.actor_name == "Stripe (re-sync)"


def test_running_it_twice_changes_nothing_the_second_time(capsys, unpaid_at_stripe):
    today = timezone.localdate().isoformat()
    run(capsys, "--since", today)
    history = list(OrderHistoryEntry.objects.values_list("id", flat=True))

    out, err = run(capsys, "--since", today)

    assert out == ["Checked 1 order, 0 payments changed, 0 errors."]
    assert err == []
    assert list(OrderHistoryEntry.objects.values_list("id", flat=True)) == history


def test_without_since_only_orders_with_an_open_stripe_payment_are_checked(
    capsys, unpaid_at_stripe, make_order, stripe_conference, localstripe
):
    paid = make_order("100.00", conference=stripe_conference)
    pay_by_card(paid, localstripe)
    cash = make_order("100.00", conference=stripe_conference)
    PaymentService.record_manual(cash, amount=Decimal("100.00"))

    out, _err = run(capsys)

    assert out[-1] == "Checked 1 order, 1 payment changed, 0 errors."
    assert out[0].startswith(f"{unpaid_at_stripe.reference}: ")


def test_since_brings_a_refund_made_at_stripe_onto_the_ledger(
    capsys, stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    payment = pay_by_card(order, localstripe)
    localstripe.api(
        "POST", "/v1/refunds", payment_intent=payment.stripe_payment_intent_id, amount=2500
    )
    assert run(capsys)[0] == ["Checked 0 orders, 0 payments changed, 0 errors."]

    out, _err = run(capsys, "--since", timezone.localdate().isoformat())

    refund = Refund.objects.get(payment=payment)
    assert (refund.status, refund.amount) == (Refund.Status.SUCCEEDED, Decimal("25.00"))
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED
    assert out[-1] == "Checked 1 order, 1 payment changed, 0 errors."


def test_since_a_later_day_leaves_older_payments_out(
    capsys, stripe_conference, make_order, localstripe
):
    pay_by_card(make_order("100.00", conference=stripe_conference), localstripe)
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()

    out, _err = run(capsys, "--since", tomorrow)

    assert out == ["Checked 0 orders, 0 payments changed, 0 errors."]


def test_stale_minutes_skips_attempts_changed_more_recently(capsys, unpaid_at_stripe):
    intent_id = Payment.objects.get(order=unpaid_at_stripe).stripe_payment_intent_id

    assert run(capsys, "--stale-minutes", "30")[0] == [
        "Checked 0 orders, 0 payments changed, 0 errors."
    ]
    age(intent_id, minutes=31)
    out, _err = run(capsys, "--stale-minutes", "30")

    assert out[-1] == "Checked 1 order, 1 payment changed, 0 errors."
    unpaid_at_stripe.refresh_from_db()
    assert unpaid_at_stripe.status == Order.Status.PAID


def test_conference_limits_the_orders_checked(
    capsys, unpaid_at_stripe, make_order, localstripe, stripe_settings
):
    other = Conference.objects.create(
        name="Other", slug="other", currency="USD", stripe_secret_key=TEST_SECRET_KEY
    )
    elsewhere = make_order("100.00", conference=other)
    paid_at_stripe(elsewhere, localstripe)

    out, _err = run(capsys, "--conference", "other")

    assert out[-1] == "Checked 1 order, 1 payment changed, 0 errors."
    elsewhere.refresh_from_db()
    unpaid_at_stripe.refresh_from_db()
    assert (elsewhere.status, unpaid_at_stripe.status) == (Order.Status.PAID, Order.Status.PENDING)


def test_a_payment_stripe_no_longer_knows_is_printed(capsys, stripe_conference, make_order):
    order = make_order("100.00", conference=stripe_conference)
    # What a change of Stripe account leaves behind (no service writes it on purpose).
    Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        amount="100.00",
        stripe_payment_intent_id="pi_gone",
    )

    out, err = run(capsys)

    assert out == [
        f"{order.reference}: all in order. Stripe no longer knows payment pi_gone "
        "(were the keys changed?).",
        "Checked 1 order, 0 payments changed, 0 errors.",
    ]
    assert err == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2026-13-01"], "--since must be a date as YYYY-MM-DD"),
        (["--since", "yesterday"], "--since must be a date as YYYY-MM-DD"),
        (["--stale-minutes", "-5"], "--stale-minutes must be a whole number of minutes"),
        (["--stale-minutes", "soon"], "--stale-minutes must be a whole number of minutes"),
        (["--conference", "nope"], "No conference with the slug 'nope'."),
    ],
)
def test_bad_options_are_a_clear_command_error(capsys, unpaid_at_stripe, args, message):
    with pytest.raises(CommandError, match=message) as refused:
        call_command("sync_stripe", *args)

    assert refused.value.returncode == 1
    unpaid_at_stripe.refresh_from_db()
    assert unpaid_at_stripe.status == Order.Status.PENDING


def test_stripe_unreachable_exits_non_zero_and_changes_nothing(
    capsys, stripe_conference, make_order, localstripe, settings, stripe_unreachable
):
    settings.STRIPE_API_BASE = localstripe.url
    orders = [make_order("100.00", conference=stripe_conference) for _ in range(2)]
    for order in orders:
        paid_at_stripe(order, localstripe)
    settings.STRIPE_API_BASE = stripe_unreachable

    with pytest.raises(CommandError, match="Stripe could not be reached") as failed:
        call_command("sync_stripe")

    assert failed.value.returncode == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["Checked 1 order, 0 payments changed, 2 errors."]
    assert captured.err.splitlines() == [
        f"{orders[0].reference}: error: Could not reach Stripe to look up the payment. "
        "Please try again in a few minutes.",
        f"{orders[1].reference}: not checked (Stripe unreachable).",
    ]
    assert not Order.objects.filter(status=Order.Status.PAID).exists()
    assert not OrderHistoryEntry.objects.exists()


def test_an_order_that_cannot_be_synced_is_an_error_and_the_others_go_on(
    capsys, unpaid_at_stripe, make_order
):
    no_keys = Conference.objects.create(name="No keys", slug="no-keys", currency="USD")
    stuck = make_order("100.00", conference=no_keys)
    # An attempt from before the conference's keys were removed.
    Payment.objects.create(
        order=stuck, method=Payment.Method.STRIPE, amount="100.00", stripe_payment_intent_id="pi_x"
    )

    with pytest.raises(CommandError, match="1 order could not be re-synced") as failed:
        call_command("sync_stripe")

    assert failed.value.returncode == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == "Checked 2 orders, 1 payment changed, 1 error."
    [line] = captured.err.splitlines()
    assert line.startswith(f"{stuck.reference}: error: ") and "no Stripe secret key" in line
    unpaid_at_stripe.refresh_from_db()
    assert unpaid_at_stripe.status == Order.Status.PAID


def test_a_declined_attempt_later_paid_on_the_same_intent_is_picked_up(capsys, unpaid_at_stripe):
    order = unpaid_at_stripe
    # The payment_failed webhook of a first, declined card was applied (the row is
    # FAILED); the attendee then paid on the same intent and that webhook was lost.
    Payment.objects.filter(order=order).update(status=Payment.Status.FAILED)

    out, err = run(capsys, "--stale-minutes", "0")

    assert out[-1] == "Checked 1 order, 1 payment changed, 0 errors."
    assert err == []
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert Payment.objects.get(order=order).status == Payment.Status.SUCCEEDED


def test_an_attempt_declined_long_ago_is_not_checked_again(capsys, unpaid_at_stripe):
    Payment.objects.filter(order=unpaid_at_stripe).update(
        status=Payment.Status.FAILED, updated_at=timezone.now() - timedelta(days=4)
    )

    out, _err = run(capsys)

    assert out == ["Checked 0 orders, 0 payments changed, 0 errors."]
