"""Re-sync from Stripe in the orders admin: the order page's button and the bulk action."""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from backoffice.models import Order, OrderHistoryEntry, Payment
from backoffice.services.payment import PaymentService
from tests.ledger_factories import make_staff
from tests.stripe_fixtures import paid_at_stripe

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:backoffice_order_changelist"


def change_url(order: Order) -> str:
    return reverse("admin:backoffice_order_change", args=[order.pk])


def sync_url(order: Order) -> str:
    return reverse("admin:backoffice_order_sync_from_stripe", args=[order.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def history(order: Order) -> list[tuple]:
    return list(
        OrderHistoryEntry.objects.filter(order=order).values_list("id", "action", "actor_label")
    )


@pytest.fixture
def syncer(db):
    """Staff who may see orders and re-sync them (as in the Finance group)."""
    return make_staff("syncer", "backoffice.view_order", "backoffice.sync_stripe")


@pytest.fixture
def sync_client(syncer) -> Client:
    return client_for(syncer)


@pytest.fixture
def unpaid_at_stripe(stripe_conference, make_order, localstripe) -> Order:
    """An order paid by card at Stripe whose webhook never arrived: pending here."""
    order = make_order("100.00", conference=stripe_conference)
    paid_at_stripe(order, localstripe)
    return order


def sync(client: Client, order: Order):
    """Submit the order page's "Re-sync from Stripe" dialog."""
    return client.post(sync_url(order), {"_form_submitted": "True"})


def bulk_sync(client: Client, orders: list[Order]):
    """Choose "Re-sync from Stripe" on the orders list for the given orders."""
    data = {"action": "sync_from_stripe_selected", "_selected_action": [o.pk for o in orders]}
    return client.post(reverse(CHANGELIST), data, follow=True)


# --- The order page ----------------------------------------------------------------


def test_the_button_pays_an_order_whose_webhook_never_arrived(
    sync_client, syncer, unpaid_at_stripe
):
    order = unpaid_at_stripe
    page = sync_client.get(change_url(order)).content.decode()

    response = sync(sync_client, order)

    assert sync_url(order) in page
    assert "Re-sync from Stripe" in page
    assert response.status_code == 302
    assert response["Location"] == change_url(order)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert Payment.objects.get(order=order).status == Payment.Status.SUCCEEDED
    [message] = messages_of(response)
    assert message.startswith(f"{order.reference}: Card payment: Stripe payment pi_")
    assert "(order pending → paid)" in message
    entry = LogEntry.objects.get(object_id=str(order.pk))
    assert entry.user == syncer
    assert "Re-synced from Stripe" in entry.change_message


def test_pressing_it_again_changes_nothing_and_says_all_in_order(sync_client, unpaid_at_stripe):
    order = unpaid_at_stripe
    sync(sync_client, order)
    sync_client.get(change_url(order))  # shows (and so clears) the first message
    before = history(order)

    response = sync(sync_client, order)

    assert response.status_code == 302
    assert history(order) == before
    assert messages_of(response) == [f"{order.reference}: all in order."]


def test_an_order_without_a_stripe_payment_has_no_button(sync_client, make_order):
    order = make_order("100.00")

    page = sync_client.get(change_url(order)).content.decode()

    assert sync_url(order) not in page


def test_stripe_unreachable_is_an_error_in_the_dialog_not_a_500(
    sync_client, unpaid_at_stripe, stripe_unreachable
):
    order = unpaid_at_stripe

    response = sync(sync_client, order)

    assert response.status_code == 200
    assert "Could not reach Stripe" in response.content.decode()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert history(order) == []


@pytest.mark.parametrize("method", ["get", "post"])
def test_desk_staff_without_sync_stripe_get_no_button_and_a_403(
    desk_client, unpaid_at_stripe, method
):
    order = unpaid_at_stripe
    page = desk_client.get(change_url(order)).content.decode()

    response = getattr(desk_client, method)(sync_url(order), {"_form_submitted": "True"})

    assert sync_url(order) not in page
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_sync_stripe_without_view_order_is_a_403(unpaid_at_stripe):
    client = client_for(make_staff("only-sync", "backoffice.sync_stripe"))

    response = sync(client, unpaid_at_stripe)

    assert response.status_code == 403
    unpaid_at_stripe.refresh_from_db()
    assert unpaid_at_stripe.status == Order.Status.PENDING


# --- The bulk action ---------------------------------------------------------------


def test_bulk_resync_pays_each_order_and_reports_each_one(
    sync_client, stripe_conference, make_order, localstripe
):
    first = make_order("100.00", conference=stripe_conference)
    paid_at_stripe(first, localstripe)
    second = make_order("100.00", conference=stripe_conference)
    paid_at_stripe(second, localstripe)
    cash = make_order("100.00", conference=stripe_conference)
    PaymentService.record_manual(cash, amount=Decimal("100.00"))

    response = bulk_sync(sync_client, [first, second, cash])

    assert response.status_code == 200
    for order in (first, second):
        order.refresh_from_db()
        assert order.status == Order.Status.PAID
    [message] = messages_of(response)
    assert message.startswith("Re-synced 2 orders from Stripe: 2 changed, 0 in order.")
    assert f"<li>{first.reference}: Card payment: Stripe payment pi_" in message
    assert f"<li>{second.reference}: Card payment" in message
    assert "1 order could not be re-synced:" in message
    assert f"{cash.reference} has no Stripe payment to re-sync." in message
    assert LogEntry.objects.filter(object_id__in=[str(first.pk), str(second.pk)]).count() == 2


def test_bulk_resync_twice_changes_nothing_the_second_time(
    sync_client, unpaid_at_stripe, stripe_conference, make_order, localstripe
):
    other = make_order("100.00", conference=stripe_conference)
    PaymentService.initiate_payment(other)  # open, not paid: in order
    bulk_sync(sync_client, [unpaid_at_stripe, other])
    before = history(unpaid_at_stripe) + history(other)

    response = bulk_sync(sync_client, [unpaid_at_stripe, other])

    assert history(unpaid_at_stripe) + history(other) == before
    [message] = messages_of(response)
    assert message.startswith("Re-synced 2 orders from Stripe: 0 changed, 2 in order.")
    assert f"<li>{unpaid_at_stripe.reference}: all in order.</li>" in message


def test_bulk_resync_with_stripe_unreachable_is_an_error_message(
    sync_client, stripe_conference, make_order, localstripe, settings, stripe_unreachable
):
    settings.STRIPE_API_BASE = localstripe.url
    orders = [make_order("100.00", conference=stripe_conference) for _ in range(2)]
    for order in orders:
        paid_at_stripe(order, localstripe)
    settings.STRIPE_API_BASE = stripe_unreachable

    response = bulk_sync(sync_client, orders)

    assert response.status_code == 200
    [message] = get_messages(response.wsgi_request)
    assert message.level_tag == "error"
    assert f"{orders[0].reference}: Could not reach Stripe" in message.message
    assert f"{orders[1].reference}: not checked." in message.message
    assert all(
        o.status == Order.Status.PENDING
        for o in Order.objects.filter(pk__in=[o.pk for o in orders])
    )


def test_bulk_resync_without_sync_stripe_is_forbidden(desk_client, unpaid_at_stripe):
    response = bulk_sync(desk_client, [unpaid_at_stripe])

    assert response.status_code == 403
    unpaid_at_stripe.refresh_from_db()
    assert unpaid_at_stripe.status == Order.Status.PENDING
