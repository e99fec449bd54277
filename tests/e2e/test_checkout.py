"""Attendee checkout in a real browser: the payment link, paying by card, a declined card.

Stripe.js is the test double in stripe_double.js; the card the test types is confirmed
at localstripe over HTTP, and localstripe's signed webhook reaches the live server.
"""

import re
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from backoffice.models import Conference, Order, OrderLineItem, Payment, StripeEvent
from backoffice.services.payment import PaymentService
from tests.e2e.conftest import describe_violations, serious_axe_violations
from tests.e2e.stripe_double import (
    DECLINED_CARD,
    STRIPE_DOUBLE_PATH,
    SUCCEEDING_CARD,
    install_stripe_double,
)
from tests.e2e.test_staff_orders import exactly, expect_payment_history, order_field, order_url

pytestmark = pytest.mark.e2e


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll the database until the condition holds (localstripe posts webhooks after ~1 s)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def stripe_events(event_type: str, intent_id: str):
    """The webhook events of one type the site stored for one PaymentIntent."""
    return StripeEvent.objects.filter(type=event_type, payload__data__object__id=intent_id)


def webhook_processed(event_type: str, intent_id: str) -> bool:
    """Whether localstripe's webhook of this type for the intent reached the site, applied."""
    return stripe_events(event_type, intent_id).filter(processed_at__isnull=False).exists()


@pytest.fixture
def checkout(
    page: Page, live_server, settings, localstripe, localstripe_webhook, stripe_conference
):
    """Wire the page to the Stripe.js double and localstripe's webhooks to the live server."""
    settings.STRIPE_JS_URL = live_server.url + STRIPE_DOUBLE_PATH
    localstripe_webhook(
        live_server.url + reverse("backoffice:stripe_webhook", args=[stripe_conference.slug]),
        stripe_conference.stripe_webhook_secret,
    )
    return install_stripe_double(page, localstripe)


@pytest.fixture
def registration(attendee, stripe_conference: Conference) -> Order:
    """A pending order for a ticket and two workshop seats, 150.00 USD in all."""
    order = Order.objects.create(
        conference=stripe_conference,
        user=attendee,
        subtotal=Decimal("150.00"),
        total=Decimal("150.00"),
        billing_name="Ada Lovelace",
        billing_email="ada@example.com",
    )
    OrderLineItem.objects.create(
        order=order,
        description="Conference ticket",
        quantity=1,
        unit_price=Decimal("100.00"),
        line_total=Decimal("100.00"),
    )
    OrderLineItem.objects.create(
        order=order,
        description="Workshop: Django admin deep dive",
        quantity=2,
        unit_price=Decimal("25.00"),
        line_total=Decimal("50.00"),
    )
    return order


def pay_url(order: Order) -> str:
    """The attendee's payment link."""
    return reverse("backoffice:pay", args=[order.payment_token])


def test_attendee_pays_the_balance_by_card_and_staff_see_the_order_paid(
    page: Page,
    context,
    live_server,
    checkout: list[dict],
    registration: Order,
    front_desk_user,
    login,
    screenshot,
) -> None:
    # 30.00 was paid in cash at the desk: the card pays only the rest.
    PaymentService.record_manual(
        registration, amount=Decimal("30.00"), reference="CASH-0007", staff_user=front_desk_user
    )

    # Staff copy the payment link from the order page and send it to the attendee.
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    login(front_desk_user)
    page.goto(order_url(registration))
    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("status").filter(has_text="Copied")).to_be_visible()
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == live_server.url + pay_url(registration)
    context.clear_cookies()  # the attendee is not logged in

    page.goto(link)
    expect(page.get_by_text("StripeCon").first).to_be_visible()
    expect(page.get_by_role("heading", name=f"Order {registration.reference}")).to_be_visible()
    items = page.locator("table.line-items tbody tr")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("Conference ticket")
    expect(items.nth(0)).to_contain_text("100.00 USD")
    expect(items.nth(1)).to_contain_text("Workshop: Django admin deep dive")
    expect(items.nth(1)).to_contain_text("2")
    expect(items.nth(1)).to_contain_text("50.00 USD")
    expect(page.locator("#order-total")).to_have_text("150.00 USD")
    expect(page.locator("#order-paid")).to_have_text("30.00 USD")
    expect(page.locator("#order-due")).to_have_text("120.00 USD")
    # The Payment Element is mounted with the order's client secret.
    card = page.get_by_label("Card number")
    expect(card).to_be_visible()
    pay_button = page.get_by_role("button", name="Pay 120.00 USD")
    expect(pay_button).to_be_enabled()
    attempt = registration.payments.get(method=Payment.Method.STRIPE)
    assert attempt.status == Payment.Status.PENDING
    assert attempt.amount == Decimal("120.00")
    screenshot(page, "checkout")
    violations = serious_axe_violations(page)
    assert not violations, describe_violations(violations)

    card.fill(SUCCEEDING_CARD)
    pay_button.click()

    expect(page.locator("#paid-message")).to_have_text(re.compile(r"Paid"))
    expect(page).to_have_url(re.compile(re.escape(pay_url(registration)) + "$"))
    expect(page.get_by_text(f"Order {registration.reference} is paid")).to_be_visible()
    receipt = page.locator("table.payments tbody tr")
    expect(receipt).to_have_count(2)
    expect(receipt.filter(has_text="Stripe")).to_contain_text("120.00 USD")
    screenshot(page, "checkout-complete")

    assert len(checkout) == 1
    intent_id = checkout[0]["result"]["paymentIntent"]["id"]
    assert checkout[0]["clientSecret"].startswith(f"{intent_id}_secret_")
    wait_for(
        lambda: webhook_processed("payment_intent.succeeded", intent_id), "the succeeded webhook"
    )
    assert stripe_events("payment_intent.succeeded", intent_id).get().last_error == ""

    registration.refresh_from_db()
    assert registration.status == Order.Status.PAID
    stripe_payment = registration.payments.get(method=Payment.Method.STRIPE)
    assert stripe_payment.status == Payment.Status.SUCCEEDED
    assert stripe_payment.amount == Decimal("120.00")
    assert stripe_payment.stripe_payment_intent_id == intent_id
    assert stripe_payment.stripe_charge_id.startswith("ch_")

    login(front_desk_user)
    page.goto(order_url(registration))
    expect(order_field(page, "Status")).to_have_text(exactly("Paid"))
    expect(order_field(page, "Balance due")).to_have_text(exactly("0.00 USD"))
    expect_payment_history(
        page,
        [
            ("Manual", "Succeeded", "30.00 USD", "CASH-0007", None, "Dana Desk"),
            ("Stripe", "Succeeded", "120.00 USD", None, None, None),
        ],
    )
    history = page.locator("#payments-group tr.form-row")
    expect(history.nth(1).locator("td.field-stripe_intent")).to_have_text(exactly(intent_id))
    screenshot(page, "order-paid-by-card")


def test_declined_card_shows_the_decline_and_the_order_stays_pending(
    page: Page, checkout: list[dict], registration: Order, screenshot
) -> None:
    page.goto(pay_url(registration))
    page.get_by_label("Card number").fill(DECLINED_CARD)
    page.get_by_role("button", name="Pay 150.00 USD").click()

    error = page.locator("#payment-errors")
    expect(error).to_be_visible()
    expect(error).to_have_text("Your card was declined.")
    expect(page).to_have_url(re.compile(re.escape(pay_url(registration)) + "$"))
    # The attendee can try again.
    expect(page.get_by_role("button", name="Pay 150.00 USD")).to_be_enabled()
    screenshot(page, "checkout-declined")

    assert checkout[0]["result"]["error"]["code"] == "card_declined"
    intent_id = checkout[0]["clientSecret"].split("_secret_")[0]
    wait_for(
        lambda: webhook_processed("payment_intent.payment_failed", intent_id), "the failed webhook"
    )
    registration.refresh_from_db()
    assert registration.status == Order.Status.PENDING
    attempt = registration.payments.get()
    assert attempt.status == Payment.Status.FAILED
    assert attempt.stripe_payment_intent_id == intent_id
    assert "declined" in attempt.note
    assert not registration.payments.filter(status=Payment.Status.SUCCEEDED).exists()


def test_checkout_page_fits_a_phone_screen(
    page: Page, checkout: list[dict], registration: Order, screenshot
) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(pay_url(registration))
    expect(page.get_by_label("Card number")).to_be_visible()
    pay_button = page.get_by_role("button", name="Pay 150.00 USD")
    pay_button.scroll_into_view_if_needed()
    expect(pay_button).to_be_in_viewport()
    # Nothing wider than the screen: no sideways scrolling to read the amounts or pay.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    box = pay_button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    assert box["height"] >= 44, "the pay button is a comfortable tap target"
    screenshot(page, "checkout-phone")
