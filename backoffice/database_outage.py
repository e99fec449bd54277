"""The database refusing connections (or a lock wait running out): 503 with Retry-After.

Stripe retries a webhook answered 503 later; a load balancer or a browser sees a
short "try again" page instead of a bare 500. Only a lost or refused connection
and a lock wait that ran out (the webhook bounds its waits: services/webhooks.py)
count: any other database error is a bug and still surfaces as a 500.
"""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30
# PostgreSQL SQLSTATEs (prefixes) of an unavailable database: 08 connection exception,
# 57P operator intervention (shutting down, cannot connect now), 55P03 lock not available.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "55P03")


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means unreachable or busy, not a bad query (a bug)."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    cause = exc.__cause__
    if hasattr(cause, "sqlstate"):  # psycopg: client-side errors (no server reply) have None
        return cause.sqlstate is None or cause.sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    return getattr(cause, "sqlite_errorname", "") == "SQLITE_CANTOPEN"


class DatabaseUnavailableMiddleware:
    """Turn an unreachable or busy database into 503 with Retry-After and a short page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """The 503 page when the view failed because the database is unreachable or busy."""
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
