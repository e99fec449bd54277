"""Stripe ids as links to Stripe's dashboard, test or live."""

import re

import pytest

from backoffice.admin.stripe_links import conference_livemode, dashboard_url, stripe_link
from backoffice.models import Conference


@pytest.mark.parametrize(
    ("stripe_id", "page"),
    [
        ("pi_3Qx", "payments"),
        ("ch_3Qx", "payments"),
        ("re_3Qx", "refunds"),
        ("dp_1Qx", "disputes"),
        ("du_1Qx", "disputes"),
        ("evt_1Qx", "events"),
        ("cus_Qx", "customers"),
    ],
)
def test_each_kind_of_id_has_its_dashboard_page_in_test_and_live_mode(stripe_id, page):
    assert dashboard_url(stripe_id, livemode=False) == (
        f"https://dashboard.stripe.com/test/{page}/{stripe_id}"
    )
    assert dashboard_url(stripe_id, livemode=True) == (
        f"https://dashboard.stripe.com/{page}/{stripe_id}"
    )


@pytest.mark.parametrize("stripe_id", ["seti_1Qx", "pi_", "CASH-7", "txn_1Qx"])
def test_an_id_the_dashboard_has_no_page_for_is_plain_text(stripe_id):
    assert dashboard_url(stripe_id, livemode=False) is None
    html = stripe_link(stripe_id, livemode=False)
    assert "<a " not in html
    assert f'title="{stripe_id}">{stripe_id}</span>' in html


def test_a_link_opens_a_new_tab_without_an_opener_and_carries_the_whole_id():
    html = stripe_link("pi_3QxYzAbCdEfGhIjK", livemode=False)

    [anchor] = re.findall(r"<a [^>]*>", html)
    assert 'href="https://dashboard.stripe.com/test/payments/pi_3QxYzAbCdEfGhIjK"' in anchor
    assert 'target="_blank"' in anchor
    assert 'rel="noopener noreferrer"' in anchor
    assert 'title="pi_3QxYzAbCdEfGhIjK"' in anchor
    assert ">pi_3QxYzAbCdEfGhIjK</a>" in html


def test_no_id_is_a_dash():
    assert stripe_link("", livemode=True) == "—"


@pytest.mark.parametrize(
    ("publishable", "secret", "live"),
    [
        ("pk_live_abc", "", True),
        ("", "sk_live_abc", True),
        ("", "rk_live_abc", True),
        ("pk_test_abc", "sk_test_abc", False),
        ("", "", False),
    ],
)
def test_a_conference_is_live_when_its_keys_are_live_keys(publishable, secret, live):
    conference = Conference(
        name="C", slug="c", stripe_publishable_key=publishable, stripe_secret_key=secret
    )
    assert conference_livemode(conference) is live


def test_no_conference_is_test_mode():
    assert conference_livemode(None) is False
