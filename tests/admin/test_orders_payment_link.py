"""The Stripe parts of the orders admin: payment link, regenerating it, the attention filter."""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from backoffice.models import Order, Payment
from backoffice.services.payment import PaymentService

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:backoffice_order_changelist"


def change_url(order: Order) -> str:
    return reverse("admin:backoffice_order_change", args=[order.pk])


def regenerate_url(order: Order) -> str:
    return reverse("admin:backoffice_order_regenerate_payment_link", args=[order.pk])


@pytest.fixture
def changer_client(desk_user) -> Client:
    """Desk staff who may also change orders (and so replace payment links)."""
    desk_user.user_permissions.add(Permission.objects.get(codename="change_order"))
    client = Client()
    client.force_login(desk_user)
    return client


def test_order_page_shows_the_payment_link_with_a_copy_button(desk_client, make_order):
    order = make_order("100.00")

    html = desk_client.get(change_url(order)).content.decode()

    link = reverse("backoffice:pay", args=[order.payment_token])
    assert f'id="payment-link" href="{link}"' in html
    assert 'data-copy-link="payment-link"' in html
    assert "Copy link" in html
    assert "backoffice/copy-link.js" in html


def test_regenerate_payment_link_replaces_the_token_and_logs_it(
    changer_client, desk_user, make_order
):
    order = make_order("100.00")
    old_token = order.payment_token

    page = changer_client.get(change_url(order)).content.decode()
    response = changer_client.post(regenerate_url(order), {"_form_submitted": "True"})

    assert regenerate_url(order) in page
    assert response.status_code == 302
    assert response["Location"] == change_url(order)
    order.refresh_from_db()
    assert order.payment_token != old_token
    assert changer_client.get(reverse("backoffice:pay", args=[old_token])).status_code == 404
    entry = LogEntry.objects.get(object_id=str(order.pk))
    assert entry.user == desk_user
    assert "payment link" in entry.change_message
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("new payment link" in m for m in messages)


def test_regenerate_payment_link_needs_change_permission(desk_client, make_order):
    order = make_order("100.00")
    old_token = order.payment_token

    page = desk_client.get(change_url(order)).content.decode()
    response = desk_client.post(regenerate_url(order), {"_form_submitted": "True"})

    assert regenerate_url(order) not in page
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.payment_token == old_token


def test_needs_attention_filter_lists_flagged_orders(admin_client, make_order):
    flagged = make_order("100.00", needs_attention=True, attention_reason="Overpaid by 10.00 USD")
    calm = make_order("100.00")

    html = admin_client.get(reverse(CHANGELIST), {"attention": "yes"}).content.decode()

    assert flagged.reference in html
    assert calm.reference not in html


def test_payment_history_shows_stripe_intent_and_charge_ids(admin_client, make_order):
    order = make_order("100.00")
    Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        status=Payment.Status.SUCCEEDED,
        amount="100.00",
        stripe_payment_intent_id="pi_shown_123",
        stripe_charge_id="ch_shown_456",
    )

    html = admin_client.get(change_url(order)).content.decode()

    assert "pi_shown_123" in html
    assert "ch_shown_456" in html


def test_conference_page_shows_its_webhook_url(admin_client, stripe_conference):
    html = admin_client.get(
        reverse("admin:backoffice_conference_change", args=[stripe_conference.pk])
    ).content.decode()

    assert reverse("backoffice:stripe_webhook", args=["stripecon"]) in html
    assert 'data-copy-link="webhook-url"' in html


def test_a_paid_orders_page_offers_no_new_payment_link(changer_client, make_order):
    """The button follows ``allowed_actions``; a crafted POST gets the service's refusal."""
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("100.00"))
    old_token = order.payment_token

    page = changer_client.get(change_url(order)).content.decode()
    response = changer_client.post(regenerate_url(order), {"_form_submitted": "True"})

    assert regenerate_url(order) not in page
    assert "only a pending order&#x27;s payment link can be replaced" in response.content.decode()
    order.refresh_from_db()
    assert order.payment_token == old_token
