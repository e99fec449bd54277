"""The periodic jobs: queued once when due, whatever the number of workers, and what they do."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from backoffice.models import ExportFile, Order, Payment, ScheduledJob
from backoffice.services.schedule import JOBS, job_statuses, run_scheduled_job, tick
from tests.races import run_at_once
from tests.stripe_fixtures import free_port, paid_at_stripe
from tests.worker import run_queued_tasks

JOB_PATH = "backoffice.services.schedule.run_scheduled_job"
ALL_JOBS = [job.name for job in JOBS]


def queued_jobs() -> list[str]:
    """The job names of the scheduled-job tasks in the queue, oldest first."""
    results = DBTaskResult.objects.filter(task_path=JOB_PATH).order_by("enqueued_at")
    return [result.args_kwargs["args"][0] for result in results]


def row(name: str) -> ScheduledJob:
    """A job's schedule row."""
    return ScheduledJob.objects.get(name=name)


@pytest.mark.django_db
def test_a_due_job_is_queued_once_and_its_run_is_recorded_on_its_row():
    assert tick() == ALL_JOBS
    assert queued_jobs() == ALL_JOBS

    assert run_queued_tasks() == len(JOBS)

    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {
        TaskResultStatus.SUCCESSFUL
    }
    resync = row("stripe_resync")
    assert resync.last_finished_at >= resync.last_run_at
    assert resync.last_result == "Checked 0 orders, 0 payments changed, 0 errors."
    assert resync.last_error == ""
    assert row("recover_stuck_tasks").last_result == "Put back 0 stuck task(s)."


@pytest.mark.django_db
def test_a_job_not_due_is_not_queued_again_until_its_interval_has_passed(settings):
    start = timezone.now()
    tick(now=start)

    assert tick(now=start + timedelta(minutes=4)) == []
    assert tick(now=start + timedelta(minutes=5)) == ["recover_stuck_tasks"]
    assert tick(now=start + timedelta(minutes=15)) == ["stripe_resync", "recover_stuck_tasks"]
    settings.BACKOFFICE_RESYNC_INTERVAL_MINUTES = 60
    assert tick(now=start + timedelta(minutes=59)) == ["recover_stuck_tasks"]
    assert tick(now=start + timedelta(days=1)) == ALL_JOBS

    assert queued_jobs().count("stripe_resync") == 3
    assert queued_jobs().count("prune_task_results") == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_ticking_at_the_same_moment_queue_a_due_job_once():
    if connection.vendor != "postgresql":
        pytest.skip("row-lock race test needs PostgreSQL (SQLite serialises all writers)")
    tick()  # the rows exist, each last run now
    due = timezone.now() + timedelta(days=2)

    results = run_at_once([lambda: tick(now=due)] * 6)

    assert sorted(name for names in results for name in names) == sorted(ALL_JOBS)
    assert sorted(queued_jobs()) == sorted(ALL_JOBS * 2)


def age(payment: Payment, minutes: int) -> None:
    """Make an attempt look unchanged for ``minutes`` (tests cannot wait that long)."""
    Payment.objects.filter(pk=payment.pk).update(
        updated_at=timezone.now() - timedelta(minutes=minutes)
    )


@pytest.fixture
def unpaid_at_stripe(stripe_conference, make_order, localstripe) -> Order:
    """An order paid by card at Stripe whose webhook never arrived: pending here."""
    order = make_order("100.00", conference=stripe_conference)
    paid_at_stripe(order, localstripe)
    return order


@pytest.mark.django_db
def test_the_resync_job_pays_an_order_paid_at_stripe_with_no_webhook(settings, unpaid_at_stripe):
    order = unpaid_at_stripe
    payment = Payment.objects.get(order=order)
    age(payment, settings.BACKOFFICE_RESYNC_STALE_MINUTES + 1)

    tick()
    run_queued_tasks()

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert payment.status == Payment.Status.SUCCEEDED
    assert order.amount_paid == Decimal("100.00")
    assert row("stripe_resync").last_result == "Checked 1 order, 1 payment changed, 0 errors."


@pytest.mark.django_db
def test_the_resync_job_leaves_an_attempt_younger_than_the_setting(settings, unpaid_at_stripe):
    age(Payment.objects.get(order=unpaid_at_stripe), settings.BACKOFFICE_RESYNC_STALE_MINUTES - 1)

    tick()
    run_queued_tasks()

    unpaid_at_stripe.refresh_from_db()
    assert unpaid_at_stripe.status == Order.Status.PENDING
    assert row("stripe_resync").last_result.startswith("Checked 0 orders")


@pytest.mark.django_db
def test_stripe_unreachable_is_recorded_on_the_row_and_the_worker_goes_on(
    settings, unpaid_at_stripe
):
    age(Payment.objects.get(order=unpaid_at_stripe), 60)
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"

    tick()
    assert run_queued_tasks() == len(JOBS)

    resync = row("stripe_resync")
    assert resync.last_result == "Checked 1 order, 0 payments changed, 1 error."
    assert resync.last_error.startswith(f"{unpaid_at_stripe.reference}: error: ")
    unpaid_at_stripe.refresh_from_db()
    assert unpaid_at_stripe.status == Order.Status.PENDING
    # The other jobs ran, and the re-sync's task ended normally: its error is on its row.
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {
        TaskResultStatus.SUCCESSFUL
    }


@pytest.mark.django_db
def test_the_prune_job_deletes_finished_tasks_older_than_the_retention(settings):
    settings.BACKOFFICE_TASK_RETENTION_DAYS = 14
    old, recent = (run_scheduled_job.enqueue("recover_stuck_tasks") for _ in range(2))
    run_queued_tasks()
    DBTaskResult.objects.filter(pk=old.id).update(finished_at=timezone.now() - timedelta(days=15))
    DBTaskResult.objects.filter(pk=recent.id).update(
        finished_at=timezone.now() - timedelta(days=13)
    )
    waiting = run_scheduled_job.using(run_after=timezone.now() + timedelta(days=1)).enqueue(
        "recover_stuck_tasks"
    )
    DBTaskResult.objects.filter(pk=waiting.id).update(
        enqueued_at=timezone.now() - timedelta(days=30)
    )

    tick()
    run_queued_tasks()

    remaining = set(DBTaskResult.objects.values_list("id", flat=True))
    assert str(old.id) not in {str(pk) for pk in remaining}
    assert {str(recent.id), str(waiting.id)} <= {str(pk) for pk in remaining}
    assert row("prune_task_results").last_result == "Deleted 1 finished task row(s)."


@pytest.mark.django_db
def test_job_statuses_list_every_job_with_its_last_and_next_run():
    assert [status.last_run_at for status in job_statuses()] == [None] * len(JOBS)

    tick()
    run_queued_tasks()

    resync = job_statuses()[0]
    assert resync.name == "stripe_resync"
    assert resync.interval == timedelta(minutes=15)
    assert resync.next_run_at == resync.last_run_at + timedelta(minutes=15)
    assert resync.last_result.startswith("Checked 0 orders")


@pytest.mark.django_db
def test_the_daily_job_deletes_expired_export_files(django_user_model, media_root):
    user = django_user_model.objects.create_user("finance")
    expired, kept = (
        ExportFile.objects.create(
            requested_by=user,
            list_name="backoffice.payment",
            file_format=ExportFile.Format.CSV,
            status=ExportFile.Status.READY,
            expires_at=timezone.now() + timedelta(days=days),
        )
        for days in (-1, 1)
    )

    tick()
    run_queued_tasks()

    assert list(ExportFile.objects.all()) == [kept]
    assert row("delete_expired_exports").last_result == "Deleted 1 expired export file(s)."
    assert not ExportFile.objects.filter(pk=expired.pk).exists()
