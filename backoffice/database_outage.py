"""The database refusing connections: every page answers 503 with Retry-After, not a bare 500.

Stripe retries a webhook answered 503 later; a load balancer or a browser sees a
short "try again" page. Only a lost or refused connection counts: any other
database error is a bug and still surfaces as a 500.
"""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30
# PostgreSQL SQLSTATE classes of a lost connection: 08 connection exception,
# 57P operator intervention (shutting down, cannot connect now).
_CONNECTION_SQLSTATES = ("08", "57P")


def database_unreachable(exc: BaseException) -> bool:
    """Whether a database error means the database cannot be reached (not a bad query)."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    cause = exc.__cause__
    if hasattr(cause, "sqlstate"):  # psycopg: client-side errors (no server reply) have None
        return cause.sqlstate is None or cause.sqlstate.startswith(_CONNECTION_SQLSTATES)
    return getattr(cause, "sqlite_errorname", "") == "SQLITE_CANTOPEN"


class DatabaseUnavailableMiddleware:
    """Turn an unreachable database into 503 with Retry-After and a short page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """The 503 page when the view failed because the database is unreachable."""
        if not database_unreachable(exception):
            return None
        logger.warning(
            "Database unreachable; answered 503",
            extra={"path": request.path, "error": type(exception.__cause__).__name__},
        )
        # No request context: the context processors would ask the database again.
        response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
