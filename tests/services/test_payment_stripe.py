"""PaymentService's Stripe side against localstripe: starting payments and applying outcomes.

(The cash/comp half of ``backoffice/services/payment/`` is in test_payment.py.)
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from backoffice.models import Conference, Order, Payment, StripeCustomer
from backoffice.services import payment as payment_services
from backoffice.services.order_paid import send_due_order_paid
from backoffice.services.payment import (
    PaymentProviderError,
    PaymentService,
    StripeNotConfigured,
    UnmatchedPaymentError,
)
from backoffice.signals import order_paid
from backoffice.stripe_client import StripeClient, parse_charge, parse_payment_intent
from tests.stripe_fixtures import CARD_DECLINED, refunded_charge, start_localstripe

pytestmark = pytest.mark.django_db


def apply_payment_intent(conference, intent, outcome):
    """Apply Stripe's JSON of an intent, parsed at the boundary as the webhook does."""
    return payment_services.apply_payment_intent(conference, parse_payment_intent(intent), outcome)


def apply_charge_refund(conference, charge):
    """Apply Stripe's JSON of a refunded charge, parsed at the boundary as the webhook does."""
    return payment_services.apply_charge_refund(conference, parse_charge(charge))


def intent_id_of(client_secret: str) -> str:
    """The PaymentIntent id inside a client secret (``pi_x_secret_y``)."""
    return client_secret.split("_secret_")[0]


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks, run_tasks):
    """Commit at the end of a ``with`` block: run on-commit callbacks, then the worker's tasks.

    The callbacks call Stripe (e.g. cancelling a replaced attempt); the tasks send ``order_paid``.
    """

    @contextmanager
    def committed(*, execute: bool = True) -> Iterator[list]:
        with django_capture_on_commit_callbacks(execute=execute) as callbacks:
            yield callbacks
        run_tasks()

    return committed


@pytest.fixture
def paid_signals():
    """Collect the orders ``order_paid`` fires for."""
    fired: list[int] = []

    def receiver(sender, order, user, **kwargs):
        fired.append(order.pk)

    order_paid.connect(receiver)
    yield fired
    order_paid.disconnect(receiver)


# --- initiate_payment ---------------------------------------------------------


def test_initiate_payment_creates_one_intent_and_one_pending_payment(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)

    client_secret = PaymentService.initiate_payment(order)

    payment = Payment.objects.get(order=order)
    assert payment.method == Payment.Method.STRIPE
    assert payment.status == Payment.Status.PENDING
    assert payment.amount == Decimal("100.00")
    assert payment.stripe_payment_intent_id == intent_id_of(client_secret)
    intent = localstripe.api("GET", f"/v1/payment_intents/{payment.stripe_payment_intent_id}")
    assert intent["amount"] == 10000
    assert intent["currency"] == "usd"
    assert intent["client_secret"] == client_secret
    assert intent["metadata"] == {
        "order_id": str(order.pk),
        "order_reference": order.reference,
        "conference": "stripecon",
    }
    customer = StripeCustomer.objects.get(user=order.user, conference=stripe_conference)
    assert intent["customer"] == customer.stripe_customer_id


def test_initiate_payment_twice_reuses_the_open_attempt(stripe_conference, make_order):
    order = make_order("100.00", conference=stripe_conference)

    first = PaymentService.initiate_payment(order)
    second = PaymentService.initiate_payment(Order.objects.get(pk=order.pk))

    assert first == second
    assert Payment.objects.filter(order=order).count() == 1
    assert StripeCustomer.objects.count() == 1


def test_initiate_payment_charges_only_the_balance_after_a_partial_manual_payment(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    PaymentService.record_manual(order, amount=Decimal("30.00"))

    client_secret = PaymentService.initiate_payment(order)

    intent = localstripe.api("GET", f"/v1/payment_intents/{intent_id_of(client_secret)}")
    assert intent["amount"] == 7000
    stripe_payment = Payment.objects.get(order=order, method=Payment.Method.STRIPE)
    assert stripe_payment.amount == Decimal("70.00")


def test_initiate_payment_replaces_the_intent_when_the_balance_changed(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    old_secret = PaymentService.initiate_payment(order)
    PaymentService.record_manual(order, amount=Decimal("40.00"))

    new_secret = PaymentService.initiate_payment(order)

    assert new_secret != old_secret
    old = Payment.objects.get(stripe_payment_intent_id=intent_id_of(old_secret))
    new = Payment.objects.get(stripe_payment_intent_id=intent_id_of(new_secret))
    assert old.status == Payment.Status.CANCELED
    assert new.status == Payment.Status.PENDING
    assert new.amount == Decimal("60.00")
    assert localstripe.api("GET", f"/v1/payment_intents/{old.stripe_payment_intent_id}")[
        "status"
    ] == ("canceled")
    assert localstripe.api("GET", f"/v1/payment_intents/{new.stripe_payment_intent_id}")[
        "amount"
    ] == (6000)


def test_cash_recorded_while_stripe_creates_the_intent_is_not_charged_again(
    stripe_conference, make_order, localstripe, monkeypatch
):
    """No lock is held during the Stripe call: a clerk may record cash meanwhile."""
    order = make_order("100.00", conference=stripe_conference)
    real_create = StripeClient.create_payment_intent
    stale: list[str] = []

    def create_while_the_desk_takes_cash(self, order_, *, amount, idempotency_key):
        intent = real_create(self, order_, amount=amount, idempotency_key=idempotency_key)
        if not stale:
            stale.append(intent.id)
            PaymentService.record_manual(Order.objects.get(pk=order_.pk), amount=Decimal("30"))
        return intent

    monkeypatch.setattr(StripeClient, "create_payment_intent", create_while_the_desk_takes_cash)

    client_secret = PaymentService.initiate_payment(order)

    intent = localstripe.api("GET", f"/v1/payment_intents/{intent_id_of(client_secret)}")
    assert intent["amount"] == 7000
    attempt = Payment.objects.get(order=order, method=Payment.Method.STRIPE)
    assert attempt.amount == Decimal("70.00")
    assert attempt.stripe_payment_intent_id == intent["id"] != stale[0]
    assert localstripe.api("GET", f"/v1/payment_intents/{stale[0]}")["status"] == "canceled"


def test_record_manual_cancels_the_open_card_attempt_after_commit(
    stripe_conference, make_order, localstripe, on_commit
):
    """A pay page left open on the old intent can no longer charge the old balance."""
    order = make_order("100.00", conference=stripe_conference)
    old = intent_id_of(PaymentService.initiate_payment(order))

    with on_commit(execute=True) as callbacks:
        PaymentService.record_manual(order, amount=Decimal("30.00"))
        assert localstripe.api("GET", f"/v1/payment_intents/{old}")["status"] != "canceled"

    assert len(callbacks) == 1
    assert localstripe.api("GET", f"/v1/payment_intents/{old}")["status"] == "canceled"
    attempt = Payment.objects.get(stripe_payment_intent_id=old)
    assert attempt.status == Payment.Status.CANCELED
    assert "manual payment" in attempt.note
    new = intent_id_of(PaymentService.initiate_payment(order))
    assert localstripe.api("GET", f"/v1/payment_intents/{new}")["amount"] == 7000


def test_record_manual_keeps_the_cash_when_stripe_cannot_be_reached(
    stripe_conference, make_order, settings, tmp_path, on_commit, caplog
):
    order = make_order("100.00", conference=stripe_conference)
    with start_localstripe(tmp_path) as doomed:
        settings.STRIPE_API_BASE = doomed.url
        old = intent_id_of(PaymentService.initiate_payment(order))
    # Stripe is gone now.

    with on_commit(execute=True):
        cash = PaymentService.record_manual(order, amount=Decimal("30.00"))

    assert Payment.objects.get(pk=cash.pk).status == Payment.Status.SUCCEEDED
    attempt = Payment.objects.get(stripe_payment_intent_id=old)
    assert attempt.status == Payment.Status.PENDING  # replaced at the next page load
    assert "Could not cancel the card payment attempt" in caplog.text


def test_cash_for_an_order_already_paid_by_card_records_both_and_flags_it(
    stripe_conference, make_order, localstripe, staff_user, on_commit, paid_signals
):
    """The attendee paid at Stripe (no webhook yet), then the desk took the same 100 in cash."""
    order = make_order("100.00", conference=stripe_conference)
    card = intent_id_of(PaymentService.initiate_payment(order))
    assert localstripe.confirm_payment_intent(card)["status"] == "succeeded"

    with on_commit(execute=True):
        PaymentService.record_manual(
            order, amount=Decimal("100.00"), channel=Payment.Channel.CASH, staff_user=staff_user
        )

    payments = Payment.objects.filter(order=order)
    assert {(p.method, p.status, p.amount) for p in payments} == {
        (Payment.Method.MANUAL, Payment.Status.SUCCEEDED, Decimal("100.00")),
        (Payment.Method.STRIPE, Payment.Status.SUCCEEDED, Decimal("100.00")),
    }
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.needs_attention
    assert order.attention_reason.startswith("Overpaid")
    assert "manual payment of 100.00" in order.attention_reason
    assert "(cash)" in order.attention_reason
    assert f"Stripe payment {card} of 100.00" in order.attention_reason
    assert paid_signals == [order.pk]  # sent once, for the cash that paid it first


def test_cash_while_the_card_payment_is_still_open_leaves_no_flag(
    stripe_conference, make_order, localstripe, on_commit
):
    """Stripe cancels an unpaid intent: nothing was taken twice, nothing is flagged."""
    order = make_order("100.00", conference=stripe_conference)
    card = intent_id_of(PaymentService.initiate_payment(order))

    with on_commit(execute=True):
        PaymentService.record_manual(order, amount=Decimal("100.00"))

    assert Payment.objects.get(stripe_payment_intent_id=card).status == Payment.Status.CANCELED
    order.refresh_from_db()
    assert (order.status, order.needs_attention) == (Order.Status.PAID, False)


def test_initiate_payment_replaces_an_intent_cancelled_at_stripe(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    old_secret = PaymentService.initiate_payment(order)
    localstripe.api("POST", f"/v1/payment_intents/{intent_id_of(old_secret)}/cancel")

    new_secret = PaymentService.initiate_payment(order)

    assert new_secret != old_secret
    statuses = dict(Payment.objects.filter(order=order).values_list("amount", "status"))
    assert Payment.objects.filter(order=order, status=Payment.Status.PENDING).count() == 1
    assert Payment.Status.CANCELED in statuses.values()


def test_initiate_payment_replaces_an_intent_stripe_no_longer_knows(
    stripe_conference, make_order, settings, tmp_path
):
    """E.g. the conference moved to another Stripe account: the old attempt is closed."""
    order = make_order("100.00", conference=stripe_conference)
    old_secret = PaymentService.initiate_payment(order)
    with start_localstripe(tmp_path) as other_account:
        settings.STRIPE_API_BASE = other_account.url

        new_secret = PaymentService.initiate_payment(order)

        assert other_account.api("GET", f"/v1/payment_intents/{intent_id_of(new_secret)}")
    old = Payment.objects.get(stripe_payment_intent_id=intent_id_of(old_secret))
    assert old.status == Payment.Status.CANCELED
    assert "no longer knows" in old.note
    assert Payment.objects.filter(order=order, status=Payment.Status.PENDING).count() == 1


def test_initiate_payment_records_a_payment_already_made_instead_of_charging_again(
    stripe_conference, make_order, localstripe, paid_signals, on_commit
):
    order = make_order("100.00", conference=stripe_conference)
    client_secret = PaymentService.initiate_payment(order)
    localstripe.confirm_payment_intent(intent_id_of(client_secret))

    with on_commit(execute=True), pytest.raises(ValidationError, match="already paid"):
        PaymentService.initiate_payment(order)

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert Payment.objects.filter(order=order).count() == 1
    assert paid_signals == [order.pk]


@pytest.mark.parametrize("status", [Order.Status.PAID, Order.Status.CANCELLED])
def test_initiate_payment_refuses_non_pending_orders(stripe_conference, make_order, status):
    order = make_order("100.00", conference=stripe_conference, status=status)

    with pytest.raises(ValidationError):
        PaymentService.initiate_payment(order)

    assert not Payment.objects.filter(order=order).exists()


def test_initiate_payment_refuses_zero_balance_and_points_to_comp(stripe_conference, make_order):
    order = make_order("0.00", conference=stripe_conference)

    with pytest.raises(ValidationError, match="Mark comp"):
        PaymentService.initiate_payment(order)


def test_initiate_payment_refuses_a_balance_the_currency_cannot_express(
    stripe_conference, make_order
):
    """The currency was changed to JPY after a 49.99 USD order: a clear refusal, not a 500."""
    order = make_order("49.99", conference=stripe_conference)
    Conference.objects.filter(pk=stripe_conference.pk).update(currency="JPY")
    order = Order.objects.select_related("conference").get(pk=order.pk)

    with pytest.raises(ValidationError, match="cannot be charged in JPY"):
        PaymentService.initiate_payment(order)

    assert not Payment.objects.filter(order=order).exists()


def test_initiate_payment_without_keys_names_the_conference(conference, make_order):
    order = make_order("100.00")

    with pytest.raises(StripeNotConfigured, match="PyCon Test") as excinfo:
        PaymentService.initiate_payment(order)

    assert isinstance(excinfo.value, ValueError)
    assert not Payment.objects.exists()


def test_initiate_payment_when_stripe_is_unreachable_leaves_no_row(
    stripe_conference, make_order, settings, tmp_path
):
    order = make_order("100.00", conference=stripe_conference)
    with start_localstripe(tmp_path) as doomed:
        settings.STRIPE_API_BASE = doomed.url
        PaymentService.initiate_payment(order)  # customer and first intent exist
        PaymentService.record_manual(order, amount=Decimal("10.00"))  # forces a new intent
    # The server is stopped now.
    settings.STRIPE_MAX_NETWORK_RETRIES = 1

    with pytest.raises(PaymentProviderError, match="Could not reach Stripe"):
        PaymentService.initiate_payment(order)

    stripe_rows = Payment.objects.filter(order=order, method=Payment.Method.STRIPE)
    assert stripe_rows.count() == 1
    assert stripe_rows.get().status == Payment.Status.PENDING  # untouched, not half-replaced


def test_initiate_payment_first_time_with_stripe_down_creates_nothing(
    stripe_conference, make_order, settings, tmp_path
):
    order = make_order("100.00", conference=stripe_conference)
    with start_localstripe(tmp_path) as doomed:
        settings.STRIPE_API_BASE = doomed.url

    with pytest.raises(PaymentProviderError, match="Could not reach Stripe"):
        PaymentService.initiate_payment(order)

    assert not Payment.objects.exists()
    assert not StripeCustomer.objects.exists()


def test_concurrent_page_loads_settle_on_one_intent_and_one_row(
    stripe_conference, make_order, localstripe, monkeypatch
):
    """A second page load runs while the first one waits for Stripe to create its intent."""
    order = make_order("100.00", conference=stripe_conference)
    real_create = StripeClient.create_payment_intent
    inner_secrets: list[str] = []

    def create_while_another_request_runs(self, *args, **kwargs):
        intent = real_create(self, *args, **kwargs)
        if not inner_secrets:
            inner_secrets.append("running")
            inner_secrets[0] = PaymentService.initiate_payment(Order.objects.get(pk=order.pk))
        return intent

    monkeypatch.setattr(StripeClient, "create_payment_intent", create_while_another_request_runs)

    outer = PaymentService.initiate_payment(order)

    assert outer == inner_secrets[0]
    rows = Payment.objects.filter(order=order)
    assert rows.count() == 1
    assert rows.get().stripe_payment_intent_id == intent_id_of(outer)
    # localstripe ignores idempotency keys, so the loser made a second intent;
    # it must have been cancelled, leaving exactly one payable intent.
    intents = [
        i
        for i in localstripe.list_all("/v1/payment_intents")
        if i["metadata"].get("order_reference") == order.reference
    ]
    live = [i for i in intents if i["status"] != "canceled"]
    assert [i["id"] for i in live] == [intent_id_of(outer)]


def test_concurrent_page_loads_send_the_same_idempotency_key(
    stripe_conference, make_order, monkeypatch
):
    """Real Stripe answers a repeated key with the same intent: both loads share one."""
    order = make_order("100.00", conference=stripe_conference)
    keys: list[str] = []
    real_create = StripeClient.create_payment_intent

    def record(self, order_, *, idempotency_key, **kwargs):
        keys.append(idempotency_key)
        return real_create(self, order_, idempotency_key=idempotency_key, **kwargs)

    monkeypatch.setattr(StripeClient, "create_payment_intent", record)
    PaymentService.initiate_payment(order)
    # A second request that read the same ledger state (before the first stored its row).
    Payment.objects.filter(order=order).delete()
    PaymentService.initiate_payment(order)

    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert order.reference in keys[0]


def test_zero_decimal_currency_is_sent_in_whole_yen(stripe_jpy_conference, make_order, localstripe):
    order = make_order("5000", conference=stripe_jpy_conference)

    client_secret = PaymentService.initiate_payment(order)

    intent = localstripe.api("GET", f"/v1/payment_intents/{intent_id_of(client_secret)}")
    assert intent["amount"] == 5000
    assert intent["currency"] == "jpy"


def test_zero_decimal_currency_success_records_exact_yen(
    stripe_jpy_conference, make_order, localstripe
):
    order = make_order("5000", conference=stripe_jpy_conference)
    client_secret = PaymentService.initiate_payment(order)
    intent = localstripe.confirm_payment_intent(intent_id_of(client_secret))

    apply_payment_intent(stripe_jpy_conference, intent, Payment.Status.SUCCEEDED)

    payment = Payment.objects.get(order=order)
    assert payment.amount == Decimal("5000")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


# --- applying outcomes ----------------------------------------------------------


def test_succeeded_intent_marks_payment_and_order_paid_once(
    stripe_conference, make_order, localstripe, paid_signals, on_commit
):
    order = make_order("100.00", conference=stripe_conference)
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order))
    )

    with on_commit(execute=True):
        apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)
    with on_commit(execute=True):
        apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)

    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.amount == Decimal("100.00")
    assert payment.stripe_charge_id.startswith("ch_")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert not order.needs_attention
    assert paid_signals == [order.pk]


def test_partial_manual_then_stripe_pays_the_rest(
    stripe_conference, make_order, localstripe, paid_signals, on_commit
):
    order = make_order("100.00", conference=stripe_conference)
    PaymentService.record_manual(order, amount=Decimal("25.00"))
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order))
    )

    with on_commit(execute=True):
        apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.amount_paid == Decimal("100.00")
    assert not order.needs_attention
    assert paid_signals == [order.pk]


def test_declined_card_marks_the_attempt_failed_with_stripes_message(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order)), card=CARD_DECLINED
    )

    apply_payment_intent(stripe_conference, intent, Payment.Status.FAILED)

    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.FAILED
    assert payment.note == "Your card was declined."
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_after_a_decline_the_next_page_load_starts_a_new_attempt(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    first = PaymentService.initiate_payment(order)
    intent = localstripe.confirm_payment_intent(intent_id_of(first), card=CARD_DECLINED)
    apply_payment_intent(stripe_conference, intent, Payment.Status.FAILED)

    second = PaymentService.initiate_payment(order)

    assert second != first
    assert Payment.objects.filter(order=order, status=Payment.Status.PENDING).count() == 1


def test_after_a_decline_the_declined_intent_cannot_be_paid_any_more(
    stripe_conference, make_order, localstripe
):
    """Stripe puts a declined intent back to requires_payment_method: it is cancelled."""
    order = make_order("100.00", conference=stripe_conference)
    first = intent_id_of(PaymentService.initiate_payment(order))
    declined = localstripe.confirm_payment_intent(first, card=CARD_DECLINED)
    assert declined["status"] == "requires_payment_method"
    apply_payment_intent(stripe_conference, declined, Payment.Status.FAILED)

    second = intent_id_of(PaymentService.initiate_payment(order))

    assert localstripe.api("GET", f"/v1/payment_intents/{first}")["status"] == "canceled"
    assert localstripe.api("GET", f"/v1/payment_intents/{second}")["status"] != "canceled"
    failed = Payment.objects.get(stripe_payment_intent_id=first)
    assert failed.status == Payment.Status.FAILED  # the history still shows the decline
    assert failed.note == "Your card was declined."
    # Reloading again reuses the new attempt and leaves the old one alone.
    assert intent_id_of(PaymentService.initiate_payment(order)) == second


def test_a_retry_that_succeeded_on_the_declined_intent_is_recorded_not_cancelled(
    stripe_conference, make_order, localstripe, paid_signals, on_commit, monkeypatch
):
    """The attendee retried on the still-open page before reloading: that payment counts.

    localstripe refuses to confirm an intent a second time, so Stripe's answer
    for the retried intent (succeeded) is given on top of localstripe's own.
    """
    order = make_order("100.00", conference=stripe_conference)
    first = intent_id_of(PaymentService.initiate_payment(order))
    declined = localstripe.confirm_payment_intent(first, card=CARD_DECLINED)
    apply_payment_intent(stripe_conference, declined, Payment.Status.FAILED)
    real_retrieve = StripeClient.retrieve_payment_intent

    def retried_with_a_good_card(self, intent_id):
        intent = real_retrieve(self, intent_id)
        if intent_id != first:
            return intent
        return replace(intent, status="succeeded", amount=Decimal("100.00"), charge_id="ch_2")

    monkeypatch.setattr(StripeClient, "retrieve_payment_intent", retried_with_a_good_card)

    with on_commit(execute=True), pytest.raises(ValidationError, match="already paid"):
        PaymentService.initiate_payment(order)

    assert Payment.objects.get(stripe_payment_intent_id=first).status == (Payment.Status.SUCCEEDED)
    assert Payment.objects.filter(order=order).count() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert paid_signals == [order.pk]


def test_late_failure_never_undoes_a_success(stripe_conference, make_order, localstripe):
    order = make_order("100.00", conference=stripe_conference)
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order))
    )
    apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)

    apply_payment_intent(
        stripe_conference,
        intent | {"last_payment_error": {"message": "late"}},
        Payment.Status.FAILED,
    )
    apply_payment_intent(stripe_conference, intent, Payment.Status.CANCELED)
    apply_payment_intent(stripe_conference, intent, Payment.Status.PROCESSING)

    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.note == ""
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_success_after_a_failure_is_recorded(stripe_conference, make_order, localstripe):
    """Stripe may retry a failed intent and succeed: money taken always wins."""
    order = make_order("100.00", conference=stripe_conference)
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order))
    )
    apply_payment_intent(
        stripe_conference,
        intent | {"last_payment_error": {"message": "Your card was declined."}},
        Payment.Status.FAILED,
    )

    apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)

    assert Payment.objects.get(order=order).status == Payment.Status.SUCCEEDED
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_success_on_a_cancelled_order_is_recorded_and_flagged(
    stripe_conference, make_order, localstripe, paid_signals, on_commit
):
    order = make_order("100.00", conference=stripe_conference)
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order))
    )
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)

    with on_commit(execute=True):
        apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)

    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.amount == Decimal("100.00")
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.needs_attention
    assert "Overpaid" in order.attention_reason
    assert intent["id"] in order.attention_reason
    assert paid_signals == []


def test_success_after_cash_paid_in_full_is_recorded_and_flagged(
    stripe_conference, make_order, localstripe, paid_signals, on_commit
):
    order = make_order("100.00", conference=stripe_conference)
    intent_id = intent_id_of(PaymentService.initiate_payment(order))
    # The attendee pays online while the desk takes cash; the webhook comes last.
    # (Recording the cash cancels an intent that is still open; this one is paid.)
    intent = localstripe.confirm_payment_intent(intent_id)
    with on_commit(execute=True):
        PaymentService.record_manual(order, amount=Decimal("100.00"))  # paid at the desk

    with on_commit(execute=True):
        apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.needs_attention
    assert Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED).count() == 2
    assert paid_signals == [order.pk]  # from the cash payment only


def test_success_without_an_attempt_row_creates_the_payment(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent_id = intent_id_of(PaymentService.initiate_payment(order))
    intent = localstripe.confirm_payment_intent(intent_id)
    Payment.objects.filter(order=order).delete()  # e.g. lost in a restore

    apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)

    payment = Payment.objects.get(order=order)
    assert payment.stripe_payment_intent_id == intent_id
    assert payment.status == Payment.Status.SUCCEEDED
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_intent_of_another_conference_is_refused(
    stripe_conference, stripe_jpy_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order))
    )

    with pytest.raises(UnmatchedPaymentError, match="another conference"):
        apply_payment_intent(stripe_jpy_conference, intent, Payment.Status.SUCCEEDED)

    assert Payment.objects.get(order=order).status == Payment.Status.PENDING


def test_intent_naming_an_unknown_order_is_an_error_not_silence(stripe_conference):
    intent = {
        "id": "pi_unknown",
        "object": "payment_intent",
        "amount": 1000,
        "amount_received": 1000,
        "currency": "usd",
        "metadata": {"order_id": "999999", "order_reference": "ORD-NOPE"},
    }

    with pytest.raises(UnmatchedPaymentError, match="ORD-NOPE"):
        apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)


@pytest.mark.parametrize(
    "outcome", [Payment.Status.FAILED, Payment.Status.CANCELED, Payment.Status.PROCESSING]
)
def test_no_money_taken_for_an_unknown_order_is_ignored(stripe_conference, outcome):
    intent = {
        "id": "pi_unknown",
        "amount": 1000,
        "currency": "usd",
        "metadata": {"order_id": "999999", "order_reference": "ORD-NOPE"},
    }

    assert apply_payment_intent(stripe_conference, intent, outcome) is None
    assert not Payment.objects.exists()


def test_intent_that_is_not_ours_is_ignored(stripe_conference):
    intent = {"id": "pi_other_app", "amount": 1000, "currency": "usd", "metadata": {}}

    assert apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED) is None
    assert not Payment.objects.exists()


# --- refunds --------------------------------------------------------------------


def paid_stripe_order(conference, make_order, localstripe, total="100.00"):
    """An order paid in full through localstripe; returns (order, intent)."""
    order = make_order(total, conference=conference)
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order))
    )
    apply_payment_intent(conference, intent, Payment.Status.SUCCEEDED)
    order.refresh_from_db()
    return order, intent


def refund(localstripe, intent, amount=None):
    """Refund at localstripe and return the refunded charge as Stripe reports it."""
    charge_id = intent["latest_charge"]["id"]
    params = {"charge": charge_id}
    if amount is not None:
        params["amount"] = str(amount)
    localstripe.api("POST", "/v1/refunds", **params)
    charge = localstripe.api("GET", f"/v1/charges/{charge_id}")
    charge["payment_intent"] = intent["id"]
    return charge


def test_full_refund_marks_payment_and_order_refunded(stripe_conference, make_order, localstripe):
    order, intent = paid_stripe_order(stripe_conference, make_order, localstripe)
    charge = refund(localstripe, intent)
    assert charge["refunded"] is True

    apply_charge_refund(stripe_conference, charge)

    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.REFUNDED
    assert payment.refunded_amount == Decimal("100.00")
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED


def test_partial_refund_keeps_the_refunded_amount_visible(
    stripe_conference, make_order, localstripe
):
    order, intent = paid_stripe_order(stripe_conference, make_order, localstripe)
    charge = refund(localstripe, intent, amount=2500)

    apply_charge_refund(stripe_conference, charge)

    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.refunded_amount == Decimal("25.00")
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED


def test_an_older_refund_event_never_lowers_the_refunded_amount(
    stripe_conference, make_order, localstripe
):
    order, intent = paid_stripe_order(stripe_conference, make_order, localstripe)
    first = refund(localstripe, intent, amount=2500)
    second = refund(localstripe, intent, amount=7500)

    apply_charge_refund(stripe_conference, second)
    apply_charge_refund(stripe_conference, first)  # arrives late

    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.REFUNDED
    assert payment.refunded_amount == Decimal("100.00")
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED


def test_refund_arriving_before_success_records_both(
    stripe_conference, make_order, localstripe, paid_signals, on_commit
):
    order = make_order("100.00", conference=stripe_conference)
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order))
    )
    charge = refund(localstripe, intent, amount=4000)

    with on_commit(execute=True):
        apply_charge_refund(stripe_conference, charge)
    with on_commit(execute=True):
        apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)  # late

    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.amount == Decimal("100.00")
    assert payment.refunded_amount == Decimal("40.00")
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED
    assert paid_signals == [order.pk]


def test_refund_of_the_stripe_part_of_a_mixed_order_is_partial(
    stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    PaymentService.record_manual(order, amount=Decimal("30.00"))
    intent = localstripe.confirm_payment_intent(
        intent_id_of(PaymentService.initiate_payment(order))
    )
    apply_payment_intent(stripe_conference, intent, Payment.Status.SUCCEEDED)

    apply_charge_refund(stripe_conference, refund(localstripe, intent))

    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED  # the 30.00 cash is still held


def succeeded_intent(order, intent_id, minor, charge_id):
    """A succeeded PaymentIntent as Stripe sends it (for cases localstripe cannot produce)."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": "succeeded",
        "currency": "usd",
        "amount": minor,
        "amount_received": minor,
        "latest_charge": charge_id,
        "metadata": {"order_id": str(order.pk), "order_reference": order.reference},
    }


def amounts(order):
    """(amount paid, balance due) from the model property and from the list annotation."""
    fresh = Order.objects.get(pk=order.pk)
    annotated = Order.objects.with_amounts().get(pk=order.pk)
    assert (annotated.paid_sum, annotated.balance_sum) == (
        fresh.amount_paid,
        fresh.total - fresh.amount_paid,
    )
    return fresh.amount_paid, fresh.balance_due


def test_refunding_the_overpaid_difference_keeps_the_order_paid(conference, make_order):
    """30.00 cash, then a card payment of the full 100.00: staff give the 30.00 back."""
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("30.00"))
    apply_payment_intent(
        conference, succeeded_intent(order, "pi_over", 10000, "ch_over"), Payment.Status.SUCCEEDED
    )
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.needs_attention

    apply_charge_refund(conference, refunded_charge("ch_over", "pi_over", 10000, 3000))

    order.refresh_from_db()
    assert order.status == Order.Status.PAID  # 100.00 of 100.00 is still held
    assert amounts(order) == (Decimal("100.00"), Decimal("0.00"))
    assert Payment.objects.get(stripe_payment_intent_id="pi_over").refunded_amount == Decimal(
        "30.00"
    )


def test_amount_paid_is_net_of_refunds_partial_and_full_alike(conference, make_order):
    """One cent more refunded moves the balance due by one cent, not by the whole payment."""
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("50.00"))
    apply_payment_intent(
        conference, succeeded_intent(order, "pi_mix", 5000, "ch_mix"), Payment.Status.SUCCEEDED
    )
    assert amounts(order) == (Decimal("100.00"), Decimal("0.00"))

    apply_charge_refund(conference, refunded_charge("ch_mix", "pi_mix", 5000, 4999))
    assert amounts(order) == (Decimal("50.01"), Decimal("49.99"))
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED

    apply_charge_refund(conference, refunded_charge("ch_mix", "pi_mix", 5000, 5000))
    assert amounts(order) == (Decimal("50.00"), Decimal("50.00"))
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED  # the 50.00 cash is still held
    assert Payment.objects.get(stripe_payment_intent_id="pi_mix").status == (
        Payment.Status.REFUNDED
    )


def test_refund_found_by_charge_id_when_the_event_has_no_intent(conference, make_order):
    order = make_order("100.00")
    apply_payment_intent(
        conference, succeeded_intent(order, "pi_byc", 10000, "ch_byc"), Payment.Status.SUCCEEDED
    )

    apply_charge_refund(conference, refunded_charge("ch_byc", None, 10000, 10000))

    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert amounts(order) == (Decimal("0.00"), Decimal("100.00"))


def test_full_refund_arriving_before_success_never_sends_order_paid(
    conference, make_order, paid_signals, on_commit
):
    order = make_order("100.00")
    Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        amount=Decimal("100.00"),
        stripe_payment_intent_id="pi_early",
    )

    with on_commit(execute=True):
        apply_charge_refund(conference, refunded_charge("ch_early", "pi_early", 10000, 10000))
    with on_commit(execute=True):
        apply_payment_intent(
            conference,
            succeeded_intent(order, "pi_early", 10000, "ch_early"),
            Payment.Status.SUCCEEDED,
        )  # the late "succeeded"

    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert paid_signals == []
    assert send_due_order_paid() == 0  # a refunded order is never due either


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="query plans are checked on PostgreSQL"
)
def test_refund_lookups_use_an_index():
    """charge.refunded is matched by intent id, else by charge id: neither scans the ledger."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # an empty table: ask what could be used
        try:
            by_charge = Payment.objects.filter(stripe_charge_id="ch_x").explain()
            by_intent = Payment.objects.filter(stripe_payment_intent_id="pi_x").explain()
        finally:
            cursor.execute("SET enable_seqscan = on")

    assert "payment_charge_idx" in by_charge
    assert "Index Cond" in by_charge
    assert "payment_unique_intent" in by_intent


def test_zero_decimal_refund_is_exact(stripe_jpy_conference, make_order, localstripe):
    order, intent = paid_stripe_order(stripe_jpy_conference, make_order, localstripe, "5000")

    apply_charge_refund(stripe_jpy_conference, refund(localstripe, intent, amount=1200))

    payment = Payment.objects.get(order=order)
    assert payment.refunded_amount == Decimal("1200")
    assert payment.status == Payment.Status.SUCCEEDED


# --- return page reconciliation and payment links --------------------------------


def test_refresh_from_stripe_records_success_without_a_webhook(
    stripe_conference, make_order, localstripe, paid_signals, on_commit
):
    order = make_order("100.00", conference=stripe_conference)
    localstripe.confirm_payment_intent(intent_id_of(PaymentService.initiate_payment(order)))

    with on_commit(execute=True):
        payment = PaymentService.refresh_from_stripe(order)

    assert payment.status == Payment.Status.SUCCEEDED
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert paid_signals == [order.pk]


def test_refresh_from_stripe_ignores_an_intent_of_another_order(
    stripe_conference, make_order, localstripe
):
    victim = make_order("100.00", conference=stripe_conference)
    other = make_order("100.00", conference=stripe_conference)
    other_intent = intent_id_of(PaymentService.initiate_payment(other))
    localstripe.confirm_payment_intent(other_intent)
    PaymentService.initiate_payment(victim)

    payment = PaymentService.refresh_from_stripe(victim, payment_intent_id=other_intent)

    assert payment.order == victim
    assert payment.status == Payment.Status.PENDING
    other.refresh_from_db()
    assert other.status == Order.Status.PENDING  # not touched through the wrong link


def test_regenerate_payment_link_replaces_the_token(make_order):
    order = make_order("100.00")
    old = order.payment_token

    new = PaymentService.regenerate_payment_link(order)

    order.refresh_from_db()
    assert order.payment_token == new != old
    assert len(new) >= 32  # 192 bits, URL-safe
    assert not Order.objects.filter(payment_token=old).exists()
