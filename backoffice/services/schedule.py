"""Periodic jobs run by the background workers themselves, with no separate cron.

How it ticks: django-tasks-db's ``db_worker`` has no hook for periodic work,
so workers are started with ``manage.py run_worker``: the same worker loop
(it subclasses ``db_worker``) plus a thread that, every
``HEARTBEAT_SECONDS``, writes the worker's heartbeat and calls ``tick``.
``tick`` finds each job in ``JOBS`` that is due (never run, or last run at
least its interval ago: the interval is read from the settings at every tick,
so a changed setting applies at the next restart without touching the
database) and queues ``run_scheduled_job`` for it. The job then runs as an
ordinary task on whichever worker is free, visible in the admin's task list.

Once, with many workers: each job has one ``ScheduledJob`` row (its name is
unique). A worker claims a due job by locking its row
(``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite lets one writer in
at a time with an exclusive transaction), stamps ``last_run_at`` and enqueues
the task in the same transaction. Another worker ticking at the same moment
skips the locked row, or finds it stamped and not due: the job is queued once.

Why not a task that re-enqueues itself? One lost link (a rollback, a prune, a
crash between two steps) would stop the schedule silently; a tick from every
live worker cannot be lost as long as one worker runs.

The jobs: the Stripe re-sync (``manage.py sync_stripe --stale-minutes N``'s
code), putting back tasks whose worker died (worker_liveness.py), and pruning
old finished task rows. Orders whose hold has expired need no job: the
"Needs attention" list derives that reason when it is read (attention.py),
so it is never a day late.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.tasks import task
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction

from backoffice.models import ScheduledJob
from backoffice.services.export_jobs import delete_expired_exports
from backoffice.services.ledger import orders_to_resync
from backoffice.services.payment.resync_batch import resync_orders
from backoffice.services.worker_liveness import forget_silent_workers, recover_stuck_tasks

logger = logging.getLogger(__name__)

# How often a worker looks for stuck tasks (they are only stuck after
# BACKOFFICE_TASK_STUCK_MINUTES, so a few minutes more is no harm).
RECOVERY_INTERVAL = timedelta(minutes=5)
PRUNE_INTERVAL = timedelta(days=1)


@dataclass(frozen=True)
class JobOutcome:
    """What one run of a job did, in a line for staff, and what went wrong (blank if nothing)."""

    result: str
    error: str = ""


@dataclass(frozen=True)
class Job:
    """A periodic job: its name (its schedule row), how often, and what it does."""

    name: str
    description: str
    interval: Callable[[], timedelta]
    run: Callable[[], JobOutcome]


def resync_stale_stripe_payments() -> JobOutcome:
    """Re-sync from Stripe the orders whose card payment is still open after a while."""
    orders = orders_to_resync(stale_minutes=settings.BACKOFFICE_RESYNC_STALE_MINUTES)
    run = resync_orders(orders.iterator())
    for line in run.changes:
        logger.info("Scheduled re-sync changed an order", extra={"change": line})
    error = "\n".join(run.errors)[:2000]
    if error:
        logger.warning(
            "Scheduled re-sync from Stripe had errors",
            extra={"errors": len(run.errors), "first_error": run.errors[0]},
        )
    return JobOutcome(result=run.summary(), error=error)


def put_back_stuck_tasks() -> JobOutcome:
    """Put back in the queue the tasks left running by a worker that died."""
    recovered = recover_stuck_tasks()
    return JobOutcome(result=f"Put back {len(recovered)} stuck task(s).")


def prune_finished_tasks() -> JobOutcome:
    """Delete finished task rows (and silent workers' heartbeats) older than the retention."""
    keep = timedelta(days=settings.BACKOFFICE_TASK_RETENTION_DAYS)
    # The same rows as django-tasks-db's `prune_db_task_results --min-age-days N`.
    with transaction.atomic():
        deleted, _ = (
            DBTaskResult.objects.finished().filter(finished_at__lte=timezone.now() - keep).delete()
        )
    forget_silent_workers(older_than=keep)
    return JobOutcome(result=f"Deleted {deleted} finished task row(s).")


def delete_expired_export_files() -> JobOutcome:
    """Delete background export files (and their rows) past ``BACKOFFICE_EXPORT_RETENTION_DAYS``."""
    deleted = delete_expired_exports()
    return JobOutcome(result=f"Deleted {deleted} expired export file(s).")


JOBS: list[Job] = [
    Job(
        name="stripe_resync",
        description="Re-sync open Stripe payments from Stripe (sync_stripe --stale-minutes).",
        interval=lambda: timedelta(minutes=settings.BACKOFFICE_RESYNC_INTERVAL_MINUTES),
        run=resync_stale_stripe_payments,
    ),
    Job(
        name="recover_stuck_tasks",
        description="Put back tasks left running by a worker that died.",
        interval=lambda: RECOVERY_INTERVAL,
        run=put_back_stuck_tasks,
    ),
    Job(
        name="prune_task_results",
        description="Delete finished background task rows older than the retention.",
        interval=lambda: PRUNE_INTERVAL,
        run=prune_finished_tasks,
    ),
    Job(
        name="delete_expired_exports",
        description="Delete background export files past their retention.",
        interval=lambda: PRUNE_INTERVAL,
        run=delete_expired_export_files,
    ),
]
JOBS_BY_NAME = {job.name: job for job in JOBS}


def _due(job: Job, now: datetime) -> Q:
    """The schedule row is due: never run, or last run at least an interval ago."""
    return Q(last_run_at__isnull=True) | Q(last_run_at__lte=now - job.interval())


def tick(*, now: datetime | None = None) -> list[str]:
    """Queue every due job once, whatever the number of workers ticking; return their names."""
    now = now or timezone.now()
    ScheduledJob.objects.bulk_create(
        [ScheduledJob(name=job.name) for job in JOBS], ignore_conflicts=True
    )
    queued = []
    for job in JOBS:
        with exclusive_transaction(ScheduledJob.objects.db):
            row = (
                ScheduledJob.objects.select_for_update(skip_locked=True)
                .filter(_due(job, now), name=job.name)
                .first()
            )
            if row is None:
                continue
            row.last_run_at = now
            row.save(update_fields=["last_run_at"])
            run_scheduled_job.enqueue(job.name)
        queued.append(job.name)
    return queued


@task()
def run_scheduled_job(name: str) -> str:
    """Run the periodic job ``name`` and record how it ended on its schedule row."""
    job = JOBS_BY_NAME[name]
    try:
        outcome = job.run()
    except Exception as error:
        logger.exception("Scheduled job failed", extra={"job": name})
        _record(name, JobOutcome(result="", error=f"{type(error).__name__}: {error}"[:2000]))
        raise
    _record(name, outcome)
    return outcome.result


def _record(name: str, outcome: JobOutcome) -> None:
    """Write a run's end on the job's schedule row."""
    ScheduledJob.objects.update_or_create(
        name=name,
        defaults={
            "last_finished_at": timezone.now(),
            "last_result": outcome.result,
            "last_error": outcome.error,
        },
    )


@dataclass(frozen=True)
class JobStatus:
    """A job as staff see it: what it does, how often, when it last ran and how."""

    name: str
    description: str
    interval: timedelta
    last_run_at: datetime | None
    last_finished_at: datetime | None
    last_result: str
    last_error: str

    @property
    def next_run_at(self) -> datetime | None:
        """When a worker will next queue it (None: at the next tick)."""
        return self.last_run_at + self.interval if self.last_run_at else None


def job_statuses() -> list[JobStatus]:
    """Every job, in the registry's order, with its schedule row (one query)."""
    rows = {row.name: row for row in ScheduledJob.objects.all()}
    statuses = []
    for job in JOBS:
        row = rows.get(job.name) or ScheduledJob(name=job.name)
        statuses.append(
            JobStatus(
                name=job.name,
                description=job.description,
                interval=job.interval(),
                last_run_at=row.last_run_at,
                last_finished_at=row.last_finished_at,
                last_result=row.last_result,
                last_error=row.last_error,
            )
        )
    return statuses
