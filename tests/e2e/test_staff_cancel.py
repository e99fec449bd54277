"""Cancelling orders in a real browser: the order page's dialog, and expired holds in bulk."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from backoffice.models import Order, OrderHistoryEntry
from backoffice.services.payment import PaymentService
from tests.e2e.test_staff_orders import (
    ORDERS_URL,
    admin_message,
    exactly,
    open_order_dialog,
    order_field,
    order_row,
    order_url,
    run_list_action,
)

pytestmark = pytest.mark.e2e


def test_clerk_cancels_an_order_from_its_page_with_a_reason(
    page: Page, login, front_desk_user, make_order, screenshot
) -> None:
    order = make_order("120.00", billing_name="Hold Expired")
    login(front_desk_user)
    page.goto(order_url(order))

    reason = open_order_dialog(page, "Cancel order", "cancel_order", "Reason")
    reason.fill("Hold expired; no reply to two reminders")
    page.locator("#dialog").get_by_role("button", name="Cancel order").click()

    expect(admin_message(page, f"{order.reference} was cancelled.")).to_be_visible()
    expect(order_field(page, "Status")).to_have_text(exactly("Cancelled"))
    timeline = page.locator("#history-group")
    expect(timeline).to_contain_text("Hold expired; no reply to two reminders")
    expect(timeline).to_contain_text("Dana Desk")
    screenshot(page, "order-cancelled")

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    entry = order.history.get()
    assert (entry.action, entry.actor) == (OrderHistoryEntry.Action.CANCEL, front_desk_user)


def test_clerk_cancels_the_expired_holds_in_bulk(
    page: Page, login, front_desk_user, make_order, staff_user, screenshot
) -> None:
    past = timezone.now() - timedelta(days=2)
    expired = make_order("80.00", billing_name="Gone Quiet", hold_expires_at=past)
    deposit = make_order("80.00", billing_name="Paid Deposit", hold_expires_at=past)
    PaymentService.record_manual(deposit, amount=Decimal("30.00"), staff_user=staff_user)
    ahead = timezone.now() + timedelta(days=2)
    active = make_order("80.00", billing_name="Still Deciding", hold_expires_at=ahead)

    login(front_desk_user)
    page.goto(f"{ORDERS_URL}?hold=expired")
    expect(order_row(page, active)).to_have_count(0)
    run_list_action(page, [expired, deposit], "Cancel orders")

    expect(page.get_by_text("2 orders selected:")).to_be_visible()
    page.get_by_label("Reason").fill("Hold expired")
    page.get_by_role("button", name="Cancel orders").click()

    message = admin_message(page, "Cancelled 1 order.")
    expect(message).to_contain_text(
        re.compile(rf"{deposit.reference} holds 30\.00\s+USD; refund it first\.")
    )
    screenshot(page, "orders-expired-holds-cancelled")

    expired.refresh_from_db()
    deposit.refresh_from_db()
    active.refresh_from_db()
    assert expired.status == Order.Status.CANCELLED
    assert (deposit.status, active.status) == (Order.Status.PENDING, Order.Status.PENDING)
