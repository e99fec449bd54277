"""order_paid: once per order, from the worker's task or the manual sweep, whichever runs first."""

from decimal import Decimal

import pytest
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

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


def paid_before_the_worker_ran(make_order) -> Order:
    """A payment committed with its order_paid task queued; no worker has run it yet."""
    order = make_order("10.00")
    PaymentService.record_manual(order, amount=Decimal("10.00"))
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).count() == 1
    return order


def test_the_sweep_sends_order_paid_the_worker_has_not_and_the_worker_then_sends_none(
    make_order, paid_signals, run_tasks
):
    order = paid_before_the_worker_ran(make_order)
    assert paid_signals == []

    assert send_due_order_paid() == 1

    assert paid_signals == [order.pk]
    order.refresh_from_db()
    assert order.paid_notified_at is not None
    assert send_due_order_paid() == 0
    assert run_tasks() == 1
    assert paid_signals == [order.pk]
    assert DBTaskResult.objects.get().return_value is False  # the task found it sent


def test_the_worker_and_then_the_sweep_send_order_paid_once_together(
    make_order, paid_signals, run_tasks
):
    order = make_order("10.00")
    PaymentService.record_manual(order, amount=Decimal("10.00"))
    assert paid_signals == []

    assert run_tasks() == 1

    assert paid_signals == [order.pk]
    assert send_due_order_paid() == 0
    assert send_order_paid(order.pk) is False
    assert paid_signals == [order.pk]


def test_a_receiver_failing_leaves_order_paid_due(make_order, paid_signals):
    order = paid_before_the_worker_ran(make_order)

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
