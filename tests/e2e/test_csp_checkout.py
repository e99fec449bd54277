"""The checkout page under its Content Security Policy: loading, paying, the receipt, no violation.

The policy allows Stripe's documented origins plus STRIPE_JS_URL's origin (here the
live server, where the Stripe.js test double is served); inline scripts stay blocked.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from backoffice.models import Order
from tests.e2e.stripe_double import SUCCEEDING_CARD
from tests.e2e.test_checkout import checkout, pay_url, registration  # noqa: F401 (fixtures)
from tests.e2e.test_csp_admin import Violations

pytestmark = pytest.mark.e2e


def test_checkout_pays_without_a_csp_violation(
    page: Page,
    checkout: list[dict],  # noqa: F811
    registration: Order,  # noqa: F811
) -> None:
    violations = Violations(page)
    response = page.goto(pay_url(registration))
    policy = response.headers["content-security-policy"]
    assert "https://js.stripe.com" in policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy

    page.get_by_label("Card number").fill(SUCCEEDING_CARD)
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(page.locator("#paid-message")).to_have_text(re.compile(r"Paid"))

    assert violations.all() == []
