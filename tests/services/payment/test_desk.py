"""Manual payments at the desk: the channel, and the one-time key that records a form once."""

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection

from backoffice.models import Order, OrderHistoryEntry, Payment
from backoffice.services.payment import PaymentService
from backoffice.services.payment.desk import _create_once
from backoffice.signals import order_paid
from tests.races import run_at_once
from tests.worker import run_db_worker

KEY = "k" * 32
THREADS = 8


@pytest.fixture
def order_paid_sent():
    """The pks of the orders ``order_paid`` was sent for, in order (recorded by a receiver)."""
    sent: list[int] = []
    lock = threading.Lock()

    def receiver(sender, order, user, **kwargs) -> None:
        with lock:
            sent.append(order.pk)

    order_paid.connect(receiver)
    yield sent
    order_paid.disconnect(receiver)


@pytest.mark.django_db
def test_record_manual_stores_the_channel(make_order, staff_user):
    order = make_order("100.00")

    payment = PaymentService.record_manual(
        order, amount=Decimal("40.00"), channel=Payment.Channel.BANK_TRANSFER, staff_user=staff_user
    )

    payment.refresh_from_db()
    assert payment.channel == Payment.Channel.BANK_TRANSFER
    assert payment.idempotency_key == ""


@pytest.mark.django_db
def test_record_manual_without_a_channel_records_other(make_order):
    """Callers written before channels existed (commands, the shell) keep working."""
    payment = PaymentService.record_manual(make_order("100.00"), amount=Decimal("10.00"))

    assert Payment.objects.get(pk=payment.pk).channel == Payment.Channel.OTHER


@pytest.mark.django_db
@pytest.mark.parametrize("channel", ["", "paypal", "CASH"])
def test_record_manual_refuses_an_unknown_channel(make_order, channel):
    order = make_order("100.00")

    with pytest.raises(ValidationError, match="Choose how the money was paid") as refused:
        PaymentService.record_manual(order, amount=Decimal("10.00"), channel=channel)

    assert list(refused.value.message_dict) == ["channel"]
    assert not order.payments.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "refusal"),
    [
        (Decimal("100.01"), "The amount 100.01 USD is more than the balance due of 100.00 USD."),
        (Decimal("0"), "The payment amount must be greater than zero."),
        ("ten", "Enter a valid amount, e.g. 50.00."),
    ],
)
def test_record_manual_names_the_amount_in_a_refusal_of_the_amount(make_order, amount, refusal):
    order = make_order("100.00")

    with pytest.raises(ValidationError) as refused:
        PaymentService.record_manual(order, amount=amount, channel=Payment.Channel.CASH)

    assert refused.value.message_dict == {"amount": [refusal]}
    assert not order.payments.exists()


@pytest.mark.django_db
def test_same_key_twice_returns_the_first_payment_with_one_entry_and_one_order_paid(
    make_order, staff_user, run_tasks, order_paid_sent
):
    order = make_order("40.00")
    form = {
        "amount": Decimal("40.00"),
        "channel": Payment.Channel.CASH,
        "reference": "R-1",
        "idempotency_key": KEY,
        "staff_user": staff_user,
    }

    first, first_created = PaymentService.record_manual_once(order, **form)
    run_tasks()
    again, again_created = PaymentService.record_manual_once(order, **form)
    run_tasks()
    third = PaymentService.record_manual(order, **form)
    run_tasks()

    assert (first_created, again_created) == (True, False)
    assert again.pk == first.pk == third.pk
    assert list(order.payments.values_list("pk", flat=True)) == [first.pk]
    assert OrderHistoryEntry.objects.filter(order=order).count() == 1
    assert order_paid_sent == [order.pk]
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


@pytest.mark.django_db
def test_same_key_on_a_part_payment_returns_it_without_touching_the_balance(make_order):
    order = make_order("100.00")

    first = PaymentService.record_manual(order, amount="30.00", idempotency_key=KEY)
    again = PaymentService.record_manual(order, amount=" 30.0 ", idempotency_key=KEY)

    assert again.pk == first.pk
    order.refresh_from_db()
    assert order.balance_due == Decimal("70.00")
    assert order.status == Order.Status.PENDING


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changed",
    [
        {"amount": Decimal("30.00")},
        {"channel": Payment.Channel.CHEQUE},
        {"reference": "R-2"},
    ],
)
def test_same_key_asking_for_another_payment_is_refused(make_order, changed):
    order = make_order("100.00")
    form = {"amount": Decimal("40.00"), "channel": Payment.Channel.CASH, "reference": "R-1"}
    PaymentService.record_manual(order, **form, idempotency_key=KEY)

    with pytest.raises(ValidationError) as refused:
        PaymentService.record_manual(order, **(form | changed), idempotency_key=KEY)

    assert refused.value.messages == [
        f"This form was already used to record 40.00 USD (Cash) on {order.reference}; "
        "open the form again to record another payment."
    ]
    assert order.payments.count() == 1
    assert OrderHistoryEntry.objects.filter(order=order).count() == 1


@pytest.mark.django_db
def test_same_key_on_another_order_is_refused(make_order):
    first, second = make_order("100.00"), make_order("100.00")
    PaymentService.record_manual(first, amount=Decimal("40.00"), idempotency_key=KEY)

    with pytest.raises(ValidationError) as refused:
        PaymentService.record_manual(second, amount=Decimal("40.00"), idempotency_key=KEY)

    assert refused.value.messages == [
        f"This form was already used to record 40.00 USD (Other) on {first.reference}; "
        "open the form again to record another payment."
    ]
    assert not second.payments.exists()
    assert not OrderHistoryEntry.objects.filter(order=second).exists()


@pytest.mark.django_db
def test_without_a_key_the_same_payment_twice_is_two_payments(make_order):
    order = make_order("100.00")

    a = PaymentService.record_manual(order, amount=Decimal("40.00"), reference="R-1")
    b = PaymentService.record_manual(order, amount=Decimal("40.00"), reference="R-1")

    assert a.pk != b.pk
    assert order.payments.count() == 2
    order.refresh_from_db()
    assert order.balance_due == Decimal("20.00")


@pytest.mark.django_db
def test_two_keys_are_two_payments(make_order):
    order = make_order("100.00")

    PaymentService.record_manual(order, amount=Decimal("40.00"), idempotency_key="a" * 32)
    PaymentService.record_manual(order, amount=Decimal("40.00"), idempotency_key="b" * 32)

    assert order.payments.count() == 2


@pytest.mark.django_db
def test_a_key_longer_than_the_ledger_holds_is_refused(make_order):
    order = make_order("100.00")

    with pytest.raises(ValidationError, match="longer than 64 characters"):
        PaymentService.record_manual(order, amount=Decimal("10.00"), idempotency_key="x" * 65)

    assert not order.payments.exists()


@pytest.mark.django_db
def test_the_constraint_backs_the_key_when_the_lookup_is_skipped(make_order):
    """A writer that did not see the first row (no lock): the constraint returns it instead."""
    order = make_order("100.00")
    first = PaymentService.record_manual(order, amount=Decimal("40.00"), idempotency_key=KEY)
    fields = {"method": Payment.Method.MANUAL, "status": Payment.Status.SUCCEEDED}

    payment, created = _create_once(order, idempotency_key=KEY, amount=Decimal("40.00"), **fields)

    assert (payment.pk, created) == (first.pk, False)
    assert order.payments.count() == 1  # and the transaction is still usable (a savepoint)


@pytest.mark.django_db
def test_the_constraint_error_of_another_rule_is_not_hidden(make_order):
    order = make_order("100.00")
    fields = {"method": Payment.Method.MANUAL, "status": Payment.Status.SUCCEEDED}

    with pytest.raises(IntegrityError):
        _create_once(order, idempotency_key=KEY, amount=Decimal("-1.00"), **fields)


def submit_at_once(order: Order, amount: str) -> list[tuple[int, bool] | str]:
    """The same form (one key) submitted by THREADS threads at once: what each call returned."""

    def submit() -> tuple[int, bool]:
        payment, created = PaymentService.record_manual_once(
            Order.objects.get(pk=order.pk),
            amount=Decimal(amount),
            channel=Payment.Channel.CASH,
            idempotency_key=f"same-form-{order.pk:024d}",
        )
        return (payment.pk, created)

    return [
        " ".join(r.messages) if isinstance(r, ValidationError) else r
        for r in run_at_once([submit] * THREADS)
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_key_from_eight_threads_at_once_records_one_payment(make_order, order_paid_sent):
    if connection.vendor != "postgresql":
        pytest.skip("row-lock race test needs PostgreSQL (SQLite serialises all writers)")
    paid_in_full, paid_in_part = make_order("100.00"), make_order("100.00")

    for order, amount in ((paid_in_full, "100.00"), (paid_in_part, "40.00")):
        results = submit_at_once(order, amount)

        [payment] = Payment.objects.filter(order=order)
        assert payment.amount == Decimal(amount)
        assert sorted(results, key=str) == [(payment.pk, False)] * (THREADS - 1) + [
            (payment.pk, True)
        ]
        assert OrderHistoryEntry.objects.filter(order=order).count() == 1
    run_db_worker()
    assert order_paid_sent == [paid_in_full.pk]  # once for the full payment, never for the part
