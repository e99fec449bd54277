"""Health check for load balancers and the container HEALTHCHECK: is the database answering?

It also tells how long the oldest due background task has waited for a worker
(``oldest_queued_task_seconds``, null when none waits): monitoring alerts when it
grows; health itself does not depend on it (web processes serve without workers).
"""

import logging
from collections.abc import Callable

from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from backoffice.services.background import oldest_queued_task_age

logger = logging.getLogger(__name__)

HEALTHZ_PATHS = ("/healthz", "/healthz/")
# The check's own time limit (PostgreSQL): a slow database answers 503 in time.
STATEMENT_TIMEOUT_MS = 1000


def _select_one() -> None:
    """``SELECT 1`` on the default connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _within_time_limit[T](read: Callable[[], T]) -> T:
    """Run a read under the check's own statement timeout on PostgreSQL (lock waits included).

    On SQLite it runs outside a transaction: SQLite's would take the write lock.
    """
    if connection.vendor != "postgresql":
        return read()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        return read()


def database_answers() -> bool:
    """Run ``SELECT 1`` on the default database, within one second on PostgreSQL."""
    try:
        _within_time_limit(_select_one)
    except DatabaseError as exc:
        logger.warning("Health check: database unavailable", extra={"error": type(exc).__name__})
        return False
    return True


@csrf_exempt
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 ``{"status": "ok", …}`` when the database answers, 503 otherwise; no auth, no secrets."""
    if not database_answers():
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "oldest_queued_task_seconds": queue_age()})


def queue_age() -> float | None:
    """The oldest due task's wait in seconds; None when none waits or the queue cannot be read.

    Under the same time limit as the check: a locked task table must not hold it up.
    """
    try:
        return _within_time_limit(oldest_queued_task_age)
    except DatabaseError as exc:
        logger.warning("Health check: task queue unreadable", extra={"error": type(exc).__name__})
        return None


class HealthCheckMiddleware:
    """Answer GET/HEAD /healthz before host validation, the SSL redirect and CSRF.

    Listed first in MIDDLEWARE: the container's HEALTHCHECK and load balancers call
    http://127.0.0.1:8000/healthz with a Host header that is not in ALLOWED_HOSTS and
    without TLS, so CommonMiddleware would answer 400 and SecurityMiddleware 301.
    Nothing here reads the Host header, so the endpoint reveals nothing about it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in HEALTHZ_PATHS and request.method in ("GET", "HEAD"):
            return healthz(request)
        return self.get_response(request)
