"""Each role's home page in a real browser: the desk's lists of work, finance's chart axis."""

import re
from decimal import Decimal

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from playwright.sync_api import Page, expect

from backoffice.models import Order
from backoffice.services.payment import PaymentService
from tests.e2e.conftest import describe_violations, serious_axe_violations

pytestmark = pytest.mark.e2e


def log_recent_actions(user, orders: list[Order]) -> None:
    """Entries for the home page's Recent actions box, as the admin logs a clerk's changes."""
    content_type = ContentType.objects.get_for_model(Order)
    for order in orders:
        LogEntry.objects.create(
            user=user,
            content_type=content_type,
            object_id=str(order.pk),
            object_repr=order.reference,
            action_flag=CHANGE,
            change_message="Recorded a manual payment.",
        )


def test_the_desk_home_page_lists_its_work_and_shows_recent_actions(
    page: Page, login, front_desk_user, make_order, screenshot
) -> None:
    to_comp = [make_order("0.00", billing_name=f"Free Guest {n}") for n in range(3)]
    owing = [make_order("120.00", billing_name=f"Owing Guest {n}") for n in range(10)]
    PaymentService.record_manual(owing[-1], amount=Decimal("20.00"))
    log_recent_actions(front_desk_user, owing)
    login(front_desk_user)

    page.goto("/admin/")

    comp_card = page.locator("#orders-comp")
    expect(comp_card.get_by_role("heading", name="Orders to comp")).to_be_visible()
    expect(comp_card.get_by_text("3 orders", exact=True)).to_be_visible()
    expect(comp_card.get_by_role("link", name=to_comp[0].reference)).to_be_visible()
    balance_card = page.locator("#orders-balance")
    expect(balance_card.get_by_text("10 orders", exact=True)).to_be_visible()
    expect(balance_card.get_by_text("100.00 USD")).to_be_visible()  # the newest one, part paid
    expect(balance_card.locator("tbody tr")).to_have_count(8)
    # Recent actions: the box is as tall as its entries, not clipped to the column beside it.
    recent = page.locator("#recent-actions-module")
    screenshot(page, "home-front-desk")
    recent.scroll_into_view_if_needed()
    expect(recent.locator("li").nth(4)).to_be_in_viewport()
    assert recent.evaluate("element => element.clientHeight") > 300
    violations = serious_axe_violations(page)
    assert not violations, describe_violations(violations)

    page.set_viewport_size({"width": 390, "height": 844})  # a phone at the desk
    expect(balance_card.get_by_role("link", name=owing[-1].reference)).to_be_visible()
    screenshot(page, "home-front-desk-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    comp_card.get_by_role("link", name="Open the full list (3 orders)").click()

    expect(page).to_have_url(re.compile(r"/admin/backoffice/order/\?todo=comp$"))
    for order in to_comp:
        expect(page.locator("#result_list").get_by_text(order.reference)).to_be_visible()
    expect(page.locator("#result_list").get_by_text("To comp")).to_have_count(3)
    expect(page.locator("#result_list").get_by_text(owing[1].reference)).to_have_count(0)


def test_the_finance_dashboard_chart_has_amounts_on_its_y_axis(
    page: Page, login, finance_user, make_order, screenshot
) -> None:
    for total, paid in (("300.00", "300.00"), ("1250.00", "1250.00"), ("80.00", "40.00")):
        PaymentService.record_manual(make_order(total), amount=Decimal(paid))
    login(finance_user)

    page.goto("/admin/")

    canvas = page.locator("#finance-dashboard canvas.chart")
    expect(canvas).to_be_visible()
    labels = canvas.evaluate(
        "element => Chart.getChart(element).scales.y.ticks.map(tick => tick.label)"
    )
    # Chart.js writes the zero line as a bare 0; every other tick is an amount in USD.
    assert labels[0] == "0", labels
    assert all(re.fullmatch(r"USD\s[\d,]+", label) for label in labels[1:]), labels
    assert "USD\xa01,000" in labels, labels
    assert canvas.evaluate("element => Chart.getChart(element).scales.y.options.ticks.display")
    screenshot(page, "home-finance-dashboard")
    violations = serious_axe_violations(page)
    assert not violations, describe_violations(violations)
