"""manage.py run_worker: db_worker's loop plus the heartbeat and the periodic jobs."""

import pytest
from django.core.management import call_command
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from backoffice.models import ScheduledJob, WorkerHeartbeat
from backoffice.services.schedule import JOBS


@pytest.mark.django_db(transaction=True)
def test_a_batch_worker_runs_the_due_jobs_then_forgets_its_heartbeat():
    call_command(
        "run_worker",
        batch=True,
        reload=False,
        startup_delay=False,
        interval=0,
        queue_name="*",
        worker_id="batch-worker",
        verbosity=0,
    )

    rows = {row.name: row for row in ScheduledJob.objects.all()}
    assert set(rows) == {job.name for job in JOBS}
    assert all(row.last_finished_at is not None and not row.last_error for row in rows.values())
    results = DBTaskResult.objects.all()
    assert [r.status for r in results] == [TaskResultStatus.SUCCESSFUL] * len(JOBS)
    assert [r.worker_ids for r in results] == [["batch-worker"]] * len(JOBS)
    assert not WorkerHeartbeat.objects.exists()  # it stopped cleanly

    call_command(
        "run_worker", batch=True, reload=False, startup_delay=False, interval=0, verbosity=0
    )
    assert DBTaskResult.objects.count() == len(JOBS)  # nothing was due the second time
