"""Stripe ids as links to Stripe's dashboard: one rendering for every admin page that shows one.

Test-mode objects live under ``/test/`` in the dashboard. A stored event says its
own mode (``livemode``); payments, refunds and disputes take it from their
conference's keys (live only when a key is a live one).
"""

from django.utils.html import format_html

from backoffice.models import Conference

DASHBOARD = "https://dashboard.stripe.com/"

# The dashboard's page for each kind of object, by its id's prefix.
DASHBOARD_PAGES = {
    "pi_": "payments",
    "ch_": "payments",
    "py_": "payments",
    "re_": "refunds",
    "pyr_": "refunds",
    "dp_": "disputes",
    "du_": "disputes",
    "evt_": "events",
    "cus_": "customers",
}

LIVE_KEY_PREFIXES = ("pk_live_", "sk_live_", "rk_live_")


def dashboard_url(stripe_id: str, *, livemode: bool) -> str | None:
    """The object's page in Stripe's dashboard, or None for an id it has no page for."""
    for prefix, page in DASHBOARD_PAGES.items():
        if stripe_id.startswith(prefix) and len(stripe_id) > len(prefix):
            mode = "" if livemode else "test/"
            return f"{DASHBOARD}{mode}{page}/{stripe_id}"
    return None


def conference_livemode(conference: Conference | None) -> bool:
    """Whether a conference's Stripe objects are live ones (its keys are live keys)."""
    if conference is None:
        return False
    # The publishable key is stored in clear; the secret key is decrypted only without it.
    key = conference.stripe_publishable_key or conference.stripe_secret_key
    return key.startswith(LIVE_KEY_PREFIXES)


def stripe_link(stripe_id: str, *, livemode: bool) -> str:
    """A Stripe id opening its dashboard page in a new tab, cut short with the whole id as title.

    An empty id is a dash; an id the dashboard has no page for is plain (still cut short).
    """
    if not stripe_id:
        return "—"
    url = dashboard_url(stripe_id, livemode=livemode)
    if url is None:
        return format_html('<span class="stripe-id" title="{}">{}</span>', stripe_id, stripe_id)
    return format_html(
        '<a class="stripe-id text-primary-600" href="{}" title="{}" target="_blank" '
        'rel="noopener noreferrer">{}</a>',
        url,
        stripe_id,
        stripe_id,
    )
