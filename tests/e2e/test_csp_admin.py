"""The admin's Content Security Policy, measured in Chromium: what unfold needs, and that it works.

The admin policy (backoffice/csp.py admin_policy) adds to the strict site policy
only 'unsafe-eval' for scripts (Alpine.js evaluates unfold's x-data/@click
expressions with `new Function`) and 'unsafe-inline' for styles (style attributes
that unfold, its Alpine components and Django's admin widgets set). These tests
record every CSP violation the browser reports (the `securitypolicyviolation`
event and console messages) while a clerk uses the admin's buttons, filters and
dialogs: with the admin policy there must be none and everything must work; with
the strict site policy the same pages break, which is why the admin has its own.
"""

import re

import pytest
from django.conf import settings
from playwright.sync_api import ConsoleMessage, Frame, Page, expect
from playwright.sync_api import Error as PlaywrightError

from backoffice import csp
from backoffice.models import Order

pytestmark = pytest.mark.e2e

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push({
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    sample: event.sample,
    source: event.sourceFile,
  });
});
"""


class Violations:
    """CSP violations seen by the page: DOM events (per document) and console messages."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        self.events: list[dict] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._on_console)
        page.on(
            "framenavigated", lambda frame: self.collect() if frame == page.main_frame else None
        )

    def _on_navigated(self, frame: Frame) -> None:
        if frame == self.page.main_frame:
            self.collect()

    def _on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.console.append(message.text)

    def collect(self) -> None:
        """Read the current document's recorded events (call before leaving a page)."""
        try:
            self.events.extend(self.page.evaluate("window.__cspViolations || []"))
            self.page.evaluate("window.__cspViolations = []")
        except PlaywrightError:  # the document is already gone
            return

    def all(self) -> list:
        """Every violation seen so far."""
        self.collect()
        return self.events + self.console


@pytest.fixture
def violations(page: Page) -> Violations:
    """Record CSP violations on the page from its first document on."""
    return Violations(page)


def log_in_through_the_form(page: Page) -> None:
    """Log in as the front-desk clerk with the login form (Alpine drives its button)."""
    page.context.clear_cookies()
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password").fill("dana-pass-123")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url("/admin/")


def use_the_admin(page: Page, order: Order, free_order: Order, violations: Violations) -> None:
    """Log in, search the orders list, run a bulk action, record a payment in its dialog."""
    log_in_through_the_form(page)
    violations.collect()

    page.goto("/admin/backoffice/order/")
    page.locator("#searchbar").fill(free_order.reference)
    page.keyboard.press("Enter")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.locator("#result_list tbody tr input.action-select").check()
    page.locator("select[name=action]").select_option(label="Mark comp")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_text(re.compile(r"marked comp", re.I)).first).to_be_visible()
    violations.collect()

    page.goto(f"/admin/backoffice/order/{order.pk}/change/")
    page.get_by_role("link", name="Record manual payment").or_(
        page.get_by_role("button", name="Record manual payment")
    ).first.click()
    amount = page.get_by_label("Amount")
    expect(amount).to_be_visible()
    amount.fill("40.00")
    page.get_by_label("Paid by").select_option(label="Cash")
    page.get_by_label("Reference").fill("CSP-CHECK")
    page.get_by_role("button", name="Record payment").click()
    expect(page.get_by_text("Recorded 40.00 USD")).to_be_visible()


def test_admin_buttons_and_dialogs_work_under_its_policy_without_a_violation(
    page: Page, violations: Violations, front_desk_user, make_order
) -> None:
    order = make_order("100.00")
    free_order = make_order("0.00")
    use_the_admin(page, order, free_order, violations)

    order.refresh_from_db()
    free_order.refresh_from_db()
    assert order.amount_paid == 40
    assert free_order.status == Order.Status.PAID
    assert violations.all() == []


def test_the_strict_site_policy_would_break_the_admin(
    context, live_server, front_desk_user, monkeypatch
) -> None:
    """Why the admin has its own policy: under the site's strict one Alpine cannot run."""
    monkeypatch.setattr(
        csp, "admin_policy", lambda: {k: list(v) for k, v in settings.SECURE_CSP.items()}
    )
    page = context.new_page()
    violations = Violations(page)
    page.context.clear_cookies()
    page.goto("/admin/login/")
    page.wait_for_load_state("networkidle")
    seen = violations.all()
    page.close()

    directives = {v["directive"] for v in seen if isinstance(v, dict)}
    assert "script-src" in directives  # Alpine's eval of unfold's expressions
    assert {"style-src-elem", "style-src-attr"} & directives  # inline styles
    assert any("unsafe-eval" in v for v in seen if isinstance(v, str))


def test_admin_policy_names_no_external_origin(front_desk_user, client) -> None:
    """The policy the browser tests measured is the one the admin sends, all same-origin."""
    client.force_login(front_desk_user)
    header = client.get("/admin/backoffice/order/")["Content-Security-Policy"]
    assert "'unsafe-eval'" in header and "'unsafe-inline'" in header
    assert not re.search(r"https?://|\*", header)
    script_src = next(p for p in header.split(";") if p.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src
