"""order_paid: once per order, even when the worker dies between the commit and the signal."""

from decimal import Decimal

import pytest

from backoffice.models import Order
from backoffice.services.order_paid import send_due_order_paid, send_order_paid
from backoffice.services.payment import PaymentService
from backoffice.signals import order_paid

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid_signals():
    """Collect the orders ``order_paid`` was sent for."""
    received = []

    def receiver(sender, order, user, **kwargs):
        received.append(order.pk)

    order_paid.connect(receiver)
    yield received
    order_paid.disconnect(receiver)


def paid_but_never_signalled(make_order, django_capture_on_commit_callbacks) -> Order:
    """A payment committed, then the worker died before its on-commit callbacks ran."""
    order = make_order("10.00")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        PaymentService.record_manual(order, amount=Decimal("10.00"))
    assert len(callbacks) == 1  # the dispatch that never ran
    return order


def test_a_paid_order_whose_worker_died_gets_order_paid_from_the_sweep(
    make_order, paid_signals, django_capture_on_commit_callbacks
):
    order = paid_but_never_signalled(make_order, django_capture_on_commit_callbacks)
    assert paid_signals == []

    assert send_due_order_paid() == 1

    assert paid_signals == [order.pk]
    order.refresh_from_db()
    assert order.paid_notified_at is not None
    assert send_due_order_paid() == 0
    assert paid_signals == [order.pk]


def test_the_commit_callback_and_the_sweep_send_order_paid_once_together(
    make_order, paid_signals, django_capture_on_commit_callbacks
):
    order = make_order("10.00")
    with django_capture_on_commit_callbacks(execute=True):
        PaymentService.record_manual(order, amount=Decimal("10.00"))

    assert send_due_order_paid() == 0
    assert send_order_paid(order.pk) is False
    assert paid_signals == [order.pk]


def test_a_receiver_failing_leaves_order_paid_due(
    make_order, paid_signals, django_capture_on_commit_callbacks
):
    order = paid_but_never_signalled(make_order, django_capture_on_commit_callbacks)

    def broken(sender, order, **kwargs):
        raise RuntimeError("mail server down")

    order_paid.connect(broken)
    try:
        with pytest.raises(RuntimeError):
            send_due_order_paid()
    finally:
        order_paid.disconnect(broken)
    order.refresh_from_db()
    assert order.paid_notified_at is None

    assert send_due_order_paid() == 1
    assert paid_signals == [order.pk, order.pk]  # the first try was rolled back with the stamp
