"""The attendee pay page and the return URL, against localstripe."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from backoffice.models import Order, Payment
from backoffice.services.payment import PaymentService
from tests.stripe_fixtures import CARD_DECLINED, TEST_PUBLISHABLE_KEY, start_localstripe

pytestmark = pytest.mark.django_db


def pay_url(order: Order) -> str:
    return reverse("backoffice:pay", args=[order.payment_token])


def complete_url(order: Order) -> str:
    return reverse("backoffice:pay_complete", args=[order.payment_token])


def client_secret_in(html: str) -> str:
    return re.search(r'data-client-secret="([^"]+)"', html).group(1)


@pytest.fixture
def order(stripe_conference, make_order):
    return make_order("100.00", conference=stripe_conference)


def test_pay_page_shows_the_order_and_mounts_the_payment_element(client, order, settings):
    settings.STRIPE_JS_URL = "https://js.example.test/v3/"

    response = client.get(pay_url(order))

    assert response.status_code == 200
    html = response.content.decode()
    assert "StripeCon" in html
    assert order.reference in html
    assert "Conference ticket" in html
    assert re.search(r'id="order-total">100.00 USD<', html)
    assert re.search(r'id="order-paid">0.00 USD<', html)
    assert re.search(r'id="order-due">100.00 USD<', html)
    assert f'data-publishable-key="{TEST_PUBLISHABLE_KEY}"' in html
    assert 'id="payment-element"' in html
    assert re.search(r'<button id="pay-button" type="submit"[^>]*>Pay 100.00 USD</button>', html)
    assert html.count('id="pay-button"') == 1
    assert 'id="payment-errors"' in html and 'role="alert"' in html
    return_url = re.search(r'data-return-url="([^"]+)"', html).group(1)
    assert return_url == f"http://testserver{complete_url(order)}"
    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.PENDING
    assert client_secret_in(html).startswith(payment.stripe_payment_intent_id + "_secret_")
    assert response.headers["Cache-Control"].startswith("max-age=0")


def test_pay_page_loads_stripe_js_from_the_setting_and_has_no_inline_script(
    client, order, settings
):
    settings.STRIPE_JS_URL = "https://js.example.test/v3/"

    html = client.get(pay_url(order)).content.decode()

    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    sources = [re.search(r'src="([^"]+)"', attrs).group(1) for attrs, _ in scripts]
    assert sources == ["https://js.example.test/v3/", "/static/backoffice/checkout.js"]
    assert all(body.strip() == "" for _, body in scripts)


def test_reloading_the_pay_page_keeps_one_attempt(client, order):
    first = client_secret_in(client.get(pay_url(order)).content.decode())
    second = client_secret_in(client.get(pay_url(order)).content.decode())

    assert first == second
    assert Payment.objects.filter(order=order).count() == 1


def test_pay_page_after_a_partial_cash_payment_asks_for_the_rest(client, order):
    PaymentService.record_manual(order, amount=Decimal("40.00"))

    html = client.get(pay_url(order)).content.decode()

    assert re.search(r'id="order-paid">40.00 USD<', html)
    assert re.search(r'id="order-due">60.00 USD<', html)
    assert ">Pay 60.00 USD</button>" in html


def test_wrong_token_is_a_plain_404(client, order):
    response = client.get(reverse("backoffice:pay", args=["not-the-token"]))

    assert response.status_code == 404
    assert order.reference.encode() not in response.content
    assert b"StripeCon" not in response.content


def test_regenerated_link_invalidates_the_old_one(client, order):
    old_url = pay_url(order)
    PaymentService.regenerate_payment_link(order)

    assert client.get(old_url).status_code == 404
    assert client.get(pay_url(order)).status_code == 200


def test_paid_order_shows_its_receipt_and_creates_nothing(client, order, localstripe):
    PaymentService.record_manual(order, amount=Decimal("100.00"), reference="DESK-7")

    response = client.get(pay_url(order))

    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<h1 id="paid-message">Paid', html)
    assert order.reference in html
    assert "Manual" in html and "100.00 USD" in html
    assert 'id="pay-button"' not in html
    assert Payment.objects.filter(order=order).count() == 1


def test_cancelled_order_says_so(client, make_order, stripe_conference):
    order = make_order("100.00", conference=stripe_conference, status=Order.Status.CANCELLED)

    response = client.get(pay_url(order))

    assert response.status_code == 200
    assert b'id="cancelled-message"' in response.content
    assert b"cancelled" in response.content
    assert not Payment.objects.exists()


def test_conference_without_stripe_keys_shows_a_friendly_page(client, make_order):
    order = make_order("100.00")  # the plain conference has no keys

    response = client.get(pay_url(order))

    assert response.status_code == 200
    assert b"Online payment is not available" in response.content
    assert not Payment.objects.exists()


def test_zero_total_order_explains_instead_of_failing(client, make_order, stripe_conference):
    order = make_order("0.00", conference=stripe_conference)

    response = client.get(pay_url(order))

    assert response.status_code == 200
    assert b'id="problem-message"' in response.content
    assert not Payment.objects.exists()


def test_stripe_down_shows_a_temporary_error_and_leaves_no_row(client, order, settings, tmp_path):
    with start_localstripe(tmp_path) as doomed:
        settings.STRIPE_API_BASE = doomed.url

    response = client.get(pay_url(order))

    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert b"temporarily unavailable" in response.content
    assert b"Nothing was charged" in response.content
    assert not Payment.objects.exists()


def test_pay_page_is_get_only(client, order):
    assert client.post(pay_url(order)).status_code == 405


def test_return_url_records_the_payment_and_shows_paid(client, order, localstripe):
    secret = client_secret_in(client.get(pay_url(order)).content.decode())
    intent_id = secret.split("_secret_")[0]
    localstripe.confirm_payment_intent(intent_id)

    response = client.get(
        complete_url(order),
        {"payment_intent": intent_id, "payment_intent_client_secret": secret},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == pay_url(order)
    assert b'id="paid-message"' in response.content
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    payment = Payment.objects.get(order=order)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_charge_id.startswith("ch_")


def test_return_url_never_trusts_the_query_string(client, order):
    secret = client_secret_in(client.get(pay_url(order)).content.decode())
    intent_id = secret.split("_secret_")[0]

    response = client.get(
        complete_url(order), {"payment_intent": intent_id, "redirect_status": "succeeded"}
    )

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert Payment.objects.get(order=order).status == Payment.Status.PENDING


def test_return_url_after_a_decline_shows_stripes_message_and_a_new_form(
    client, order, localstripe
):
    secret = client_secret_in(client.get(pay_url(order)).content.decode())
    intent_id = secret.split("_secret_")[0]
    localstripe.confirm_payment_intent(intent_id, card=CARD_DECLINED)

    response = client.get(complete_url(order), {"payment_intent": intent_id}, follow=True)

    html = response.content.decode()
    assert "Your payment did not go through: Your card was declined." in html
    assert 'id="pay-button"' in html
    assert Payment.objects.get(stripe_payment_intent_id=intent_id).status == (Payment.Status.FAILED)
    assert client_secret_in(html) != secret


def test_return_url_with_stripe_down_asks_to_wait_not_to_pay_again(
    client, order, settings, tmp_path
):
    with start_localstripe(tmp_path) as doomed:
        settings.STRIPE_API_BASE = doomed.url
        client.get(pay_url(order))

    response = client.get(complete_url(order))

    assert response.status_code == 302
    follow = client.get(response.url)
    assert b"please do not pay twice" in follow.content


def test_return_url_wrong_token_is_404(client):
    assert client.get(reverse("backoffice:pay_complete", args=["nope"])).status_code == 404
