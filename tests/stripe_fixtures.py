"""Stripe test fixtures: a real localstripe server, Stripe-configured conferences, signed events.

Registered from ``tests/conftest.py`` through ``pytest_plugins`` so every test
package (including the browser tests) can use them:

- ``localstripe``: session-scoped running localstripe (``.url``, ``.api(...)``).
- ``stripe_settings``: points ``STRIPE_API_BASE`` at it for one test.
- ``stripe_conference`` / ``stripe_jpy_conference``: conferences with test keys.
- ``localstripe_webhook``: registers a webhook at localstripe that delivers signed
  events to a URL (e.g. the ``live_server``); unregistered after the test.
- ``dispute_object()`` and ``LocalStripe.put_dispute()``: a dispute as Stripe sends
  it, and opening or moving one at localstripe (which has none of its own).
- ``stripe_unreachable``: points the Stripe client at a closed port for one test.
- ``start_localstripe()`` / ``sign_payload()`` / ``build_event()``: helpers;
  ``paid_at_stripe()`` pays an order at localstripe and delivers no webhook.
"""

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from backoffice.models import Conference

TEST_SECRET_KEY = "sk_test_backoffice_localstripe"
TEST_PUBLISHABLE_KEY = "pk_test_backoffice_localstripe"
TEST_WEBHOOK_SECRET = "whsec_backoffice_test_secret"
CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000341"

# localstripe pickles its whole store to /tmp/localstripe.pickle after every
# write; parallel test runs would share (and race on) that one file. Each test
# server keeps its state in memory only, and exits when pytest is gone (even
# if pytest was killed before it could stop the server).
#
# localstripe has no Dispute resource (a real Stripe opens disputes only when a
# card network says so). The launcher adds Stripe's read API for them
# (``GET /v1/disputes?payment_intent=&charge=``, ``GET /v1/disputes/{id}``,
# answered like Stripe: a list object, newest first) served from a dict, and a
# test-only ``POST /_config/disputes`` (a JSON dispute object, merged into the
# one with its id) through which a test opens or moves a dispute.
_LAUNCHER = """
import os, sys, threading, time
from aiohttp import web
from localstripe import resources
resources.Store.dump_to_disk = lambda self: None
parent = os.getppid()
def exit_with_parent():
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)
threading.Thread(target=exit_with_parent, daemon=True).start()
sys.argv = ["localstripe", "--port", sys.argv[1], "--from-scratch"]
from localstripe.server import app, start

disputes = {}

def missing(dispute_id):
    error = {"type": "invalid_request_error", "code": "resource_missing",
             "message": "No such dispute: " + repr(dispute_id), "param": "id"}
    return web.json_response({"error": error}, status=404)

async def list_disputes(request):
    wanted = {key: request.query[key] for key in ("payment_intent", "charge")
              if key in request.query}
    data = [dispute for dispute in disputes.values()
            if all(dispute.get(key) == value for key, value in wanted.items())]
    data.sort(key=lambda dispute: (-dispute["created"], dispute["id"]))
    return web.json_response(
        {"object": "list", "url": "/v1/disputes", "has_more": False, "data": data})

async def retrieve_dispute(request):
    dispute_id = request.match_info["id"]
    if dispute_id not in disputes:
        return missing(dispute_id)
    return web.json_response(disputes[dispute_id])

async def put_dispute(request):
    obj = await request.json()
    dispute = {**disputes.get(obj["id"], {}), **obj}
    disputes[obj["id"]] = dispute
    return web.json_response(dispute)

app.router.add_get("/v1/disputes", list_disputes)
app.router.add_get("/v1/disputes/{id}", retrieve_dispute)
app.router.add_post("/_config/disputes", put_dispute)
start()
"""


def free_port() -> int:
    """Return a TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalStripe:
    """A running localstripe process and a small client for its HTTP API."""

    url: str
    process: subprocess.Popen
    log_path: Path
    secret_key: str = TEST_SECRET_KEY
    session: requests.Session = field(default_factory=requests.Session)

    def api(self, method: str, path: str, **data: Any) -> dict[str, Any]:
        """Call localstripe's Stripe API as the test secret key; return the JSON body."""
        response = self.session.request(
            method,
            f"{self.url}{path}",
            data=data if method != "GET" else None,
            params=data if method == "GET" else None,
            auth=(self.secret_key, ""),
            timeout=10,
        )
        body = response.json()
        if response.status_code >= 400:
            raise LocalStripeError(response.status_code, body)
        return body

    def confirm_payment_intent(self, intent_id: str, card: str = CARD_OK) -> dict[str, Any]:
        """Attach a test card to the intent and confirm it server-side, as Stripe.js would."""
        method = self.api(
            "POST",
            "/v1/payment_methods",
            **{
                "type": "card",
                "card[number]": card,
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
            },
        )
        self.api("POST", f"/v1/payment_intents/{intent_id}", payment_method=method["id"])
        try:
            self.api("POST", f"/v1/payment_intents/{intent_id}/confirm")
        except LocalStripeError as exc:
            if exc.status != 402:  # 402: the card was declined, as in real Stripe
                raise
        return self.api("GET", f"/v1/payment_intents/{intent_id}")

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every object of a list endpoint, following ``has_more`` pages."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.api("GET", path, limit=100, **params)
            items.extend(page["data"])
            if not page["has_more"] or not page["data"]:
                return items
            params["starting_after"] = page["data"][-1]["id"]

    def events(self, event_type: str) -> list[dict[str, Any]]:
        """The events localstripe generated of one type."""
        return self.list_all("/v1/events", type=event_type)

    def register_webhook(self, name: str, url: str, secret: str) -> None:
        """Make localstripe deliver every event, signed with ``secret``, to ``url``."""
        response = self.session.post(
            f"{self.url}/_config/webhooks/{name}", data={"url": url, "secret": secret}, timeout=10
        )
        response.raise_for_status()

    def put_dispute(self, dispute: dict[str, Any]) -> dict[str, Any]:
        """Open a dispute at this server, or change one (merged by id); the dispute as stored.

        Test-only (``/_config/disputes``): localstripe has no disputes of its own.
        Build the object with ``dispute_object``.
        """
        response = self.session.post(f"{self.url}/_config/disputes", json=dispute, timeout=10)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        """Stop the server process."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class LocalStripeError(Exception):
    """localstripe answered with an HTTP error."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"localstripe answered {status}: {body}")
        self.status = status
        self.body = body


@contextmanager
def start_localstripe(tmp_dir: Path) -> Iterator[LocalStripe]:
    """Run localstripe on a free port for the duration of the block."""
    port = free_port()
    log_path = tmp_dir / f"localstripe-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    server = LocalStripe(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"localstripe exited early:\n{log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"localstripe did not start:\n{log_path.read_text()}"
                    ) from None
                time.sleep(0.1)
        yield server
    finally:
        server.stop()
        log.close()


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """A localstripe server shared by the whole test session."""
    with start_localstripe(tmp_path_factory.mktemp("localstripe")) as server:
        yield server


@pytest.fixture
def stripe_settings(settings, localstripe: LocalStripe) -> LocalStripe:
    """Point the Stripe client at localstripe for this test."""
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_TIMEOUT_SECONDS = 10
    return localstripe


@pytest.fixture
def stripe_conference(db, stripe_settings: LocalStripe) -> Conference:
    """A USD conference with Stripe test keys, talking to localstripe."""
    return Conference.objects.create(
        name="StripeCon",
        slug="stripecon",
        currency="USD",
        stripe_publishable_key=TEST_PUBLISHABLE_KEY,
        stripe_secret_key=TEST_SECRET_KEY,
        stripe_webhook_secret=TEST_WEBHOOK_SECRET,
    )


@pytest.fixture
def stripe_jpy_conference(db, stripe_settings: LocalStripe) -> Conference:
    """A JPY (zero-decimal) conference with Stripe test keys, talking to localstripe."""
    return Conference.objects.create(
        name="StripeCon JP",
        slug="stripecon-jp",
        currency="JPY",
        stripe_publishable_key=TEST_PUBLISHABLE_KEY,
        stripe_secret_key=TEST_SECRET_KEY,
        stripe_webhook_secret=TEST_WEBHOOK_SECRET,
    )


@pytest.fixture
def localstripe_webhook(localstripe: LocalStripe) -> Iterator[Callable[[str, str], None]]:
    """Register ``(url, secret)`` as localstripe's webhook target for this test only."""
    name = f"test-{uuid.uuid4().hex[:8]}"

    def register(url: str, secret: str = TEST_WEBHOOK_SECRET) -> None:
        localstripe.register_webhook(name, url, secret)

    yield register
    # localstripe cannot delete a webhook: point it at a closed port instead.
    localstripe.register_webhook(name, f"http://127.0.0.1:{free_port()}/", "whsec_unused")


def sign_payload(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """Return a ``Stripe-Signature`` header value (Stripe's documented v1 scheme)."""
    if isinstance(payload, bytes):
        payload = payload.decode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(
        secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={signature}"


def build_event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> dict:
    """Wrap a Stripe object in an event envelope, as Stripe sends it."""
    return {
        "id": event_id or f"evt_test_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj},
    }


def succeeded_intent(order, intent_id: str, **fields: Any) -> dict[str, Any]:
    """A succeeded PaymentIntent paying a USD order's 100.00 in full, as Stripe sends it."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": "succeeded",
        "currency": "usd",
        "amount": 10000,
        "amount_received": 10000,
        "latest_charge": f"ch_{intent_id.removeprefix('pi_')}",
        "metadata": {"order_id": str(order.pk), "order_reference": order.reference},
    } | fields


def refunded_charge(
    charge_id: str, intent_id: str | None, minor: int, refunded_minor: int
) -> dict[str, Any]:
    """A ``charge.refunded`` object in USD as Stripe sends it."""
    return {
        "id": charge_id,
        "object": "charge",
        "payment_intent": intent_id,
        "currency": "usd",
        "amount": minor,
        "amount_captured": minor,
        "amount_refunded": refunded_minor,
    }


def dispute_object(
    intent_id: str | None,
    charge_id: str,
    minor: int,
    *,
    status: str = "needs_response",
    reason: str = "fraudulent",
    dispute_id: str | None = None,
    currency: str = "usd",
    created: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A Dispute object as Stripe sends it (in ``charge.dispute.*`` events and its API)."""
    return {
        "id": dispute_id or f"dp_test_{uuid.uuid4().hex[:16]}",
        "object": "dispute",
        "amount": minor,
        "currency": currency,
        "charge": charge_id,
        "payment_intent": intent_id,
        "status": status,
        "reason": reason,
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "metadata": {},
        "is_charge_refundable": False,
        "evidence_details": {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False},
    } | fields


def post_event(
    client,
    conference: Conference,
    event: dict[str, Any],
    *,
    secret: str | None = None,
    timestamp: int | None = None,
):
    """POST a signed event to the conference's webhook URL with the Django test client."""
    return post_body(client, conference, json.dumps(event), secret=secret, timestamp=timestamp)


def post_body(
    client,
    conference: Conference,
    body: str,
    *,
    secret: str | None = None,
    timestamp: int | None = None,
):
    """POST any text, correctly signed, to the conference's webhook URL (the test client)."""
    from django.urls import reverse

    return client.post(
        reverse("backoffice:stripe_webhook", args=[conference.slug]),
        data=body,
        content_type="application/json",
        headers={
            "Stripe-Signature": sign_payload(
                body, secret or conference.stripe_webhook_secret, timestamp
            )
        },
    )


def pay_by_card(order, localstripe: LocalStripe):  # noqa: ANN201 (a Payment)
    """Pay an order in full by card at localstripe, applied as the return page does; its payment."""
    from backoffice.models import Payment
    from backoffice.services.payment import PaymentService

    secret = PaymentService.initiate_payment(order)
    localstripe.confirm_payment_intent(secret.split("_secret_")[0])
    PaymentService.refresh_from_stripe(order)
    return Payment.objects.get(order=order, status=Payment.Status.SUCCEEDED)


def paid_at_stripe(order, localstripe: LocalStripe) -> str:
    """Pay an order in full by card at localstripe and deliver nothing (a missed webhook).

    The ledger still has the pending attempt; returns its PaymentIntent id.
    """
    from backoffice.services.payment import PaymentService

    intent_id = PaymentService.initiate_payment(order).split("_secret_")[0]
    assert localstripe.confirm_payment_intent(intent_id)["status"] == "succeeded"
    return intent_id


@pytest.fixture
def stripe_unreachable(settings) -> str:
    """Point the Stripe client at a closed port: every call fails to connect; returns its URL."""
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
    return settings.STRIPE_API_BASE
