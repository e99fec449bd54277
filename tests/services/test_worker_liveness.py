"""Workers' heartbeats, and tasks left running by a worker that died put back in the queue."""

from datetime import timedelta

import pytest
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from backoffice.models import ScheduledJob, WorkerHeartbeat
from backoffice.services.schedule import run_scheduled_job, tick
from backoffice.services.worker_liveness import (
    beat,
    forget_worker,
    recover_stuck_tasks,
    worker_idle,
    workers_alive,
)
from tests.worker import WORKER_ID, run_queued_tasks

pytestmark = pytest.mark.django_db


def claimed(worker_id: str, *, minutes_ago: int) -> DBTaskResult:
    """A real queued task, claimed by ``worker_id`` as db_worker does, ``minutes_ago``."""
    result = DBTaskResult.objects.get(pk=run_scheduled_job.enqueue("prune_task_results").id)
    result.claim(worker_id)
    DBTaskResult.objects.filter(pk=result.pk).update(
        started_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return result


def test_a_task_claimed_by_a_worker_that_died_is_put_back_and_then_completes(settings):
    settings.BACKOFFICE_TASK_STUCK_MINUTES = 15
    beat("dead-worker", now=timezone.now() - timedelta(minutes=20))
    stuck = claimed("dead-worker", minutes_ago=20)
    assert run_queued_tasks() == 0  # RUNNING: no worker would ever pick it up

    assert recover_stuck_tasks() == [str(stuck.id)]

    assert run_queued_tasks() == 1
    stuck.refresh_from_db()
    assert stuck.status == TaskResultStatus.SUCCESSFUL
    assert stuck.worker_ids == ["dead-worker", WORKER_ID]
    assert ScheduledJob.objects.get(name="prune_task_results").last_finished_at is not None


def test_a_worker_that_never_beat_counts_as_gone():
    stuck = claimed("bare-db-worker", minutes_ago=60)

    assert recover_stuck_tasks() == [str(stuck.id)]
    stuck.refresh_from_db()
    assert (stuck.status, stuck.started_at) == (TaskResultStatus.READY, None)


def test_a_long_task_of_a_worker_still_beating_is_left_running():
    beat("busy-worker")
    long_running = claimed("busy-worker", minutes_ago=90)

    assert recover_stuck_tasks() == []
    long_running.refresh_from_db()
    assert long_running.status == TaskResultStatus.RUNNING


def test_a_task_running_for_less_than_the_setting_is_left_running(settings):
    settings.BACKOFFICE_TASK_STUCK_MINUTES = 15
    recent = claimed("dead-worker", minutes_ago=14)

    assert recover_stuck_tasks() == []
    recent.refresh_from_db()
    assert recent.status == TaskResultStatus.RUNNING


def test_the_scheduled_recovery_job_puts_back_stuck_tasks():
    stuck = claimed("dead-worker", minutes_ago=60)

    tick()
    run_queued_tasks()

    stuck.refresh_from_db()
    assert stuck.status == TaskResultStatus.SUCCESSFUL
    row = ScheduledJob.objects.get(name="recover_stuck_tasks")
    assert row.last_result == "Put back 1 stuck task(s)."


def test_workers_alive_counts_recent_heartbeats_only():
    beat("a")
    beat("b")
    beat("gone", now=timezone.now() - timedelta(minutes=10))
    assert workers_alive() == 2

    beat("a")  # a second beat updates the worker's row
    forget_worker("b")
    assert workers_alive() == 1
    assert WorkerHeartbeat.objects.count() == 2


def test_worker_idle_once_a_live_worker_has_run_everything_due():
    assert worker_idle() is False  # no worker
    beat("busy-worker")
    queued = run_scheduled_job.enqueue("prune_task_results")
    assert worker_idle() is False  # a task waits

    DBTaskResult.objects.get(pk=queued.id).claim("busy-worker")
    assert worker_idle() is False  # a task runs

    DBTaskResult.objects.filter(pk=queued.id).update(status=TaskResultStatus.SUCCESSFUL)
    run_scheduled_job.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(
        "prune_task_results"
    )
    assert worker_idle() is True  # done, and a deferred task is not due yet


def test_worker_idle_needs_a_worker_seen_lately():
    beat("gone-worker", now=timezone.now() - timedelta(minutes=5))

    assert worker_idle() is False
