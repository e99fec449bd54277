"""retrying_task: a failing task is retried with doubling back-off, then shown on its order.

Every test runs the real worker (``manage.py db_worker --batch``) on committed data.
"""

import logging
from datetime import timedelta

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from backoffice.models import Order, OrderHistoryEntry
from backoffice.services.background import ATTEMPT_ARGUMENT, retry_delay, retrying_task
from tests.worker import run_db_worker

pytestmark = pytest.mark.django_db(transaction=True)

# What the tasks below did, in this process (the worker runs in-process).
calls_made: list[int] = []


@retrying_task(on_give_up="backoffice.services.payment.ledger.record_task_failure")
def always_fails(order_id: int) -> None:
    """An order task whose every attempt fails."""
    calls_made.append(order_id)
    raise ConnectionRefusedError("mail server down")


@retrying_task(on_give_up="backoffice.services.payment.ledger.record_task_failure")
def fails_once(order_id: int) -> str:
    """An order task whose first attempt fails and second succeeds."""
    calls_made.append(order_id)
    if len(calls_made) == 1:
        raise ConnectionRefusedError("mail server down")
    return "sent"


@retrying_task(on_give_up="tests.services.test_background.broken_hook")
def fails_with_a_broken_hook(order_id: int) -> None:
    """A task whose give-up hook itself fails."""
    raise ValueError("bad data")


def broken_hook(failure: object) -> None:
    """A give-up hook that raises."""
    raise RuntimeError("the hook is broken too")


@pytest.fixture(autouse=True)
def fresh_calls(settings):
    """Three attempts, a minute's back-off to start with; no calls recorded yet."""
    settings.BACKOFFICE_TASK_MAX_ATTEMPTS = 3
    settings.BACKOFFICE_TASK_RETRY_DELAY_SECONDS = 60
    calls_made.clear()


def results(status: TaskResultStatus) -> list[DBTaskResult]:
    """The queue's task results with this status, oldest first."""
    return list(DBTaskResult.objects.filter(status=status).order_by("enqueued_at"))


def let_the_back_off_pass() -> DBTaskResult:
    """Make the one waiting retry due now (time passing); return it as it was scheduled."""
    [waiting] = results(TaskResultStatus.READY)
    DBTaskResult.objects.filter(pk=waiting.pk).update(run_after=timezone.now())
    return waiting


def waited(result: DBTaskResult) -> float:
    """Seconds between a retry's enqueueing and the earliest time it may run."""
    return (result.run_after - result.enqueued_at).total_seconds()


def test_a_failing_task_is_retried_with_doubling_back_off_then_shown_on_its_order(
    make_order, caplog
):
    order = make_order("10.00")
    always_fails.enqueue(order_id=order.pk)

    run_db_worker()  # attempt 1 fails; attempt 2 waits a minute, so the batch ends
    assert calls_made == [order.pk]
    second = let_the_back_off_pass()
    assert second.args_kwargs["kwargs"] == {"order_id": order.pk, ATTEMPT_ARGUMENT: 2}
    assert waited(second) == pytest.approx(60, abs=5)

    run_db_worker()
    third = let_the_back_off_pass()
    assert third.args_kwargs["kwargs"][ATTEMPT_ARGUMENT] == 3
    assert waited(third) == pytest.approx(120, abs=5)

    with caplog.at_level(logging.WARNING):
        run_db_worker()

    assert calls_made == [order.pk] * 3
    assert results(TaskResultStatus.READY) == []
    failed = results(TaskResultStatus.FAILED)
    assert len(failed) == 3
    assert all("mail server down" in result.traceback for result in failed)
    order.refresh_from_db()
    assert order.needs_attention
    reason = (
        "Background task always_fails failed after 3 attempts: "
        "ConnectionRefusedError: mail server down"
    )
    assert order.attention_reason == reason
    [entry] = OrderHistoryEntry.objects.filter(order=order)
    assert (entry.action, entry.actor_name, entry.message) == (
        OrderHistoryEntry.Action.OTHER,
        "worker",
        reason,
    )
    assert "Background task failed for good" in caplog.text


def test_a_task_that_succeeds_on_its_retry_leaves_the_order_alone(make_order):
    order = make_order("10.00")
    fails_once.enqueue(order_id=order.pk)

    run_db_worker()
    let_the_back_off_pass()
    run_db_worker()

    assert calls_made == [order.pk, order.pk]
    [succeeded] = results(TaskResultStatus.SUCCESSFUL)
    assert succeeded.return_value == "sent"
    assert len(results(TaskResultStatus.FAILED)) == 1
    order.refresh_from_db()
    assert not order.needs_attention
    assert not OrderHistoryEntry.objects.filter(order=order).exists()


def test_one_allowed_attempt_gives_up_at_once(make_order, settings):
    settings.BACKOFFICE_TASK_MAX_ATTEMPTS = 1
    order = make_order("10.00")
    always_fails.enqueue(order_id=order.pk)

    run_db_worker()

    assert calls_made == [order.pk]
    assert results(TaskResultStatus.READY) == []
    order.refresh_from_db()
    assert order.attention_reason.startswith("Background task always_fails failed after 1 attempt:")


def test_a_broken_give_up_hook_is_logged_and_the_task_still_failed(make_order, settings, caplog):
    settings.BACKOFFICE_TASK_MAX_ATTEMPTS = 1
    fails_with_a_broken_hook.enqueue(order_id=make_order("10.00").pk)

    with caplog.at_level(logging.ERROR):
        run_db_worker()

    [failed] = results(TaskResultStatus.FAILED)
    assert failed.exception_class_path == "builtins.ValueError"
    assert "Could not record a failed background task" in caplog.text


def test_a_rolled_back_enqueue_leaves_no_task(make_order):
    order = make_order("10.00")
    with pytest.raises(RuntimeError), transaction.atomic():
        always_fails.enqueue(order_id=order.pk)
        assert DBTaskResult.objects.count() == 1
        raise RuntimeError("the change fails after enqueueing")

    run_db_worker()

    assert calls_made == []
    assert not DBTaskResult.objects.exists()


@pytest.mark.django_db(transaction=False)
def test_the_back_off_doubles_and_is_capped_at_an_hour(settings):
    settings.BACKOFFICE_TASK_RETRY_DELAY_SECONDS = 30
    assert [retry_delay(n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (30, 60, 120)]
    assert retry_delay(20) == timedelta(hours=1)


def test_the_order_task_of_a_deleted_order_fails_without_a_history(settings, caplog):
    settings.BACKOFFICE_TASK_MAX_ATTEMPTS = 1
    always_fails.enqueue(order_id=987654)

    with caplog.at_level(logging.WARNING):
        run_db_worker()

    assert len(results(TaskResultStatus.FAILED)) == 1
    assert not Order.objects.exists()
    assert "A failed task's order no longer exists" in caplog.text
