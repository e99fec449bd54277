"""The local card form standing in for Stripe.js: only in development, against a local fake."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from backoffice.models import Order
from tests.deploy_env import PRODUCTION_HOST, collect_static, production_env, run_manage
from tests.stripe_fixtures import CARD_DECLINED, CARD_OK, LocalStripe

pytestmark = pytest.mark.django_db

STAND_IN_URL = "/local-stripe/v3/"
REAL_STRIPE_JS = "https://js.stripe.com/v3/"


@pytest.fixture
def order(stripe_conference, make_order) -> Order:
    return make_order("100.00", conference=stripe_conference)


@pytest.fixture
def development(settings, stripe_settings: LocalStripe) -> LocalStripe:
    """`make run`'s settings: DEBUG on, Stripe's API at the local fake."""
    settings.DEBUG = True
    settings.STRIPE_JS_URL = REAL_STRIPE_JS
    return stripe_settings


def pay_page(client: Client, order: Order) -> str:
    response = client.get(reverse("backoffice:pay", args=[order.payment_token]))
    assert response.status_code == 200
    return response.content.decode()


def confirm(client: Client, client_secret: str, number: str):
    intent_id = client_secret.split("_secret_")[0]
    return client.post(
        reverse("backoffice:local_stripe_confirm", args=[intent_id]),
        {"client_secret": client_secret, "number": number, "exp_month": "12",
         "exp_year": "2034", "cvc": "123"},
    )  # fmt: skip


def client_secret_in(html: str) -> str:
    return re.search(r'data-client-secret="([^"]+)"', html).group(1)


def test_in_development_the_pay_page_loads_the_local_card_form(client, order, development) -> None:
    html = pay_page(client, order)

    assert f'<script src="{STAND_IN_URL}" defer></script>' in html
    assert REAL_STRIPE_JS not in html
    assert "Local test card form: nothing is charged." in html
    assert "never reach our servers" not in html  # untrue here: the card goes through the site
    response = client.get(STAND_IN_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript"
    assert b"window.Stripe = LocalStripe" in b"".join(response.streaming_content)


def test_the_pay_page_policy_allows_the_card_form_and_its_calls(client, order, development) -> None:
    response = client.get(reverse("backoffice:pay", args=[order.payment_token]))

    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")
    )
    assert "'self'" in policy["script-src"].split()
    assert "'self'" in policy["connect-src"].split()


def test_the_card_form_pays_at_the_fake_without_a_csrf_token(order, development) -> None:
    client = Client(enforce_csrf_checks=True)  # like Stripe's API: the client secret authorises
    secret = client_secret_in(pay_page(client, order))

    response = confirm(client, secret, CARD_OK)

    assert response.status_code == 200
    assert response.json()["paymentIntent"]["status"] == "succeeded"
    assert (
        development.api("GET", f"/v1/payment_intents/{secret.split('_secret_')[0]}")["status"]
        == "succeeded"
    )


def test_a_declined_card_answers_402_with_the_message_the_page_shows(
    client, order, development
) -> None:
    response = confirm(client, client_secret_in(pay_page(client, order)), CARD_DECLINED)

    assert response.status_code == 402
    assert response.json()["error"]["message"] == "Your card was declined."


def test_with_debug_off_the_pay_page_never_references_the_card_form(
    client, order, settings, stripe_settings: LocalStripe
) -> None:
    settings.DEBUG = False  # production settings, even against a local fake
    settings.STRIPE_JS_URL = REAL_STRIPE_JS

    html = pay_page(client, order)

    assert f'<script src="{REAL_STRIPE_JS}" defer></script>' in html
    assert "local-stripe" not in html
    assert "Your card details never reach our servers." in html
    assert "Local test card form" not in html


@pytest.mark.parametrize(
    ("debug", "api_base"),
    [
        (False, "local"),  # production settings, even against a local fake
        (True, ""),  # Stripe's real API
        (True, "https://api.stripe.com"),
    ],
)
def test_outside_development_the_card_form_and_its_payments_answer_404(
    client, order, settings, stripe_settings: LocalStripe, debug: bool, api_base: str
) -> None:
    secret = client_secret_in(pay_page(client, order))  # an intent at the fake to aim at
    settings.DEBUG = debug
    settings.STRIPE_API_BASE = stripe_settings.url if api_base == "local" else api_base

    assert client.get(STAND_IN_URL).status_code == 404
    assert confirm(client, secret, CARD_OK).status_code == 404
    intent_id = secret.split("_secret_")[0]
    assert stripe_settings.api("GET", f"/v1/payment_intents/{intent_id}")["status"] == (
        "requires_payment_method"
    )


def test_with_production_settings_the_card_form_is_not_served(stripe_settings, tmp_path) -> None:
    # The 404 page needs the collected static files' manifest, as in production.
    static_root = collect_static(tmp_path / "static")
    env = production_env(STRIPE_API_BASE=stripe_settings.url, DJANGO_STATIC_ROOT=str(static_root))
    script = (
        "from django.test import Client; c = Client(); "
        f"kw = dict(HTTP_HOST='{PRODUCTION_HOST}', secure=True); "
        f"print(c.get('{STAND_IN_URL}', **kw).status_code, "
        "c.post('/local-stripe/v1/payment_intents/pi_x/confirm', {'number': '4242'}, "
        "**kw).status_code)"
    )

    result = run_manage("shell", "-c", script, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "404 404", result.stdout
