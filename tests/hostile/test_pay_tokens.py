"""Property-based: any pay-page token in the URL answers 404 (never a 500) and changes nothing.

Tokens are any text a URL path can carry, percent-encoded (NUL, slashes,
unicode, thousands of characters), for ``/pay/<token>/`` and
``/pay/<token>/complete/`` (with any ``payment_intent`` in the query string).
"""

from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from backoffice.models import Order
from tests.hostile.invariants import ledger_rows

pytestmark = pytest.mark.django_db

TOKENS = st.one_of(
    st.text(min_size=1, max_size=40),
    st.text(min_size=1000, max_size=3000),
    st.from_regex(r"[-a-zA-Z0-9_]{1,100}", fullmatch=True),  # what the URL accepts as a slug
    st.sampled_from(["\u0000", "..", "%00", "a/b", "../admin", "١٢", "ＡＢＣ", " ", "-", "_"]),
)


@pytest.fixture
def order(make_order) -> Order:
    """A pending order: its own token is the only one that may be found."""
    return make_order("100.00")


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(token=TOKENS, complete=st.booleans(), intent=st.text(max_size=30))
def test_unknown_token_is_a_404_and_changes_nothing(order, token, complete, intent):
    assume(token != order.payment_token)
    before = ledger_rows()
    path = f"/pay/{quote(token, safe='')}/" + ("complete/" if complete else "")

    response = Client().get(path, {"payment_intent": intent} if complete else {})

    event(f"{'complete' if complete else 'pay'} {response.status_code}")
    assert response.status_code == 404
    assert ledger_rows() == before


def test_the_orders_own_token_is_found(order):
    """The property's baseline: the real token opens the page (no Stripe keys: 'unavailable')."""
    response = Client().get(f"/pay/{order.payment_token}/")

    assert response.status_code == 200
    assert order.reference in response.content.decode()
