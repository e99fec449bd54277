"""The fake Stripe server of local development (localstripe): when it is used, wiring, paying.

``make run`` starts localstripe and calls ``wire_conference`` for the demo
conference; the checkout page then loads the local card form
(``views/local_stripe.py``), which pays through ``pay_with_test_card``.
Nothing here may reach real Stripe: wiring refuses an API base that is not a
local address, and paying runs only while ``stand_in_enabled`` (DEBUG on and a
local ``STRIPE_API_BASE``, read at each call) and only for a conference whose secret key
is a test-mode one. Paying goes through ``stripe_client.py`` like every
Stripe API call; only the webhook registration (``/_config/…``, localstripe's
own API, not Stripe's) is plain HTTP here.
"""

import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse

from backoffice.models import Conference, Payment
from backoffice.stripe_client import CardDeclined, PaymentProviderError, StripeClient, TestCard

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The keys the demo conference gets (localstripe accepts any sk_…; its keys are public).
LOCAL_PUBLISHABLE_KEY = "pk_test_local"
LOCAL_SECRET_KEY = "sk_test_local"  # noqa: S105 (the fake's, published)
LOCAL_WEBHOOK_SECRET = "whsec_local"  # noqa: S105 (the fake's, published)
# The card form pays only with these keys (the fake's is one): never with a live key.
TEST_MODE_KEYS = ("sk_test_", "rk_test_")
TIMEOUT_SECONDS = 10
PAID_STATUSES = frozenset({"succeeded", "processing"})
GENERIC_DECLINE = "Your card was declined."
RETRY_AFTER_DECLINE = (
    "The local fake Stripe cannot retry a declined payment: reload the page to try another card."
)


class LocalStripeError(Exception):
    """The fake Stripe server could not be reached or answered with an error."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        """Keep the HTTP status (0: not reached) and the JSON body."""
        super().__init__(f"localstripe answered {status}: {body}")
        self.http_status = status
        self.body = body


def is_local_address(url: str) -> bool:
    """Whether an http(s) URL points at this machine (127.0.0.1, localhost or ::1)."""
    parts = urllib.parse.urlsplit(url or "")
    return parts.scheme in ("http", "https") and parts.hostname in LOCAL_HOSTS


def stand_in_enabled() -> bool:
    """Whether the local card form replaces Stripe.js: DEBUG on and a local Stripe API base."""
    return bool(settings.DEBUG) and is_local_address(settings.STRIPE_API_BASE)


def has_own_keys(conference: Conference) -> bool:
    """Whether someone gave the conference Stripe keys other than the local fake's."""
    keys = (conference.stripe_publishable_key, conference.stripe_secret_key)
    return any(keys) and keys != (LOCAL_PUBLISHABLE_KEY, LOCAL_SECRET_KEY)


def _post(api_base: str, path: str, data: dict[str, str]) -> dict[str, Any]:
    """POST to localstripe's own API at a local ``api_base``; its JSON body (``{}`` if none)."""
    if not is_local_address(api_base):
        raise ValueError(f"{api_base!r} is not a local address; refusing to call it.")
    body = urllib.parse.urlencode(data).encode()
    url = api_base.rstrip("/") + path  # http(s) only: is_local_address checked the scheme
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        try:
            error_body = json.loads(exc.read().decode() or "{}")
        except ValueError:
            error_body = {}
        raise LocalStripeError(exc.code, error_body) from exc
    except OSError as exc:
        raise LocalStripeError(0, {"error": {"message": str(exc)}}) from exc
    return json.loads(text) if text.strip() else {}


def _register_webhook(api_base: str, name: str, url: str, secret: str, wait_seconds: float) -> None:
    """Make the fake deliver its signed events to ``url``, waiting for it to start listening."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            _post(api_base, f"/_config/webhooks/{name}", {"url": url, "secret": secret})
            return
        except LocalStripeError as exc:
            if exc.http_status != 0 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wire_conference(
    conference: Conference, *, api_base: str, site_url: str, wait_seconds: float = 20
) -> str:
    """Give the conference the fake's keys and register its webhook there; the webhook URL.

    Idempotent: the fake forgets its webhooks when it restarts, so this runs at
    every start. Refuses (``ValidationError``) a non-local ``api_base``, and a
    conference someone gave keys of their own (they would be sent to the fake).
    """
    if not is_local_address(api_base):
        raise ValidationError(f"{api_base} is not a local address: only a local fake is wired.")
    if has_own_keys(conference):
        raise ValidationError(
            f"{conference.name} has Stripe keys of its own; it keeps them "
            "and its card payments go to Stripe."
        )
    keys = {
        "stripe_publishable_key": LOCAL_PUBLISHABLE_KEY,
        "stripe_secret_key": LOCAL_SECRET_KEY,
        "stripe_webhook_secret": LOCAL_WEBHOOK_SECRET,
    }
    changed = [name for name, value in keys.items() if getattr(conference, name) != value]
    for name in changed:
        setattr(conference, name, keys[name])
    if changed:
        conference.save(update_fields=changed)
    webhook_url = site_url.rstrip("/") + reverse(
        "backoffice:stripe_webhook", args=[conference.slug]
    )
    _register_webhook(
        api_base, f"backoffice-{conference.slug}", webhook_url, LOCAL_WEBHOOK_SECRET, wait_seconds
    )
    return webhook_url


def _error(kind: str, code: str, message: str) -> dict[str, Any]:
    """Stripe.js's ``{error}`` answer."""
    return {"error": {"type": kind, "code": code, "message": message}}


UNKNOWN_INTENT = _error("invalid_request_error", "resource_missing", "No such payment_intent.")


def _paying_conference(intent_id: str) -> Conference | None:
    """The conference of one of our card payments, if its secret key is a test-mode one."""
    payment = (
        Payment.objects.select_related("order__conference")
        .filter(method=Payment.Method.STRIPE, stripe_payment_intent_id=intent_id)
        .first()
    )
    if payment is None:
        return None
    conference = payment.order.conference
    return conference if conference.stripe_secret_key.startswith(TEST_MODE_KEYS) else None


def pay_with_test_card(*, intent_id: str, client_secret: str, card: TestCard) -> dict[str, Any]:
    """Confirm a PaymentIntent at the fake with a test card, as Stripe.js does at Stripe.

    Returns Stripe.js's shapes: ``{"paymentIntent": {id, status}}`` or
    ``{"error": {type, code, message}}``. The fake then posts its signed webhook.
    Only with the stand-in on (``ValidationError`` otherwise), only for an intent
    of one of our payments whose conference has a test-mode key (never a live
    one), and only with the intent's client secret.
    """
    if not stand_in_enabled():
        raise ValidationError("The local card form pays only at a local fake Stripe, in DEBUG.")
    conference = _paying_conference(intent_id)
    if conference is None:
        return UNKNOWN_INTENT
    client = StripeClient(conference)
    try:
        intent = client.retrieve_payment_intent(intent_id)
        if not client_secret or not hmac.compare_digest(intent.client_secret, client_secret):
            return UNKNOWN_INTENT
        if intent.failed:
            # Stripe lets the attendee try another card on the same intent; the fake
            # refuses to confirm it again. A reload starts a new attempt.
            return _error("invalid_request_error", "retry_after_reload", RETRY_AFTER_DECLINE)
        intent = client.pay_with_card(intent_id, card)
    except CardDeclined as exc:
        return _error("card_error", exc.code or "card_declined", str(exc))
    except PaymentProviderError as exc:
        return _error("api_error", "", str(exc))
    if intent.status in PAID_STATUSES:
        return {"paymentIntent": {"id": intent.id, "status": intent.status}}
    if intent.status == "requires_action":
        message = "This test card asks for 3-D Secure, which the local card form does not show."
        return _error("card_error", "authentication_required", message)
    return _error("card_error", "card_declined", intent.failure_message or GENERIC_DECLINE)
