"""Run a background worker that also runs the periodic jobs: ``db_worker`` plus the schedule.

Takes every option of django-tasks-db's ``db_worker`` (``--queue-name``,
``--interval``, ``--batch``, ``--worker-id``…). Beside the worker loop, a
thread writes the worker's heartbeat and ticks the schedule every
``HEARTBEAT_SECONDS`` (backoffice/services/schedule.py explains why); with
``--batch`` the schedule is ticked once before the queue is emptied.
"""

import contextlib
import logging
import os
import threading
from typing import Any

from django.db import DatabaseError, close_old_connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands.db_worker import Command as DBWorkerCommand

from backoffice.services.schedule import tick
from backoffice.services.worker_liveness import HEARTBEAT_SECONDS, beat, forget_worker

logger = logging.getLogger(__name__)


def beat_and_tick(worker_id: str) -> None:
    """One beat: the heartbeat, then queue the due jobs; a database error is logged, not raised."""
    close_old_connections()
    try:
        beat(worker_id)
        queued = tick()
    except DatabaseError:
        logger.exception("Could not tick the schedule", extra={"worker_id": worker_id})
    else:
        if queued:
            logger.info("Queued scheduled jobs", extra={"jobs": queued, "worker_id": worker_id})
    finally:
        close_old_connections()


def _ticker(worker_id: str, stop: threading.Event) -> None:
    """Beat and tick until ``stop`` is set (the thread's body)."""
    while True:
        beat_and_tick(worker_id)
        if stop.wait(HEARTBEAT_SECONDS):
            return


class Command(DBWorkerCommand):
    """manage.py run_worker [db_worker's options]"""

    help = "Run a database background worker that also runs the periodic jobs."

    def handle(self, *args: Any, **options: Any) -> None:
        """Start the heartbeat and schedule thread, then run db_worker's loop."""
        worker_id = options["worker_id"]
        in_reloader_parent = options["reload"] and not options["batch"]
        in_reloader_parent &= os.environ.get(DJANGO_AUTORELOAD_ENV) != "true"
        stop = threading.Event()
        if options["batch"]:
            beat_and_tick(worker_id)
        elif not in_reloader_parent:
            # A daemon thread: it ends with the worker, whichever way the worker exits.
            threading.Thread(
                target=_ticker, args=(worker_id, stop), name="schedule", daemon=True
            ).start()
        try:
            super().handle(*args, **options)
        finally:
            stop.set()
            if not in_reloader_parent:
                # When the database is gone, the heartbeat just ages.
                with contextlib.suppress(DatabaseError):
                    forget_worker(worker_id)
