"""The database refusing connections, or too busy to answer in time: 503 with Retry-After.

Stripe retries a webhook answered 503 later; a load balancer or a browser sees a
short "try again" page instead of a bare 500. What counts: a lost or refused
connection, a lock wait or statement that ran out of time (the webhook bounds
both: services/webhooks.py), a serialization failure or deadlock (the database
rolled the transaction back; the same request again succeeds), and SQLite's
"database is locked". Any other database error is a bug and still surfaces as a 500.
"""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30
# PostgreSQL SQLSTATEs (prefixes) of an unavailable or busy database: 08 connection
# exception, 57P operator intervention (shutting down, cannot connect now), 55P03 lock
# not available (lock_timeout), 57014 query canceled (statement_timeout), 40001
# serialization failure, 40P01 deadlock detected.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "55P03", "57014", "40001", "40P01")
# SQLite: the file cannot be opened, or another connection held its lock past the timeout.
_UNAVAILABLE_SQLITE_ERRORS = ("SQLITE_CANTOPEN", "SQLITE_BUSY", "SQLITE_LOCKED")


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means unreachable or busy, not a bad query (a bug)."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    cause = exc.__cause__
    if hasattr(cause, "sqlstate"):  # psycopg: client-side errors (no server reply) have None
        return cause.sqlstate is None or cause.sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    return getattr(cause, "sqlite_errorname", "") in _UNAVAILABLE_SQLITE_ERRORS


class DatabaseUnavailableMiddleware:
    """Turn an unreachable or busy database into 503 with Retry-After and a short page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """The 503 page when the view failed because the database is unreachable or busy."""
        return unavailable_response(request, exception)


def unavailable_response(request: HttpRequest, exception: Exception) -> HttpResponse | None:
    """503 with Retry-After and a short page if the database is unreachable or busy, else None."""
    if not database_unavailable(exception):
        return None
    logger.warning(
        "Database unavailable; answered 503",
        extra={"path": request.path, "error": type(exception.__cause__).__name__},
    )
    # No request context: the context processors would ask the database again.
    response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
