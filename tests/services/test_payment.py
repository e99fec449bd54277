"""PaymentService: comp and manual payments."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from backoffice.models import Order, Payment
from backoffice.services.payment import PaymentService, parse_amount
from backoffice.signals import order_paid

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid_signals():
    """Collect the orders ``order_paid`` was sent for."""
    received = []

    def receiver(sender, order, user, **kwargs):
        received.append((order.pk, user.pk))

    order_paid.connect(receiver)
    yield received
    order_paid.disconnect(receiver)


# --- record_comp ---------------------------------------------------------------


def test_record_comp_marks_zero_total_order_paid(make_order, staff_user, paid_signals, run_tasks):
    order = make_order("0.00")
    payment = PaymentService.record_comp(order, staff_user=staff_user)
    run_tasks()
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert payment.method == Payment.Method.COMP
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.amount == Decimal("0.00")
    assert payment.created_by == staff_user
    assert paid_signals == [(order.pk, order.user_id)]


def test_record_comp_updates_the_callers_instance(make_order):
    order = make_order("0.00")
    PaymentService.record_comp(order)
    assert order.status == Order.Status.PAID


def test_record_comp_refuses_order_with_a_total(make_order):
    order = make_order("50.00")
    with pytest.raises(ValidationError) as exc:
        PaymentService.record_comp(order)
    assert f"{order.reference} has a total of 50.00 USD" in exc.value.messages[0]
    assert not order.payments.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


@pytest.mark.parametrize(
    "status", [Order.Status.PAID, Order.Status.CANCELLED, Order.Status.REFUNDED]
)
def test_record_comp_refuses_non_pending_order(make_order, status):
    order = make_order("0.00", status=status)
    with pytest.raises(ValidationError, match="only pending orders can be comped"):
        PaymentService.record_comp(order)
    assert not order.payments.exists()


def test_record_comp_rereads_status_instead_of_trusting_a_stale_instance(make_order):
    order = make_order("0.00")
    stale = Order.objects.get(pk=order.pk)
    PaymentService.record_comp(order)
    with pytest.raises(ValidationError):
        PaymentService.record_comp(stale)
    assert order.payments.count() == 1


# --- record_manual ---------------------------------------------------------------


def test_record_manual_partial_then_full_payment(make_order, staff_user, paid_signals, run_tasks):
    order = make_order("100.00")
    first = PaymentService.record_manual(
        order, amount=Decimal("40.00"), reference="CASH-1", note="door", staff_user=staff_user
    )
    assert run_tasks() == 0
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert order.balance_due == Decimal("60.00")
    assert paid_signals == []
    assert (first.reference, first.note, first.created_by) == ("CASH-1", "door", staff_user)

    PaymentService.record_manual(order, amount=Decimal("60.00"), staff_user=staff_user)
    assert run_tasks() == 2  # order_paid, then the receipt it queued
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.amount_paid == Decimal("100.00")
    assert order.balance_due == Decimal("0.00")
    assert paid_signals == [(order.pk, order.user_id)]


def test_record_manual_refuses_amount_above_balance(make_order):
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("30.00"))
    with pytest.raises(ValidationError) as exc:
        PaymentService.record_manual(order, amount=Decimal("70.01"))
    assert "balance due of 70.00 USD" in exc.value.messages[0]
    assert order.payments.count() == 1


@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00"])
def test_record_manual_refuses_zero_and_negative(make_order, amount):
    order = make_order("100.00")
    with pytest.raises(ValidationError, match="greater than zero"):
        PaymentService.record_manual(order, amount=Decimal(amount))
    assert not order.payments.exists()


def test_record_manual_refuses_more_decimals_than_the_currency(make_order):
    order = make_order("100.00")
    with pytest.raises(ValidationError, match="at most 2 decimal places"):
        PaymentService.record_manual(order, amount=Decimal("10.005"))
    assert not order.payments.exists()


def test_record_manual_accepts_trailing_zero_decimals(make_order):
    order = make_order("100.00")
    payment = PaymentService.record_manual(order, amount=Decimal("10.500"))
    assert payment.amount == Decimal("10.50")


def test_record_manual_isk_takes_whole_kronur_only(make_order):
    """Stripe counts ISK in hundredths but charges only whole amounts: the desk does too."""
    from backoffice.models import Conference

    iceland = Conference.objects.create(name="PyCon IS", slug="pycon-is", currency="ISK")
    order = make_order("15000", conference=iceland)
    with pytest.raises(ValidationError, match="ISK amounts have no decimal places"):
        PaymentService.record_manual(order, amount=Decimal("100.50"))
    payment = PaymentService.record_manual(order, amount=Decimal("15000.00"))
    assert payment.amount == Decimal("15000")


def test_record_manual_jpy_has_no_decimal_places(make_order, jpy_conference):
    order = make_order("5000", conference=jpy_conference)
    with pytest.raises(ValidationError, match="JPY amounts have no decimal places"):
        PaymentService.record_manual(order, amount=Decimal("100.50"))
    payment = PaymentService.record_manual(order, amount=Decimal("5000"))
    order.refresh_from_db()
    assert payment.amount == Decimal("5000")
    assert order.status == Order.Status.PAID


@pytest.mark.parametrize("amount", ["abc", "", "NaN", "Infinity", None, 10.5])
def test_record_manual_refuses_non_numbers_with_validation_error(make_order, amount):
    order = make_order("100.00")
    with pytest.raises(ValidationError):
        PaymentService.record_manual(order, amount=amount)
    assert not order.payments.exists()


@pytest.mark.parametrize(
    "amount", ["1e30", "12345678901234567890123456789", "10000000000", Decimal("1E+40")]
)
def test_record_manual_refuses_amounts_beyond_the_ledger_as_validation_error(make_order, amount):
    """Not decimal.InvalidOperation (a 500): the ledger holds amounts below 10,000,000,000."""
    order = make_order("100.00")
    with pytest.raises(ValidationError, match="too large"):
        PaymentService.record_manual(order, amount=amount)
    assert not order.payments.exists()


def test_parse_amount_takes_the_largest_amount_the_ledger_holds():
    assert parse_amount("9999999999.99", "USD") == Decimal("9999999999.99")


def test_record_manual_accepts_decimal_strings(make_order):
    order = make_order("100.00")
    payment = PaymentService.record_manual(order, amount="25.25")
    assert payment.amount == Decimal("25.25")


@pytest.mark.parametrize(
    "status", [Order.Status.PAID, Order.Status.CANCELLED, Order.Status.PARTIALLY_REFUNDED]
)
def test_record_manual_refuses_non_pending_order(make_order, status):
    order = make_order("100.00", status=status)
    with pytest.raises(ValidationError, match="only be recorded for pending orders"):
        PaymentService.record_manual(order, amount=Decimal("10.00"))
    assert not order.payments.exists()


def test_record_manual_refuses_zero_total_order_and_points_to_comp(make_order):
    order = make_order("0.00")
    with pytest.raises(ValidationError, match="Mark comp"):
        PaymentService.record_manual(order, amount=Decimal("1.00"))


def test_record_manual_counts_only_succeeded_payments(make_order):
    order = make_order("100.00")
    Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        status=Payment.Status.FAILED,
        amount=Decimal("100.00"),
        stripe_payment_intent_id="pi_failed",
    )
    payment = PaymentService.record_manual(order, amount=Decimal("100.00"))
    order.refresh_from_db()
    assert payment.amount == Decimal("100.00")
    assert order.status == Order.Status.PAID


def test_order_paid_not_sent_when_transaction_rolls_back(make_order, paid_signals, run_tasks):
    order = make_order("10.00")
    try:
        with transaction.atomic():
            PaymentService.record_manual(order, amount=Decimal("10.00"))
            raise RuntimeError("boom after the payment")
    except RuntimeError:
        pass
    assert run_tasks() == 0
    assert paid_signals == []
    assert not order.payments.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_order_paid_is_sent_by_the_worker_not_by_the_payment(make_order, paid_signals, run_tasks):
    order = make_order("10.00")
    PaymentService.record_manual(order, amount=Decimal("10.00"))
    assert paid_signals == []
    assert run_tasks() == 2  # order_paid, then the receipt it queued
    assert paid_signals == [(order.pk, order.user_id)]


# --- model helpers and constraints -------------------------------------------------


def test_with_amounts_annotation_matches_properties(make_order):
    order = make_order("80.00")
    PaymentService.record_manual(order, amount=Decimal("30.00"))
    annotated = Order.objects.with_amounts().get(pk=order.pk)
    assert annotated.paid_sum == Decimal("30.00")
    assert annotated.balance_sum == Decimal("50.00")
    assert annotated.amount_paid == Decimal("30.00")
    assert annotated.balance_due == Decimal("50.00")


def test_orders_get_unguessable_unique_references(make_order):
    refs = {make_order("1.00").reference for _ in range(20)}
    assert len(refs) == 20
    assert all(r.startswith("ORD-") and len(r) == 12 for r in refs)


def test_database_refuses_negative_total(make_order):
    order = make_order("10.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(total=Decimal("-1.00"))


def test_database_refuses_negative_payment_amount(make_order):
    order = make_order("10.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(
            order=order,
            method=Payment.Method.MANUAL,
            status=Payment.Status.SUCCEEDED,
            amount=Decimal("-1.00"),
        )
