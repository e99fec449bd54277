"""Stripe's webhook endpoint: one small view per the house style (verify, store, apply).

What it answers, given that Stripe retries every non-2xx answer with backoff
for up to three days:

- 400: the body is not a signed Stripe event we can store (bad signature, not
  a JSON object, no usable id or type). Nothing is stored.
- 200: stored and applied, a duplicate, or stored but not applied because its
  content cannot be (see ``stripe_webhook``).
- 503 with Retry-After: the database was busy or unreachable (a lock wait or
  statement ran out of time, a serialization failure or deadlock, a refused
  connection); nothing changed, Stripe retries and it applies then.
- 500: a failure of ours (a bug); stored on the event and logged.
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from backoffice.database_outage import unavailable_response
from backoffice.services.webhooks import (
    StripeEventBusy,
    StripeEventFailed,
    StripeEventNotApplied,
    UnknownWebhookConference,
    receive_stripe_webhook,
)
from backoffice.stripe_client import InvalidWebhook

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest, conference_slug: str) -> HttpResponse:
    """Verify a Stripe event with the conference's webhook secret, store it once and apply it.

    Served past the session, authentication, CSRF, CSP, messages and
    login-lockout middleware (``WebhookMiddleware``): it has no cookies and
    returns no HTML.
    """
    try:
        receive_stripe_webhook(
            conference_slug=conference_slug,
            payload=request.body,
            signature=request.headers.get("Stripe-Signature"),
        )
    except UnknownWebhookConference:
        return HttpResponseBadRequest("Unknown conference or no webhook secret.")
    except InvalidWebhook as exc:
        logger.warning(
            "Rejected Stripe webhook", extra={"conference": conference_slug, "error": str(exc)}
        )
        return HttpResponseBadRequest("Invalid Stripe webhook.")
    except ValidationError as exc:
        return HttpResponseBadRequest(" ".join(exc.messages))
    except StripeEventNotApplied as exc:
        # 200, not 4xx or 5xx: Stripe would retry any other answer for three days,
        # and the same bytes fail the same way every time, so retries only add
        # noise. The event is stored with the reason (the Stripe events list,
        # filter "With an error", and the dashboard show it) and staff reprocess
        # it once the cause is fixed.
        return HttpResponse(
            f"Event stored but not applied: {exc.error}"[:500], content_type="text/plain"
        )
    except StripeEventBusy:
        # The database was busy (its order locked, a serialization failure…): nothing
        # changed, Stripe retries later.
        response = HttpResponse("Busy; please retry.", status=503)
        response["Retry-After"] = "30"
        return response
    except StripeEventFailed:
        # Already stored on the event and logged; 500 makes Stripe retry.
        return HttpResponse("Event stored; processing failed.", status=500)
    return HttpResponse("OK")


class WebhookMiddleware:
    """Send Stripe's webhook requests straight to their view, past the middleware after this one.

    Listed after SecurityMiddleware (the HTTPS redirect still applies) and
    before the session, authentication, CSRF, CSP, messages and login-lockout
    middleware: a webhook carries no cookies, returns no HTML and is checked by
    its signature, so their work (a session and user looked up, a CSP nonce,
    axes' checks) would be wasted on every event. The Host header is checked
    as CommonMiddleware would, and a database that is down or busy answers 503
    as ``DatabaseUnavailableMiddleware`` would.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # Per URLconf: the webhook URL without its slug (e.g. "/stripe/webhook/"), or None.
        self.prefixes: dict[str, str | None] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        prefix = self._prefix(str(getattr(request, "urlconf", None) or settings.ROOT_URLCONF))
        if prefix is None or not request.path.startswith(prefix):
            return self.get_response(request)
        request.get_host()  # ALLOWED_HOSTS: DisallowedHost answers 400
        try:
            match = resolve(request.path_info, urlconf=getattr(request, "urlconf", None))
        except Resolver404:
            return self.get_response(request)
        if match.func is not stripe_webhook:
            return self.get_response(request)
        try:
            return stripe_webhook(request, *match.args, **match.kwargs)
        except Exception as exc:
            response = unavailable_response(request, exc)
            if response is None:
                raise
            return response

    def _prefix(self, urlconf: str) -> str | None:
        """The start of every conference's webhook URL in this URLconf; None if it has none."""
        if urlconf not in self.prefixes:
            try:
                path = reverse("backoffice:stripe_webhook", urlconf=urlconf, args=["-"])
            except NoReverseMatch:
                path = None
            self.prefixes[urlconf] = path.removesuffix("-/") if path else None
        return self.prefixes[urlconf]
