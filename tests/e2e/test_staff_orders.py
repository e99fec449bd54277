"""Staff flows in the orders admin, in a real browser."""

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


def test_staff_member_logs_in_to_the_admin(page: Page, staff_user, screenshot) -> None:
    page.goto("/admin/")
    expect(page).to_have_url("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("clerk")
    page.get_by_label("Password").fill("clerk-pass-123")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url("/admin/")
    screenshot(page, "admin-index")
