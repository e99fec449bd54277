"""Which background workers are alive, and putting back the tasks of those that died.

django-tasks-db has no lease: a worker marks a task RUNNING when it claims it,
and a worker killed mid-task (SIGKILL, out of memory, the machine gone) leaves
it RUNNING for ever. So each worker started with ``manage.py run_worker``
writes a heartbeat (``WorkerHeartbeat``) every few seconds, from a thread of
its own, while it runs tasks too. A task is stuck, and put back to READY with
its arguments unchanged, when both:

- it has been RUNNING for longer than ``BACKOFFICE_TASK_STUCK_MINUTES``, and
- the worker that claimed it (the last of its ``worker_ids``) has not been
  seen for as long (a worker that never wrote a heartbeat, e.g. a bare
  ``db_worker``, counts as gone).

A live worker running a long task keeps beating, so its task is never taken
from it. Running a task again is safe because our tasks are idempotent: each
re-reads its rows and returns early when the work is already done (the
``order_paid`` stamp, a re-sync that finds nothing to change, a prune).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction

from backoffice.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

# A worker writes its heartbeat this often (and ticks the schedule then: schedule.py).
HEARTBEAT_SECONDS = 15
# A worker not seen for this long is not counted as alive on the dashboard.
ALIVE_WITHIN = timedelta(seconds=4 * HEARTBEAT_SECONDS)


def stuck_after() -> timedelta:
    """How long a task may run, and its worker stay silent, before it counts as stuck."""
    return timedelta(minutes=settings.BACKOFFICE_TASK_STUCK_MINUTES)


def beat(worker_id: str, *, now: datetime | None = None) -> None:
    """Record that the worker ``worker_id`` is alive now."""
    now = now or timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        worker_id=worker_id,
        defaults={"last_seen_at": now},
        create_defaults={"started_at": now, "last_seen_at": now},
    )


def forget_worker(worker_id: str) -> None:
    """Remove a worker's heartbeat as it stops cleanly."""
    WorkerHeartbeat.objects.filter(worker_id=worker_id).delete()


def workers_alive(*, now: datetime | None = None) -> int:
    """How many workers wrote a heartbeat lately."""
    now = now or timezone.now()
    return WorkerHeartbeat.objects.filter(last_seen_at__gte=now - ALIVE_WITHIN).count()


def worker_idle(*, now: datetime | None = None) -> bool:
    """Whether a worker is alive and no task is due or running: the queue has drained."""
    busy = DBTaskResult.objects.ready() | DBTaskResult.objects.running()
    return workers_alive(now=now) > 0 and not busy.exists()


def recover_stuck_tasks(*, now: datetime | None = None) -> list[str]:
    """Put back to READY every task whose worker died while running it; return their ids."""
    now = now or timezone.now()
    cutoff = now - stuck_after()
    alive = set(
        WorkerHeartbeat.objects.filter(last_seen_at__gte=cutoff).values_list("worker_id", flat=True)
    )
    recovered = []
    # Row locks on PostgreSQL (skip a row another recovery holds); SQLite's
    # exclusive transaction lets one writer in at a time instead.
    with exclusive_transaction(DBTaskResult.objects.db):
        running = (
            DBTaskResult.objects.running()
            .filter(started_at__lt=cutoff)
            .select_for_update(skip_locked=True)
        )
        for result in running:
            claimed_by = result.worker_ids[-1] if result.worker_ids else None
            if claimed_by in alive:
                continue
            logger.warning(
                "Putting back a task whose worker is gone",
                extra={
                    "task_id": str(result.id),
                    "task": result.task_path,
                    "worker_id": claimed_by,
                    "started_at": result.started_at.isoformat(),
                },
            )
            DBTaskResult.objects.filter(pk=result.pk).update(
                status=TaskResultStatus.READY, started_at=None
            )
            recovered.append(str(result.id))
    return recovered


def forget_silent_workers(*, older_than: timedelta) -> int:
    """Delete the heartbeats of workers not seen for ``older_than``; count them."""
    with transaction.atomic():
        deleted, _ = WorkerHeartbeat.objects.filter(
            last_seen_at__lt=timezone.now() - older_than
        ).delete()
    return deleted
