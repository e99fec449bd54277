"""Database constraints of the ledger models (issue 10): refunds, channels, idempotency keys.

Rows are inserted directly: the services that write them (PaymentService.refund,
record_manual with an idempotency key) come with branch issue10-core, and these
tests check that the database refuses bad rows whoever writes them.
"""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from backoffice.models import Payment, Refund
from tests.ledger_factories import make_payment, make_refund

pytestmark = pytest.mark.django_db


def test_the_same_idempotency_key_twice_on_one_order_is_refused(make_order):
    order = make_order()
    make_payment(order, idempotency_key="form-123")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_payment(order, idempotency_key="form-123")
    assert order.payments.count() == 1


def test_idempotency_keys_only_bind_within_an_order_and_when_set(make_order):
    first, second = make_order(), make_order()
    make_payment(first, idempotency_key="form-123")
    make_payment(second, idempotency_key="form-123")  # another order: another form
    make_payment(first)
    make_payment(first)  # no key: two deliberate payments of the same amount
    assert Payment.objects.count() == 4


@pytest.mark.parametrize("amount", ["0.00", "-1.00"])
def test_a_refund_amount_must_be_above_zero(make_order, amount):
    payment = make_payment(make_order())
    with pytest.raises(IntegrityError), transaction.atomic():
        Refund.objects.create(payment=payment, amount=Decimal(amount))


def test_a_stripe_refund_id_is_stored_once_but_blank_ids_repeat(make_order):
    payment = make_payment(make_order("100.00"), "100.00", method=Payment.Method.STRIPE)
    make_refund(payment, "1.00", stripe_refund_id="re_1")
    make_refund(payment, "1.00")
    make_refund(payment, "1.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_refund(payment, "1.00", stripe_refund_id="re_1")
    assert payment.refunds.count() == 3


def test_a_refunded_payment_cannot_be_deleted(make_order):
    payment = make_payment(make_order())
    make_refund(payment, "1.00")
    with pytest.raises(ProtectedError):
        payment.delete()
