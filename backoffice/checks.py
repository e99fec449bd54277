"""System checks run at start-up (``manage.py check``, migrate, runserver, the container)."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from backoffice.stripe_client import longest_call_seconds

# Time a checkout request needs besides one Stripe call: its queries, a second
# (fast) Stripe call, rendering the page.
WORKER_TIMEOUT_MARGIN_SECONDS = 10


@register()
def stripe_calls_fit_the_worker_timeout(**kwargs: Any) -> list[CheckMessage]:
    """Fail start-up when a hung Stripe would keep a request past the gunicorn worker timeout.

    An error, not a warning: ``migrate``, ``runserver`` and the container's start
    refuse such settings, since the attendee would get gunicorn's bare error.
    """
    longest = longest_call_seconds(
        settings.STRIPE_TIMEOUT_SECONDS, settings.STRIPE_MAX_NETWORK_RETRIES
    )
    budget = settings.GUNICORN_TIMEOUT - WORKER_TIMEOUT_MARGIN_SECONDS
    if longest <= budget:
        return []
    return [
        Error(
            f"A Stripe call may take up to {longest:g} s (STRIPE_TIMEOUT_SECONDS="
            f"{settings.STRIPE_TIMEOUT_SECONDS:g} × (1 + STRIPE_MAX_NETWORK_RETRIES="
            f"{settings.STRIPE_MAX_NETWORK_RETRIES}) tries, plus backoff), more than "
            f"GUNICORN_TIMEOUT={settings.GUNICORN_TIMEOUT} s minus a "
            f"{WORKER_TIMEOUT_MARGIN_SECONDS} s margin.",
            hint=(
                "If Stripe hangs, gunicorn kills the worker and the attendee gets a bare "
                "error instead of the 'try again' page. Lower STRIPE_TIMEOUT_SECONDS or "
                "STRIPE_MAX_NETWORK_RETRIES, or raise GUNICORN_TIMEOUT."
            ),
            id="backoffice.E001",
        )
    ]


@register()
def site_url_is_set(**kwargs: Any) -> list[CheckMessage]:
    """Warn when e-mails would carry relative pay links: BACKOFFICE_SITE_URL is unset."""
    if settings.BACKOFFICE_SITE_URL:
        return []
    return [
        Warning(
            "BACKOFFICE_SITE_URL is not set: the pay links in e-mails to attendees "
            "would have no host.",
            hint="Set BACKOFFICE_SITE_URL to the site's public address, e.g. "
            "https://registration.example.org.",
            id="backoffice.W002",
        )
    ]
