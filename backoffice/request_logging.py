"""Structured logging: a request id per request, JSON lines on stdout, secrets redacted."""

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: ContextVar[str] = ContextVar("request_id", default="-")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")

# Defence in depth: whatever a log line holds, these never leave the process.
_SECRET_PATTERNS = [
    re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9_]+"),  # Stripe secret/restricted keys
    re.compile(r"\bwhsec_[A-Za-z0-9_+/=]+"),  # webhook signing secrets
    re.compile(r"\b(?:pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"),  # client secrets
]
_CARD_NUMBER = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
# A payment link's token is a bearer credential (anyone holding it can pay the
# order and see its details); django.request and access logs print the path.
_PAY_LINK_TOKEN = re.compile(r"(/pay/)[A-Za-z0-9_-]{16,}")
REDACTED = "[REDACTED]"
# In structured data (a stored Stripe event shown in the admin) a key names a secret
# whatever its value looks like: "secret", "client_secret", "webhook_secret"…
_SECRET_KEY = re.compile(r"(?:^|_)secret$", re.IGNORECASE)


def _luhn_valid(digits: str) -> bool:
    """True when the digits pass the Luhn check that card numbers pass."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def redact(text: str) -> str:
    """Replace Stripe secrets, client secrets, payment-link tokens and card numbers in ``text``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _PAY_LINK_TOKEN.sub(rf"\1{REDACTED}", text)

    def card(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        return REDACTED if _luhn_valid(digits) else match.group(0)

    return _CARD_NUMBER.sub(card, text)


def redact_data(value: Any) -> Any:
    """A copy of JSON-like data for display: secret-named keys masked, every string redacted."""
    if isinstance(value, dict):
        return {
            key: REDACTED if item and _SECRET_KEY.search(str(key)) else redact_data(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_data(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    return value


def current_request_id() -> str:
    """The id of the request being handled, or "-" outside a request."""
    return _request_id.get()


class RequestIdMiddleware:
    """Give each request an id (the proxy's X-Request-ID if sane), log with it, echo it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdFilter(logging.Filter):
    """Put the current request id on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return True


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line: time, level, logger, message, request_id and any extras."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("fmt", ["levelname", "name", "message", "request_id"])
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        """Format as JSON, then redact secrets anywhere in the line."""
        return redact(super().format(record))


class TextFormatter(logging.Formatter):
    """Plain lines for local development, secrets redacted too."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as text, then redact secrets anywhere in the line."""
        return redact(super().format(record))
