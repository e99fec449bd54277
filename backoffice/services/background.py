"""Background tasks with bounded retries: Django's ``@task`` plus back-off and a visible failure.

Django's task framework runs a task once: an exception marks it failed and
nothing tries again. ``retrying_task`` declares a task that, when it raises,
enqueues itself again with ``run_after`` (waiting ``retry_delay``, doubling
each time) and its attempt number, up to ``BACKOFFICE_TASK_MAX_ATTEMPTS`` tries
in all. The last failure is logged as an error and handed to the task's
``on_give_up`` hook, which shows it where staff look (an order task puts it
on the order's history and flags the order:
``backoffice.services.payment.ledger.record_task_failure``).

Every attempt is its own task result, so each failure's traceback stays in
the admin's task list; arguments must be JSON (pass ids, not objects).
"""

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Case, F, Min, When
from django.tasks import Task, TaskContext, task
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

# A hook receiving the final failure: a callable, or its dotted path (imported when needed).
GiveUpHook = Callable[["TaskFailure"], object] | str

# The keyword argument carrying a retry's attempt number (the first attempt has none).
ATTEMPT_ARGUMENT = "task_attempt"
# However many retries, none waits longer than this.
MAX_RETRY_DELAY = timedelta(hours=1)


@dataclass(frozen=True)
class TaskFailure:
    """A task that failed on its last allowed attempt: what ran, with what, and why."""

    task_name: str
    arguments: dict[str, Any]
    attempts: int
    error: Exception

    @property
    def summary(self) -> str:
        """The error in one line for staff, e.g. ``ConnectionError: refused``."""
        return f"{type(self.error).__name__}: {self.error}"[:500]


def max_attempts() -> int:
    """How many times a failing task is tried in all (at least once)."""
    return max(1, settings.BACKOFFICE_TASK_MAX_ATTEMPTS)


def retry_delay(attempt: int) -> timedelta:
    """How long to wait after failed try number ``attempt`` (1-based): doubling, capped."""
    seconds = settings.BACKOFFICE_TASK_RETRY_DELAY_SECONDS * 2 ** (attempt - 1)
    return min(timedelta(seconds=seconds), MAX_RETRY_DELAY)


def _retry(
    context: TaskContext, args: tuple, kwargs: dict, *, attempt: int, error: Exception
) -> None:
    """Enqueue the running task again after its back-off, as attempt ``attempt + 1``."""
    delay = retry_delay(attempt)
    running = context.task_result.task
    running.using(run_after=timezone.now() + delay).enqueue(
        *args, **kwargs, **{ATTEMPT_ARGUMENT: attempt + 1}
    )
    logger.warning(
        "Background task failed; it will be retried",
        extra={
            "task": running.name,
            "attempt": attempt,
            "max_attempts": max_attempts(),
            "retry_in_seconds": delay.total_seconds(),
            "task_id": context.task_result.id,
            "error": f"{type(error).__name__}: {error}"[:500],
        },
    )


def _give_up(failure: TaskFailure, on_give_up: GiveUpHook | None) -> None:
    """Log the final failure and hand it to the task's hook (a failing hook is logged too)."""
    logger.error(
        "Background task failed for good",
        extra={
            "task": failure.task_name,
            "attempts": failure.attempts,
            "arguments": failure.arguments,
            "error": failure.summary,
        },
    )
    if on_give_up is None:
        return
    try:
        hook = import_string(on_give_up) if isinstance(on_give_up, str) else on_give_up
        hook(failure)
    except Exception:
        logger.exception(
            "Could not record a failed background task", extra={"task": failure.task_name}
        )


def retrying_task(
    *,
    on_give_up: GiveUpHook | None = None,
    **task_options: Any,
) -> Callable[[Callable[..., Any]], Task]:
    """Declare a module-level function as a task retried with back-off, then given up.

    ``task_options`` go to Django's ``@task`` (``priority``, ``queue_name``,
    ``backend``). The function is called with the arguments it was enqueued
    with; ``on_give_up`` (a callable or its dotted path) receives a
    ``TaskFailure`` once the last try failed.
    """

    def decorate(func: Callable[..., Any]) -> Task:
        signature = inspect.signature(func)

        def run(context: TaskContext, *args: Any, **kwargs: Any) -> Any:
            attempt = kwargs.pop(ATTEMPT_ARGUMENT, 1)
            try:
                return func(*args, **kwargs)
            except Exception as error:
                if attempt < max_attempts():
                    try:
                        _retry(context, args, kwargs, attempt=attempt, error=error)
                    except DatabaseError:
                        logger.exception(
                            "Could not enqueue a task's retry", extra={"task": func.__name__}
                        )
                    raise
                arguments = dict(signature.bind(*args, **kwargs).arguments)
                _give_up(
                    TaskFailure(func.__name__, arguments, attempts=attempt, error=error), on_give_up
                )
                raise

        # The task is stored by its import path: the wrapper takes the function's
        # name, and the decorated name in the module becomes the Task.
        run.__module__, run.__name__, run.__qualname__ = (
            func.__module__,
            func.__name__,
            func.__qualname__,
        )
        run.__doc__ = func.__doc__
        return task(takes_context=True, **task_options)(run)

    return decorate


def oldest_queued_task_age() -> float | None:
    """Seconds the longest-waiting due task has waited for a worker; None when none waits.

    A task waits from its enqueueing, or from its ``run_after`` for a deferred
    one (a retry in its back-off is not waiting). Growing ages mean no worker
    is alive or they cannot keep up. Read from django-tasks-db's table (one
    query on its index of ready tasks); None with another backend.
    """
    if not apps.is_installed("django_tasks_db"):
        return None
    from django_tasks_db.models import DBTaskResult, get_date_max

    waiting_since = Case(
        When(run_after=get_date_max(), then=F("enqueued_at")), default=F("run_after")
    )
    oldest = DBTaskResult.objects.ready().aggregate(oldest=Min(waiting_since))["oldest"]
    if oldest is None:
        return None
    return round(max((timezone.now() - oldest).total_seconds(), 0.0), 1)
