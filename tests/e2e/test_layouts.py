"""Lists and the manual-payment dialog fit a laptop (1440x900) and a phone (390x844).

Each check measures bounding boxes in Chromium: every important column's header and
cells lie inside the window, and nothing needs scrolling sideways to reach them.
Screenshots land in artifacts/screenshots/ (layout-*.png).
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from backoffice.models import Dispute, Order, Payment, Refund, StripeEvent
from backoffice.services.payment import PaymentService
from tests.admin.test_orders_attention import stale_card_attempt
from tests.e2e.conftest import describe_violations, serious_axe_violations
from tests.e2e.test_staff_orders import open_record_manual_dialog, order_url
from tests.ledger_factories import make_payment, make_refund
from tests.stripe_fixtures import build_event

pytestmark = pytest.mark.e2e

LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}

# Real Stripe ids are this long; a reference as long as a bank's transfer id.
INTENT_ID = "pi_3QxYzAbCdEfGhIjK1lMnOpQr"
CHARGE_ID = "ch_3QxYzAbCdEfGhIjK1lMnOpQr"
REFUND_ID = "re_3QxYzAbCdEfGhIjK1lMnOpQr"
LONG_REFERENCE = "BANK-TRANSFER-2026-11-000123-FROM-ACME-CORPORATION"

PAYMENT_COLUMNS = (
    "created",
    "order_link",
    "conference",
    "method_display",
    "status_label",
    "amount_display",
    "reference_display",
    "recorded_by",
)
REFUND_COLUMNS = (
    "created",
    "order",
    "payment_display",
    "amount_display",
    "status_label",
    "reason",
    "channel",
    "recorded_by",
    "stripe_refund",
)
DISPUTE_COLUMNS = (
    "created",
    "order",
    "payment_display",
    "amount_display",
    "status_label",
    "reason_display",
    "closed",
    "stripe_dispute",
)
ORDER_COLUMNS = (
    "order_reference",
    "status_label",
    "balance_display",
    "attendee",
    "total_display",
    "paid_display",
    "conference",
    "created",
)
EVENT_COLUMNS = (
    "type",
    "event_id",
    "order_link",
    "conference",
    "processed",
    "error_summary",
    "received",
)

MEASURE = """(names) => {
    const boxes = {};
    for (const name of names) {
        const cells = document.querySelectorAll(
            `#result_list th.column-${name}, #result_list :is(th, td).field-${name}`);
        boxes[name] = [...cells].map((cell) => {
            const box = cell.getBoundingClientRect();
            return {left: box.left, right: box.right, top: box.top, width: box.width};
        });
    }
    return boxes;
}"""

SIDEWAYS = """() => {
    const table = document.querySelector('#result_list').parentElement;
    return {
        page: document.documentElement.scrollWidth - window.innerWidth,
        table: table.scrollWidth - table.clientWidth,
    };
}"""


def assert_columns_inside_the_window(page: Page, columns: tuple[str, ...], rows: int) -> None:
    """Each column's header and its cells in every row have a box inside the window's width."""
    width = page.viewport_size["width"]
    boxes = page.evaluate(MEASURE, list(columns))
    for name in columns:
        assert len(boxes[name]) == rows + 1, f"{name}: header and {rows} cells expected"
        for box in boxes[name]:
            assert box["width"] > 0, f"{name} is not shown"
            assert box["left"] >= 0 and box["right"] <= width, f"{name} is outside: {box}"


def assert_no_sideways_scrolling(page: Page) -> None:
    """Neither the page nor the list's table scrolls sideways."""
    overflow = page.evaluate(SIDEWAYS)
    assert overflow == {"page": 0, "table": 0}, overflow


def assert_accessible(page: Page) -> None:
    """axe-core finds no serious or critical violation on the page."""
    violations = serious_axe_violations(page)
    assert not violations, describe_violations(violations)


@pytest.fixture
def ledger(conference, make_order, front_desk_user) -> list[Order]:
    """Orders paid at the desk (a long reference), by card (long Stripe ids), and refunded.

    The card payment and its refund are written as the webhook writes them (a
    succeeded payment with its intent and charge, a refund with its Stripe id):
    going through localstripe would add nothing to what these tests measure.
    """
    by_wire = make_order("1250.00", billing_email="margaret.hamilton@example.com")
    PaymentService.record_manual(
        by_wire,
        amount=Decimal("1250.00"),
        channel=Payment.Channel.BANK_TRANSFER,
        reference=LONG_REFERENCE,
        staff_user=front_desk_user,
    )
    by_card = make_order("480.00")
    card = make_payment(
        by_card,
        "480.00",
        method=Payment.Method.STRIPE,
        stripe_payment_intent_id=INTENT_ID,
        stripe_charge_id=CHARGE_ID,
    )
    make_refund(card, "80.00", stripe_refund_id=REFUND_ID, reason=Refund.Reason.DUPLICATE)
    pending = make_order("10250.00", billing_name="Katherine Johnson")
    PaymentService.record_manual(
        pending, amount=Decimal("250.00"), channel=Payment.Channel.CASH, staff_user=front_desk_user
    )
    return [by_wire, by_card, pending]


def test_payments_list_fits_a_laptop_window(
    page: Page, login, finance_user, ledger, screenshot
) -> None:
    page.set_viewport_size(LAPTOP)
    login(finance_user)
    page.goto("/admin/backoffice/payment/")
    expect(page.locator("#result_list tbody tr.data-row")).to_have_count(3)

    assert_columns_inside_the_window(page, PAYMENT_COLUMNS, rows=3)
    assert_no_sideways_scrolling(page)
    stripe_id = page.get_by_role("link", name=INTENT_ID)
    expect(stripe_id).to_have_attribute("title", INTENT_ID)
    expect(stripe_id).to_have_attribute("target", "_blank")
    expect(page.get_by_title(LONG_REFERENCE)).to_be_visible()
    assert_accessible(page)
    screenshot(page, "layout-payments-1440")


def test_refunds_list_fits_a_laptop_window(
    page: Page, login, finance_user, ledger, screenshot
) -> None:
    page.set_viewport_size(LAPTOP)
    login(finance_user)
    page.goto("/admin/backoffice/refund/")
    expect(page.locator("#result_list tbody tr.data-row")).to_have_count(1)

    assert_columns_inside_the_window(page, REFUND_COLUMNS, rows=1)
    assert_no_sideways_scrolling(page)
    assert_accessible(page)
    screenshot(page, "layout-refunds-1440")


def test_disputes_list_fits_a_laptop_window(
    page: Page, login, finance_user, ledger, screenshot
) -> None:
    card = ledger[1].payments.get(method=Payment.Method.STRIPE)
    Dispute.objects.create(
        payment=card,
        stripe_dispute_id="du_1QxYzAbCdEfGhIjK1lMnOpQr",
        amount=Decimal("480.00"),
        status=Dispute.Status.NEEDS_RESPONSE,
        reason="product_not_received",
        created_at=timezone.now(),
    )
    page.set_viewport_size(LAPTOP)
    login(finance_user)
    page.goto("/admin/backoffice/dispute/")
    expect(page.locator("#result_list tbody tr.data-row")).to_have_count(1)

    assert_columns_inside_the_window(page, DISPUTE_COLUMNS, rows=1)
    assert_no_sideways_scrolling(page)
    expect(page.get_by_role("link", name="du_1QxYzAbCdEfGhIjK1lMnOpQr")).to_have_attribute(
        "href", "https://dashboard.stripe.com/test/disputes/du_1QxYzAbCdEfGhIjK1lMnOpQr"
    )
    assert_accessible(page)
    screenshot(page, "layout-disputes-1440")


def test_orders_list_fits_a_laptop_window(
    page: Page, login, front_desk_user, ledger, screenshot
) -> None:
    page.set_viewport_size(LAPTOP)
    login(front_desk_user)
    page.goto("/admin/backoffice/order/")
    expect(page.locator("#result_list tbody tr.data-row")).to_have_count(3)

    assert_columns_inside_the_window(page, ORDER_COLUMNS, rows=3)
    assert_no_sideways_scrolling(page)
    assert_accessible(page)
    screenshot(page, "layout-orders-1440")


def test_needs_attention_list_fits_a_laptop_window_with_its_reasons(
    page: Page, login, front_desk_user, make_order, screenshot
) -> None:
    past = timezone.now() - timedelta(days=2)
    expired = [make_order("320.00", hold_expires_at=past) for _ in range(2)]
    stale_card_attempt(make_order("480.00"), INTENT_ID)  # its reason names the long id
    page.set_viewport_size(LAPTOP)
    login(front_desk_user)
    page.goto("/admin/backoffice/order/?attention=yes")
    expect(page.locator("#result_list tbody tr.data-row")).to_have_count(len(expired) + 1)

    columns = tuple(c for c in ORDER_COLUMNS if c not in ("total_display", "paid_display"))
    assert_columns_inside_the_window(page, (*columns, "attention_reasons_column"), rows=3)
    assert_no_sideways_scrolling(page)
    expect(page.get_by_text(INTENT_ID)).to_be_visible()
    assert_accessible(page)
    screenshot(page, "layout-needs-attention-1440")


def test_orders_list_shows_status_and_balance_due_on_a_phone(
    page: Page, login, front_desk_user, ledger, screenshot
) -> None:
    page.set_viewport_size(PHONE)
    login(front_desk_user)
    page.goto("/admin/backoffice/order/")
    expect(page.locator("#result_list tbody tr.data-row")).to_have_count(3)

    # The widest balance here is 10,000.00 USD: the three columns still fit.
    assert_columns_inside_the_window(
        page, ("order_reference", "status_label", "balance_display"), rows=3
    )
    assert page.evaluate(SIDEWAYS)["page"] == 0  # only the table scrolls, to the other columns
    pending = page.locator("#result_list tbody tr").filter(has_text=ledger[2].reference)
    expect(pending.locator("td.field-balance_display")).to_have_text("10,000.00\u00a0USD")
    expect(pending.locator("td.field-balance_display")).to_be_in_viewport()
    expect(pending.locator("td.field-status_label")).to_be_in_viewport()
    assert_accessible(page)
    screenshot(page, "layout-orders-390")


def test_stripe_events_list_fits_a_laptop_window(
    page: Page, login, admin_user, conference, ledger, screenshot
) -> None:
    by_card = ledger[1]
    for index, event_type in enumerate(("payment_intent.succeeded", "charge.refunded")):
        event_id = f"evt_1QxYzAbCdEfGhIjK1lMnOp{index}"
        StripeEvent.objects.create(
            stripe_event_id=event_id,
            conference=conference,
            order=by_card,
            type=event_type,
            payload=build_event(event_type, {"id": INTENT_ID}, event_id),
            last_error="" if index else "UnmatchedPaymentError: " + "a long reason " * 12,
        )
    page.set_viewport_size(LAPTOP)
    login(admin_user)
    page.goto("/admin/backoffice/stripeevent/")
    expect(page.locator("#result_list tbody tr.data-row")).to_have_count(2)

    assert_columns_inside_the_window(page, EVENT_COLUMNS, rows=2)
    assert_no_sideways_scrolling(page)
    expect(page.get_by_role("link", name=by_card.reference).first).to_be_visible()
    assert_accessible(page)
    screenshot(page, "layout-stripe-events-1440")

    page.get_by_role("link", name="payment_intent.succeeded").click()
    expect(page.get_by_role("link", name=by_card.reference)).to_be_visible()
    expect(page.get_by_role("link", name=INTENT_ID)).to_have_attribute(
        "href", f"https://dashboard.stripe.com/test/payments/{INTENT_ID}"
    )
    event_link = page.get_by_role("link", name="evt_1QxYzAbCdEfGhIjK1lMnOp0", exact=True)
    expect(event_link).to_be_in_viewport(ratio=1)  # shown whole on the event's page
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") == 0
    assert_accessible(page)
    screenshot(page, "layout-stripe-event-page-1440")


def test_record_manual_dialog_shows_its_buttons_and_the_error_on_the_field_at_1440x900(
    page: Page, login, front_desk_user, make_order, screenshot
) -> None:
    order = make_order("120.00")
    page.set_viewport_size(LAPTOP)
    login(front_desk_user)
    page.goto(order_url(order))

    amount = open_record_manual_dialog(page)
    buttons = [
        page.locator("#dialog").get_by_role("button", name="Record payment"),
        page.locator("#dialog").get_by_role("link", name="Cancel"),
    ]
    for button in buttons:
        expect(button).to_be_in_viewport(ratio=1)
    amount.fill("500.00")
    page.get_by_label("Paid by").select_option(label="Cash")
    buttons[0].click()

    amount_field = page.locator("#dialog .form-field").filter(has=page.locator("#id_amount"))
    expect(amount_field).to_contain_text(
        "The amount 500.00 USD is more than the balance due of 120.00 USD."
    )
    expect(page.locator("#dialog .errornote")).to_have_count(0)
    expect(page.get_by_label("Amount")).to_have_attribute("aria-invalid", "true")
    for button in buttons:
        expect(button).to_be_in_viewport(ratio=1)
    assert page.evaluate("window.scrollY") == 0
    assert_accessible(page)
    screenshot(page, "layout-record-manual-dialog-1440")
    order.refresh_from_db()
    assert not order.payments.exists()
