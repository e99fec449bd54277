"""No secret reaches the logs through a full pay + webhook run (real HTTP, localstripe).

Two captures of every logger: the production level (INFO) through a plain formatter,
which proves the code itself never logs a secret, and DEBUG (the stripe library and
urllib3 included) through the JSON formatter the site uses, which proves that what
leaves the process is clean even when libraries print request and response bodies.
"""

import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from django.urls import reverse

from backoffice.models import Order, StripeEvent
from backoffice.request_logging import JsonFormatter, RequestIdFilter
from tests.stripe_fixtures import (
    CARD_DECLINED,
    CARD_OK,
    TEST_SECRET_KEY,
    TEST_WEBHOOK_SECRET,
    LocalStripe,
    sign_payload,
    start_localstripe,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """A localstripe of this module's own, so no other test's webhooks arrive here."""
    with start_localstripe(tmp_path_factory.mktemp("localstripe-logs")) as server:
        yield server


class PlainWithExtras(logging.Formatter):
    """Message, extras and traceback as the code produced them: nothing redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{super().format(record)} {record.__dict__!r}"


@pytest.fixture
def captured_logs() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """(INFO through a plain formatter, DEBUG through the site's JSON formatter)."""
    plain, json_lines = io.StringIO(), io.StringIO()
    info = logging.StreamHandler(plain)
    info.setLevel(logging.INFO)
    info.setFormatter(PlainWithExtras("%(levelname)s %(name)s %(message)s"))
    debug = logging.StreamHandler(json_lines)
    debug.setLevel(logging.DEBUG)
    debug.setFormatter(JsonFormatter())
    debug.addFilter(RequestIdFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(info)
    root.addHandler(debug)
    root.setLevel(logging.DEBUG)
    try:
        yield plain, json_lines
    finally:
        root.removeHandler(info)
        root.removeHandler(debug)
        root.setLevel(previous)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll until the condition holds (localstripe sends webhooks about a second later)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the webhook")
        time.sleep(0.1)


def processed(event_type: str, intent_id: str) -> bool:
    """Whether the site stored and applied this webhook event."""
    return StripeEvent.objects.filter(
        type=event_type, payload__data__object__id=intent_id, processed_at__isnull=False
    ).exists()


def client_secret_of(live_server, order: Order) -> str:
    """Load the pay page over HTTP and read its client secret."""
    response = requests.get(
        live_server.url + reverse("backoffice:pay", args=[order.payment_token]), timeout=30
    )
    assert response.status_code == 200
    return re.search(r'data-client-secret="([^"]+)"', response.text).group(1)


def test_pay_and_webhook_run_logs_no_secret(
    live_server,
    stripe_conference,
    make_order,
    localstripe: LocalStripe,
    localstripe_webhook,
    captured_logs,
) -> None:
    webhook_url = live_server.url + reverse(
        "backoffice:stripe_webhook", args=[stripe_conference.slug]
    )
    localstripe_webhook(webhook_url, TEST_WEBHOOK_SECRET)

    paid = make_order("100.00", conference=stripe_conference)
    paid_secret = client_secret_of(live_server, paid)
    paid_intent = paid_secret.split("_secret_")[0]
    localstripe.confirm_payment_intent(paid_intent, card=CARD_OK)
    wait_for(lambda: processed("payment_intent.succeeded", paid_intent))
    completed = requests.get(
        live_server.url + reverse("backoffice:pay_complete", args=[paid.payment_token]),
        params={"payment_intent": paid_intent, "payment_intent_client_secret": paid_secret},
        timeout=30,
    )
    assert completed.status_code in (200, 302)

    declined = make_order("40.00", conference=stripe_conference)
    declined_secret = client_secret_of(live_server, declined)
    declined_intent = declined_secret.split("_secret_")[0]
    localstripe.confirm_payment_intent(declined_intent, card=CARD_DECLINED)
    wait_for(lambda: processed("payment_intent.payment_failed", declined_intent))

    forged = b'{"id": "evt_forged", "type": "payment_intent.succeeded"}'
    rejected = requests.post(
        webhook_url,
        data=forged,
        headers={"Stripe-Signature": sign_payload(forged, "whsec_wrong_secret")},
        timeout=30,
    )
    assert rejected.status_code == 400

    paid.refresh_from_db()
    assert paid.status == Order.Status.PAID
    plain, json_lines = (stream.getvalue() for stream in captured_logs)
    assert "Stripe event processed" in plain and "Started Stripe payment" in plain
    secrets = [
        TEST_SECRET_KEY,
        TEST_WEBHOOK_SECRET,
        paid_secret,
        declined_secret,
        CARD_OK,
        CARD_DECLINED,
    ]
    for secret in secrets:
        assert secret not in plain, f"the code logged a secret: {secret[:8]}…"
        assert secret not in json_lines, f"a secret left the process: {secret[:8]}…"
    # Structured lines for the payment and the webhook: who, which order, how much.
    entries = [json.loads(line) for line in json_lines.splitlines() if line]
    started = next(
        x
        for x in entries
        if x["message"] == "Started Stripe payment" and x["order"] == paid.reference
    )
    assert started["amount"] == "100.00" and started["attendee"] == paid.user_id
    succeeded = next(x for x in entries if x["message"] == "Stripe payment succeeded")
    assert succeeded["order"] == paid.reference and succeeded["amount"] == "100.00"
    event_types = {x.get("type") for x in entries if x["message"] == "Stripe event processed"}
    assert {"payment_intent.succeeded", "payment_intent.payment_failed"} <= event_types
    # The webhook's log lines carry a request id like every request's.
    processed_lines = [
        line for line in json_lines.splitlines() if '"Stripe event processed"' in line
    ]
    assert processed_lines and all('"request_id": "-"' not in x for x in processed_lines)
