"""Running queued background tasks in a test, through django-tasks-db's own worker code."""

from django.core.management import call_command
from django.tasks import DEFAULT_TASK_BACKEND_ALIAS
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

WORKER_ID = "tests"


def run_queued_tasks() -> int:
    """Run every ready task as ``db_worker --batch`` does, in this test's transaction; count them.

    The command itself closes the connection between tasks (``close_old_connections``),
    which would end a non-transactional test's transaction: tests marked
    ``django_db(transaction=True)`` run the real command instead
    (``call_command("db_worker", "--batch", ...)``). This claims and runs each
    task with the command's own ``Worker.run_task``: same status, result and
    traceback handling.
    """
    worker = Worker(
        queue_names=["*"],
        interval=0,
        batch=True,
        backend_name=DEFAULT_TASK_BACKEND_ALIAS,
        startup_delay=False,
        max_tasks=None,
        worker_id=WORKER_ID,
        excluded_queue_names=[],
    )
    ran = 0
    while (result := DBTaskResult.objects.ready().get_locked()) is not None:
        result.claim(WORKER_ID)
        worker.run_task(result)
        ran += 1
    return ran


def run_db_worker() -> None:
    """Run ``manage.py db_worker --batch`` in this process until no task is ready.

    Needs committed data: call it from ``django_db(transaction=True)`` tests only.
    """
    call_command(
        "db_worker",
        batch=True,
        reload=False,
        startup_delay=False,
        interval=0,
        queue_name="*",
        verbosity=1,
    )
