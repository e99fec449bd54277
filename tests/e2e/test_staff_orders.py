"""Staff flows in the orders admin, in a real browser: list, Mark comp, Record manual payment."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Locator, Page, expect

from backoffice.models import Order, Payment
from backoffice.services.payment import PaymentService
from tests.e2e.conftest import describe_violations, serious_axe_violations

pytestmark = pytest.mark.e2e

ORDERS_URL = "/admin/backoffice/order/"


def exactly(text: str) -> re.Pattern:
    """Match a cell's whole text, case-insensitive, any run of spaces (or &nbsp;) for a space."""
    pattern = r"\s+".join(re.escape(word) for word in text.split())
    return re.compile(rf"^\s*{pattern}\s*$", re.IGNORECASE)


def order_url(order: Order) -> str:
    """The order's admin page."""
    return f"{ORDERS_URL}{order.pk}/change/"


def order_row(page: Page, order: Order) -> Locator:
    """The orders list row of one order."""
    return page.locator("#result_list tbody tr").filter(has_text=order.reference)


def run_list_action(page: Page, orders: list[Order], action: str) -> None:
    """Tick the orders on the list and run a bulk action by its label."""
    for order in orders:
        order_row(page, order).locator("input.action-select").check()
    page.locator("select[name=action]").select_option(label=action)
    page.get_by_role("button", name="Run").click()


def order_field(page: Page, label: str) -> Locator:
    """The value shown beside a label on the order page (e.g. "Balance due")."""
    return (
        page.locator(".field-line")
        .filter(has=page.locator("label", has_text=re.compile(rf"^\s*{label}\s*$")))
        .locator(".readonly")
    )


def expect_payment_history(page: Page, expected: list[tuple]) -> None:
    """Check the order page's payment history, oldest first, cell by cell.

    Each expected row is (method, status, amount, reference, note, recorded by); None
    skips a cell.
    """
    rows = page.locator("#payments-group tr.form-row")
    expect(rows).to_have_count(len(expected))
    cells = ("method", "status_label", "amount_display", "reference", "note", "recorded_by")
    for index, values in enumerate(expected):
        for cell, value in zip(cells, values, strict=True):
            if value is not None:
                expect(rows.nth(index).locator(f"td.field-{cell}")).to_have_text(exactly(value))


def admin_message(page: Page, text: str) -> Locator:
    """The admin message (success, warning or error) that contains a text."""
    return page.get_by_role("listitem").filter(has_text=text).first


def test_staff_member_logs_in_to_the_admin(page: Page, front_desk_user, screenshot) -> None:
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Please enter the correct username and password")).to_be_visible()

    page.get_by_label("Password").fill("dana-pass-123")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    page.get_by_role("link", name="Orders").first.click()
    expect(page).to_have_url(re.compile(f"{ORDERS_URL}$"))


def test_orders_list_shows_status_labels_and_balance_due(
    page: Page, login, front_desk_user, make_order, screenshot
) -> None:
    partly_paid = make_order("120.00", billing_name="Grace Hopper")
    PaymentService.record_manual(partly_paid, amount=Decimal("20.00"), staff_user=front_desk_user)
    settled = make_order("80.00", billing_name="Alan Turing")
    PaymentService.record_manual(settled, amount=Decimal("80.00"), staff_user=front_desk_user)
    cancelled = make_order("45.00", billing_name="Edsger Dijkstra", status=Order.Status.CANCELLED)

    login(front_desk_user)
    page.goto(ORDERS_URL)

    expected = {
        partly_paid: ("Pending", "120.00 USD", "20.00 USD", "100.00 USD"),
        settled: ("Paid", "80.00 USD", "80.00 USD", "0.00 USD"),
        cancelled: ("Cancelled", "45.00 USD", "0.00 USD", "45.00 USD"),
    }
    for order, (status, total, paid, balance) in expected.items():
        row = order_row(page, order)
        label = row.locator("td.field-status_label")
        expect(label).to_have_text(exactly(status))
        # A coloured label, not bare text.
        expect(label.locator("span").first).to_have_class(re.compile(r"\bbg-"))
        expect(row.locator("td.field-total_display")).to_have_text(exactly(total))
        expect(row.locator("td.field-paid_display")).to_have_text(exactly(paid))
        expect(row.locator("td.field-balance_display")).to_have_text(exactly(balance))
    expect(page.locator("#result_list thead")).to_contain_text("Balance due")
    screenshot(page, "orders-list")


def test_bulk_mark_comp_comps_zero_total_orders_and_explains_the_skip(
    page: Page, login, front_desk_user, make_order
) -> None:
    free_a = make_order("0.00", billing_name="Speaker One")
    free_b = make_order("0.00", billing_name="Speaker Two")
    paying = make_order("50.00", billing_name="Paying Attendee")

    login(front_desk_user)
    page.goto(ORDERS_URL)
    run_list_action(page, [free_a, free_b, paying], "Mark comp")

    message = admin_message(page, "2 orders were marked comp")
    expect(message).to_be_visible()
    expect(message).to_contain_text(re.compile(rf"{paying.reference} has a total of 50\.00"))
    for order in (free_a, free_b):
        expect(order_row(page, order).locator("td.field-status_label")).to_have_text(
            exactly("Paid")
        )
    expect(order_row(page, paying).locator("td.field-status_label")).to_have_text(
        exactly("Pending")
    )

    for order in (free_a, free_b):
        order.refresh_from_db()
        assert order.status == Order.Status.PAID
        comp = order.payments.get()
        assert (comp.method, comp.status, comp.amount) == (
            Payment.Method.COMP,
            Payment.Status.SUCCEEDED,
            Decimal("0.00"),
        )
        assert comp.created_by == front_desk_user
    paying.refresh_from_db()
    assert paying.status == Order.Status.PENDING
    assert not paying.payments.exists()


# htmx keeps its bookkeeping on each element it has wired up; until then a click
# on the button (or the dialog's submit) is a plain link or a native form post.
HTMX_WIRED = (
    "sel => { const el = document.querySelector(sel); return !!(el && el['htmx-internal-data']); }"
)


def open_order_dialog(page: Page, button: str, path: str, field: str) -> Locator:
    """Click an order page's dialog button (e.g. "Record manual payment"); return a form field.

    Waits until htmx has wired the button and, once loaded, the dialog's form, as a
    person does without noticing: clicking a few milliseconds earlier follows the plain
    link or posts the form natively, which is what made this flow flaky under load.
    """
    page.wait_for_function(HTMX_WIRED, arg=f"a[hx-get$='/{path}/']")
    page.get_by_role("link", name=button).or_(page.get_by_role("button", name=button)).first.click()
    first_field = page.get_by_label(field)
    expect(first_field).to_be_visible()
    page.wait_for_function(HTMX_WIRED, arg="#dialog form[hx-post]")
    return first_field


def open_record_manual_dialog(page: Page) -> Locator:
    """Click the order page's "Record manual payment" button; return the form's Amount field."""
    return open_order_dialog(page, "Record manual payment", "record_manual", "Amount")


def test_record_manual_payment_refuses_an_amount_above_the_balance(
    page: Page, login, front_desk_user, make_order, screenshot
) -> None:
    order = make_order("120.00")
    login(front_desk_user)
    page.goto(order_url(order))

    amount = open_record_manual_dialog(page)
    expect(amount).to_have_value("120.00")  # pre-filled with the balance due
    amount.fill("500.00")
    page.get_by_label("Paid by").select_option(label="Cash")
    page.get_by_label("Reference").fill("CASH-TOO-MUCH")
    page.get_by_role("button", name="Record payment").click()

    error = page.get_by_text("is more than the balance due of 120.00 USD")
    expect(error).to_be_visible()
    # The form stays open with what the clerk typed, so they can correct it.
    expect(page.get_by_label("Amount")).to_have_value("500.00")
    screenshot(page, "manual-payment-form-error")
    violations = serious_axe_violations(page)
    assert not violations, describe_violations(violations)

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert not order.payments.exists()


def test_record_partial_then_full_manual_payment_shows_both_in_history(
    page: Page, login, front_desk_user, make_order, screenshot
) -> None:
    order = make_order("120.00")
    login(front_desk_user)
    page.goto(order_url(order))

    amount = open_record_manual_dialog(page)
    amount.fill("50.00")
    page.get_by_label("Paid by").select_option(label="Cash")
    page.get_by_label("Reference").fill("CASH-0042")
    page.get_by_label("Note").fill("Paid at the door")
    page.get_by_role("button", name="Record payment").click()

    expect(admin_message(page, "Recorded 50.00 USD")).to_contain_text("balance due: 70.00 USD")
    expect(order_field(page, "Balance due")).to_contain_text("70.00 USD")
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert order.balance_due == Decimal("70.00")

    amount = open_record_manual_dialog(page)
    expect(amount).to_have_value("70.00")
    page.get_by_label("Paid by").select_option(label="Bank transfer")
    page.get_by_label("Reference").fill("WIRE-7781")
    page.get_by_role("button", name="Record payment").click()

    expect(admin_message(page, "Recorded 70.00 USD")).to_contain_text("the order is now paid")
    expect(order_field(page, "Status")).to_have_text(exactly("Paid"))
    expect(order_field(page, "Balance due")).to_contain_text("0.00 USD")

    expect(page.get_by_role("heading", name="Payment history")).to_be_visible()
    expect_payment_history(
        page,
        [
            ("Manual", "Succeeded", "50.00 USD", "CASH-0042", "Paid at the door", "Dana Desk"),
            ("Manual", "Succeeded", "70.00 USD", "WIRE-7781", None, "Dana Desk"),
        ],
    )
    screenshot(page, "order-payment-history")

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    payments = list(order.payments.order_by("created_at", "id"))
    assert [(p.amount, p.channel, p.reference, p.created_by) for p in payments] == [
        (Decimal("50.00"), Payment.Channel.CASH, "CASH-0042", front_desk_user),
        (Decimal("70.00"), Payment.Channel.BANK_TRANSFER, "WIRE-7781", front_desk_user),
    ]


def test_a_double_clicked_manual_payment_is_recorded_once(
    page: Page, login, front_desk_user, make_order
) -> None:
    order = make_order("120.00")
    login(front_desk_user)
    page.goto(order_url(order))

    amount = open_record_manual_dialog(page)
    amount.fill("50.00")
    page.get_by_label("Paid by").select_option(label="Card terminal")
    page.get_by_role("button", name="Record payment").dblclick()

    expect(order_field(page, "Balance due")).to_contain_text("70.00 USD")
    payment = order.payments.get()
    assert (payment.amount, payment.channel) == (Decimal("50.00"), Payment.Channel.CARD_TERMINAL)


def test_staff_without_the_permissions_sees_no_payment_buttons(
    page: Page, login, view_only_user, make_order
) -> None:
    free = make_order("0.00")
    owing = make_order("120.00")
    login(view_only_user)

    page.goto(order_url(owing))
    expect(order_field(page, "Balance due")).to_contain_text("120.00 USD")
    expect(page.get_by_text("Record manual payment")).to_have_count(0)
    page.goto(order_url(free))
    expect(order_field(page, "Total")).to_contain_text("0.00 USD")
    expect(page.get_by_text("Mark comp")).to_have_count(0)

    page.goto(ORDERS_URL)
    expect(order_row(page, owing)).to_be_visible()
    actions = page.locator("select[name=action] option")
    expect(actions.filter(has_text="Mark comp")).to_have_count(0)
    expect(actions.filter(has_text="Record manual payment")).to_have_count(0)
