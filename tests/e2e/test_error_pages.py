"""The error pages in a real browser: the admin's in its frame, the pay links' in the checkout's."""

import re

import pytest
from playwright.sync_api import Page, expect

from backoffice.services.payment import PaymentService
from tests.e2e.conftest import describe_violations, serious_axe_violations

pytestmark = pytest.mark.e2e

# unfold folds its sidebar away at 1280 px and below; staff desktops are wider.
DESKTOP = {"width": 1440, "height": 900}
# The checkout header's colour (checkout.css --ink): the page wears the checkout's look.
CHECKOUT_INK = "rgb(26, 31, 54)"


def expect_no_serious_axe_violations(page: Page) -> None:
    """axe-core finds nothing serious or critical on the page."""
    violations = serious_axe_violations(page)
    assert not violations, describe_violations(violations)


def test_desk_user_on_a_finance_page_sees_403_with_the_admin_navigation(
    page: Page, login, front_desk_user, screenshot
) -> None:
    login(front_desk_user)
    page.set_viewport_size(DESKTOP)

    response = page.goto("/admin/backoffice/payment/")

    assert response is not None and response.status == 403
    expect(page.get_by_text("You do not have access to this page")).to_be_visible()
    sidebar = page.locator("#nav-sidebar")
    expect(sidebar.get_by_role("link", name=re.compile(r"\bOrders$"))).to_be_visible()
    expect(sidebar.get_by_role("link", name=re.compile(r"\bPayments$"))).to_have_count(0)
    expect_no_serious_axe_violations(page)
    screenshot(page, "error-admin-403")

    page.get_by_role("link", name="Back to the admin home").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))


def test_missing_order_in_the_admin_is_a_404_with_a_way_back_to_the_list(
    page: Page, login, front_desk_user, screenshot
) -> None:
    login(front_desk_user)
    page.set_viewport_size(DESKTOP)

    response = page.goto("/admin/backoffice/order/999999/record_manual/")

    assert response is not None and response.status == 404
    expect(page.get_by_text("Page not found").first).to_be_visible()
    sidebar = page.locator("#nav-sidebar")
    expect(sidebar.get_by_role("link", name=re.compile(r"\bOrders$"))).to_be_visible()
    expect(page.get_by_role("link", name="Back to the admin home")).to_be_visible()
    expect_no_serious_axe_violations(page)
    screenshot(page, "error-admin-404")

    page.get_by_role("link", name="Back to orders").click()
    expect(page).to_have_url(re.compile(r"/admin/backoffice/order/$"))


def test_regenerated_pay_link_shows_the_checkout_look_and_whom_to_contact(
    page: Page, make_order, screenshot
) -> None:
    order = make_order("120.00")
    order.conference.contact_email = "help@pycon.example"
    order.conference.save()
    old_token = order.payment_token
    PaymentService.regenerate_payment_link(order)

    response = page.goto(f"/pay/{old_token}/")

    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "This payment link is no longer valid"
    )
    header = page.locator(".site-header")
    expect(header).to_have_text("PyCon Test")
    expect(header).to_have_css("background-color", CHECKOUT_INK)
    expect(page.get_by_role("link", name="help@pycon.example")).to_have_attribute(
        "href", "mailto:help@pycon.example"
    )
    expect(page.get_by_text(order.reference)).to_have_count(0)
    expect_no_serious_axe_violations(page)
    screenshot(page, "error-pay-link-regenerated")

    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_role("link", name="help@pycon.example")).to_be_in_viewport()
    screenshot(page, "error-pay-link-regenerated-390")


def test_unknown_pay_link_shows_the_checkout_look_and_a_generic_message(
    page: Page, screenshot
) -> None:
    response = page.goto("/pay/not-a-real-token/")

    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("This payment link is not valid")
    expect(page.locator(".site-header")).to_have_css("background-color", CHECKOUT_INK)
    expect(page.get_by_text("reply to the e-mail that brought you the link")).to_be_visible()
    expect_no_serious_axe_violations(page)
    screenshot(page, "error-pay-link-unknown")
