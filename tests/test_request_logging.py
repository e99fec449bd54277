"""Structured logs: one JSON object per line with the request id; secrets never written."""

import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from backoffice.models import Conference
from backoffice.request_logging import (
    REDACTED,
    JsonFormatter,
    RequestIdFilter,
    current_request_id,
    redact,
    redact_data,
)
from backoffice.services.payment import PaymentService

SECRETS = [
    "sk_test_51LogSecretKeyValue9999",
    "whsec_LogWebhookSecret8888",
    "pi_3LogIntent_secret_LogClientSecret7777",
    "4242424242424242",
]


class LogCapture:
    """What a JSON handler on the root logger wrote."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def raw(self) -> str:
        """The text written so far."""
        return self.stream.getvalue()

    def entries(self) -> list[dict]:
        """The lines written so far, parsed (each must be one JSON object)."""
        return [json.loads(line) for line in self.raw().splitlines() if line]


@pytest.fixture
def log_lines() -> Iterator[LogCapture]:
    """Every record from every logger at DEBUG, formatted as settings.LOGGING does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield LogCapture(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def test_redact_removes_stripe_secrets_client_secrets_and_card_numbers() -> None:
    text = "keys " + " ".join(SECRETS) + " order ORD-ABCD2345 amount 4242.00 id 1234567890123"
    cleaned = redact(text)
    for secret in SECRETS:
        assert secret not in cleaned
    assert cleaned.count(REDACTED) == 4
    # Not card numbers: order references, amounts, a 13-digit id that fails the Luhn check.
    assert "ORD-ABCD2345" in cleaned and "4242.00" in cleaned and "1234567890123" in cleaned


def test_redact_data_masks_secret_keys_and_secret_values_at_any_depth() -> None:
    data = {
        "client_secret": "anything-at-all",
        "Webhook_Secret": 12345,
        "secret_count": 3,  # a key that only starts with "secret" is not a secret
        "cancellation_reason": None,
        "empty_secret": "",
        "items": [{"note": f"key {SECRETS[0]} here", "amount": 4200}, SECRETS[2]],
        "nested": {"secret": {"deeper": "x"}},
    }

    shown = redact_data(data)

    assert shown == {
        "client_secret": REDACTED,
        "Webhook_Secret": REDACTED,
        "secret_count": 3,
        "cancellation_reason": None,
        "empty_secret": "",
        "items": [{"note": f"key {REDACTED} here", "amount": 4200}, REDACTED],
        "nested": {"secret": REDACTED},
    }
    assert data["client_secret"] == "anything-at-all"  # the input is left as it was
    assert data["items"][0]["note"] == f"key {SECRETS[0]} here"


def test_json_formatter_writes_one_object_per_line_with_extras() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "Paid %s", ("ORD-1",), None)
    record.order = "ORD-1"
    record.amount = "12.50"
    RequestIdFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "Paid ORD-1"
    assert data["level"] == "INFO" and data["logger"] == "x"
    assert data["order"] == "ORD-1" and data["amount"] == "12.50"
    assert data["request_id"] == "-" and data["time"]


def test_json_formatter_redacts_secrets_in_messages_extras_and_tracebacks() -> None:
    try:
        raise ValueError(f"bad key {SECRETS[0]}")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "with %s", (SECRETS[1],), sys.exc_info()
        )
    record.client_secret = SECRETS[2]
    line = JsonFormatter().format(record)
    for secret in SECRETS[:3]:
        assert secret not in line
    assert json.loads(line)["exc_info"]


@pytest.mark.django_db
def test_requests_get_an_id_that_is_echoed_and_logged(client: Client, log_lines) -> None:
    response = client.post(
        "/admin/login/",
        {"username": "nobody", "password": "x"},
        HTTP_X_REQUEST_ID="abc-123-request",
    )
    assert response["X-Request-ID"] == "abc-123-request"
    generated = client.get("/admin/login/", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert len(generated["X-Request-ID"]) == 32  # replaced by a fresh uuid4 hex
    assert current_request_id() == "-"  # reset after the request
    logged = {x["request_id"] for x in log_lines.entries()}
    assert "abc-123-request" in logged  # the failed login's log lines carry its id


@pytest.mark.django_db
def test_payment_service_logs_who_which_order_and_amount(make_order, staff_user, log_lines) -> None:
    order = make_order("80.00")
    PaymentService.record_manual(order, amount=Decimal("30.00"), staff_user=staff_user)
    zero = make_order("0.00")
    PaymentService.record_comp(zero, staff_user=staff_user)
    entries = [
        x for x in log_lines.entries() if x["logger"].startswith("backoffice.services.payment")
    ]
    manual = next(x for x in entries if x["message"] == "Recorded manual payment")
    assert manual["order"] == order.reference
    assert manual["amount"] == "30.00"
    assert manual["staff_user"] == staff_user.pk
    comp = next(x for x in entries if x["message"] == "Recorded comp payment")
    assert comp["order"] == zero.reference and comp["staff_user"] == staff_user.pk
    assert comp["amount"] == "0.00"


@pytest.mark.django_db
def test_secrets_never_reach_the_logs(make_order, staff_user, log_lines) -> None:
    """Admin edits of the keys, loading them, paying: nothing secret in any log line."""
    conference = Conference.objects.create(
        name="Secret Conf",
        slug="secret-conf",
        stripe_publishable_key="pk_test_public",
        stripe_secret_key=SECRETS[0],
        stripe_webhook_secret=SECRETS[1],
    )
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-1234567")
    client = Client()
    client.force_login(root)
    url = f"/admin/backoffice/conference/{conference.pk}/change/"
    client.get(url)
    client.post(
        url,
        {
            "name": "Secret Conf",
            "slug": "secret-conf",
            "currency": "USD",
            "stripe_publishable_key": "pk_test_public",
            "stripe_secret_key": "sk_test_51RotatedViaAdmin5555",
            "stripe_webhook_secret": "",
        },
    )
    client.post("/admin/login/", {"username": "root", "password": SECRETS[0]})
    order = make_order("10.00", conference=conference)
    PaymentService.record_manual(order, amount=Decimal("10.00"), staff_user=staff_user)
    logging.getLogger("backoffice.test").info("loaded %s", conference.stripe_secret_key)

    raw = log_lines.raw()
    assert "Recorded manual payment" in raw and "AXES" in raw  # the paths did log
    assert "[REDACTED]" in raw  # the deliberate leak above was caught
    for secret in [*SECRETS[:2], "sk_test_51RotatedViaAdmin5555"]:
        assert secret not in raw


def test_redact_masks_payment_link_tokens_in_paths() -> None:
    token = "Xy3_-abcDEFghiJKLmnoPQRstuVWXyz12"
    text = f"Service Unavailable: /pay/{token}/ and /pay/{token}/complete/?payment_intent=pi_1"
    cleaned = redact(text)
    assert token not in cleaned
    assert cleaned == (
        f"Service Unavailable: /pay/{REDACTED}/ and /pay/{REDACTED}/complete/?payment_intent=pi_1"
    )
    assert redact("GET /payments/ and /pay/") == "GET /payments/ and /pay/"


@pytest.mark.django_db
def test_payment_link_token_never_reaches_the_logs_on_a_stripe_outage(
    stripe_conference, make_order, monkeypatch, log_lines
) -> None:
    """The pay page answers 503 when Stripe is down; django.request logs the path."""
    from backoffice.services.payment import PaymentProviderError

    order = make_order("100.00", conference=stripe_conference)

    def stripe_down(order_):
        raise PaymentProviderError("Could not reach Stripe to start the payment.")

    monkeypatch.setattr(PaymentService, "initiate_payment", staticmethod(stripe_down))

    response = Client().get(f"/pay/{order.payment_token}/")

    assert response.status_code == 503
    request_lines = [x for x in log_lines.entries() if x["logger"] == "django.request"]
    assert request_lines, "django.request logs the 503 with its path"
    assert f"/pay/{REDACTED}/" in request_lines[0]["message"]
    assert order.payment_token not in log_lines.raw()


def test_text_formatter_for_development_redacts_too() -> None:
    from backoffice.request_logging import TextFormatter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", (SECRETS[0],), None)
    RequestIdFilter().filter(record)
    line = TextFormatter("%(levelname)s [%(request_id)s] %(message)s").format(record)
    assert line == f"INFO [-] key {REDACTED}"
