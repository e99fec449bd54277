"""A Finance clerk refunds part of a card payment from the order page, in a real browser."""

from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from backoffice.models import Order, Payment, Refund
from tests.e2e.conftest import describe_violations, serious_axe_violations
from tests.e2e.test_staff_orders import HTMX_WIRED, admin_message, exactly, order_field, order_url
from tests.stripe_fixtures import pay_by_card

pytestmark = pytest.mark.e2e


@pytest.fixture
def card_paid_order(stripe_conference, make_order, localstripe) -> Order:
    """A 120.00 order paid in full by card at localstripe (the return page applied it)."""
    order = make_order("120.00", conference=stripe_conference)
    pay_by_card(order, localstripe)
    return order


def test_a_clerk_refunds_part_of_a_card_payment(
    page: Page, login, finance_user, card_paid_order, localstripe, screenshot
) -> None:
    order = card_paid_order
    login(finance_user)
    page.goto(order_url(order))

    page.wait_for_function(HTMX_WIRED, arg="a[hx-get$='/refund/']")
    page.locator("a[hx-get$='/refund/']").click()
    dialog = page.locator("#dialog")
    amount = dialog.get_by_label("Amount")
    expect(amount).to_have_value("120.00")  # pre-filled with what is left to refund
    expect(dialog.get_by_label("Payment")).to_contain_text("Stripe")
    expect(dialog.get_by_label("Payment")).to_contain_text("120.00 USD left to refund")
    page.wait_for_function(HTMX_WIRED, arg="#dialog form[hx-post]")
    amount.fill("45.00")
    dialog.get_by_label("Reason").select_option(label="Event cancelled")
    dialog.get_by_label("Note").fill("Workshop day cancelled")
    screenshot(page, "order-refund-dialog")
    dialog.get_by_role("button", name="Refund").click()

    expect(admin_message(page, "Refunded 45.00 USD")).to_contain_text(
        "the order is now partially refunded"
    )
    expect(order_field(page, "Status")).to_have_text(exactly("Partially refunded"))
    payment_row = page.locator("#payments-group tr.form-row").first
    refunds_cell = payment_row.locator("td.field-refunds_display")
    expect(refunds_cell).to_contain_text("45.00 USD")
    expect(refunds_cell).to_contain_text("Succeeded")
    expect(refunds_cell).to_contain_text("Event cancelled")
    expect(refunds_cell).to_contain_text("Fiona Finance")
    last_entry = page.locator("#history-group tr.form-row").last
    expect(last_entry.locator("td.field-done_by")).to_have_text(exactly("Fiona Finance"))
    expect(last_entry.locator("td.field-what")).to_have_text(exactly("Refund"))
    expect(last_entry.locator("td.field-details")).to_contain_text("Refund of 45.00 USD")
    expect(last_entry.locator("td.field-status_change")).to_contain_text("Partially refunded")
    screenshot(page, "order-refund")
    violations = serious_axe_violations(page)
    assert not violations, describe_violations(violations)

    refund = Refund.objects.get()
    assert (refund.amount, refund.status, refund.reason, refund.created_by) == (
        Decimal("45.00"),
        Refund.Status.SUCCEEDED,
        Refund.Reason.EVENT_CANCELLED,
        finance_user,
    )
    at_stripe = localstripe.api("GET", f"/v1/refunds/{refund.stripe_refund_id}")
    assert at_stripe["amount"] == 4500
    payment = Payment.objects.get(order=order)
    assert payment.refunded_amount == Decimal("45.00")
