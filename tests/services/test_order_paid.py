"""order_paid: once per order, from the worker's task or the manual sweep, whichever runs first."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from backoffice.models import Order, OrderHistoryEntry
from backoffice.services.order_paid import send_due_order_paid, send_order_paid
from backoffice.services.payment import PaymentService
from backoffice.signals import order_paid
from tests.worker import run_db_worker

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
    assert run_tasks() == 2  # the worker's order_paid, and the receipt the sweep queued
    assert paid_signals == [order.pk]
    sent_by_worker = DBTaskResult.objects.get(task_path__endswith=".send_order_paid_task")
    assert sent_by_worker.return_value is False  # the task found it sent


def test_the_worker_and_then_the_sweep_send_order_paid_once_together(
    make_order, paid_signals, run_tasks
):
    order = make_order("10.00")
    PaymentService.record_manual(order, amount=Decimal("10.00"))
    assert paid_signals == []

    assert run_tasks() == 2  # order_paid, then the receipt it queued

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


# --- With the real worker (``manage.py db_worker``) on committed data ---------------


@pytest.mark.django_db(transaction=True)
def test_a_committed_payment_enqueues_order_paid_and_the_worker_sends_it_once(
    make_order, paid_signals
):
    order = make_order("10.00")
    PaymentService.record_manual(order, amount=Decimal("10.00"))

    [queued] = DBTaskResult.objects.all()
    assert queued.task_path == "backoffice.services.order_paid.send_order_paid_task"
    assert queued.args_kwargs["kwargs"] == {"order_id": order.pk}
    assert paid_signals == []

    run_db_worker()
    run_db_worker()

    assert paid_signals == [order.pk]
    queued.refresh_from_db()
    assert (queued.status, queued.return_value) == (TaskResultStatus.SUCCESSFUL, True)
    order.refresh_from_db()
    assert order.paid_notified_at is not None
    assert send_due_order_paid() == 0


def test_a_backend_running_tasks_at_once_sends_order_paid_for_the_new_status(
    make_order, paid_signals, settings
):
    # DJANGO_TASKS_BACKEND may name Django's ImmediateBackend: the task then runs inside
    # enqueue, so the order's new status must already be written when it is enqueued.
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    order = make_order("10.00")

    PaymentService.record_manual(order, amount=Decimal("10.00"))

    assert paid_signals == [order.pk]
    order.refresh_from_db()
    assert order.paid_notified_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_payment_enqueues_nothing_and_sends_nothing(make_order, paid_signals):
    order = make_order("10.00")
    with pytest.raises(RuntimeError), transaction.atomic():
        PaymentService.record_manual(order, amount=Decimal("10.00"))
        raise RuntimeError("the caller's transaction fails after the payment")

    run_db_worker()

    assert not DBTaskResult.objects.exists()
    assert paid_signals == []
    order.refresh_from_db()
    assert (order.status, order.paid_notified_at) == (Order.Status.PENDING, None)


@pytest.mark.django_db(transaction=True)
def test_order_paid_failing_every_time_is_retried_then_shown_on_the_order(
    make_order, paid_signals, settings
):
    settings.BACKOFFICE_TASK_MAX_ATTEMPTS = 3
    settings.BACKOFFICE_TASK_RETRY_DELAY_SECONDS = 0  # every retry is due at once
    order = make_order("10.00")
    PaymentService.record_manual(order, amount=Decimal("10.00"))

    def broken(sender, order, **kwargs):
        raise RuntimeError("mail server down")

    order_paid.connect(broken)
    try:
        run_db_worker()
    finally:
        order_paid.disconnect(broken)

    assert DBTaskResult.objects.filter(status=TaskResultStatus.FAILED).count() == 3
    assert paid_signals == [order.pk] * 3  # each try rolled back with its stamp
    order.refresh_from_db()
    assert order.paid_notified_at is None
    assert order.needs_attention
    entry = OrderHistoryEntry.objects.filter(order=order).latest("id")
    assert entry.message == (
        "Background task send_order_paid_task failed after 3 attempts: "
        "RuntimeError: mail server down"
    )
    # Once the receiver works again, the manual sweep sends it.
    assert send_due_order_paid() == 1
