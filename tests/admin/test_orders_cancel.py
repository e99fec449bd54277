"""Cancelling orders in the admin: the order page's dialog, the bulk action, the hold filter."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from backoffice.models import Order, OrderHistoryEntry
from backoffice.services.payment import PaymentService
from tests.ledger_factories import make_staff

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:backoffice_order_changelist"
NBSP = "\u00a0"


def change_url(order: Order) -> str:
    return reverse("admin:backoffice_order_change", args=[order.pk])


def cancel_url(order: Order) -> str:
    return reverse("admin:backoffice_order_cancel_order", args=[order.pk])


def text_of(response) -> str:
    return response.content.decode().replace(NBSP, " ")


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def canceller(db):
    """Staff who may see orders and cancel them (as in the Front desk and Finance groups)."""
    return make_staff("canceller", "backoffice.view_order", "backoffice.cancel_order")


@pytest.fixture
def cancel_client(canceller) -> Client:
    return client_for(canceller)


def bulk_cancel(client: Client, orders: list[Order], reason: str | None = None):
    """Choose "Cancel orders" on the list; with a reason, submit the reason page too."""
    data = {"action": "cancel_selected", "_selected_action": [o.pk for o in orders]}
    if reason is not None:
        data |= {"_form_submitted": "True", "reason": reason}
    return client.post(reverse(CHANGELIST), data, follow=True)


# --- The order page's dialog -----------------------------------------------------------


def test_cancel_dialog_cancels_the_order_with_the_reason(cancel_client, canceller, make_order):
    order = make_order("100.00", billing_name="Grace Hopper")

    page = text_of(cancel_client.get(change_url(order)))
    dialog = cancel_client.get(cancel_url(order), headers={"HX-Request": "true"})
    response = cancel_client.post(
        cancel_url(order), {"_form_submitted": "True", "reason": "Hold expired"}
    )

    assert cancel_url(order) in page
    assert dialog.status_code == 200
    assert "Grace Hopper" in text_of(dialog) and 'name="reason"' in text_of(dialog)
    assert response.status_code == 302
    assert response["Location"] == change_url(order)
    assert f"{order.reference} was cancelled." in messages_of(response)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    entry = OrderHistoryEntry.objects.get(order=order)
    assert (entry.action, entry.actor, entry.message) == (
        OrderHistoryEntry.Action.CANCEL,
        canceller,
        "Hold expired",
    )
    log = LogEntry.objects.get(object_id=str(order.pk))
    assert (log.user, log.action_flag) == (canceller, CHANGE)
    assert "Hold expired" in log.change_message


def test_cancel_dialog_needs_a_reason(cancel_client, make_order):
    order = make_order("100.00")

    response = cancel_client.post(cancel_url(order), {"_form_submitted": "True", "reason": " "})

    assert response.status_code == 200
    assert "This field is required." in text_of(response)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_cancel_dialog_shows_the_refusal_of_an_order_holding_money(
    cancel_client, make_order, staff_user
):
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("50.00"), staff_user=staff_user)

    response = cancel_client.post(
        cancel_url(order), {"_form_submitted": "True", "reason": "No show"}
    )

    assert response.status_code == 200
    assert f"{order.reference} holds 50.00 USD; refund it first." in text_of(response)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert not LogEntry.objects.exists()


def test_the_cancel_button_shows_only_where_cancel_applies(cancel_client, make_order, staff_user):
    pending = make_order("100.00")
    paid = make_order("100.00")
    PaymentService.record_manual(paid, amount=Decimal("100.00"), staff_user=staff_user)

    assert cancel_url(pending) in text_of(cancel_client.get(change_url(pending)))
    assert cancel_url(paid) not in text_of(cancel_client.get(change_url(paid)))


# --- Permissions -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_cancel_dialog_without_cancel_order_is_forbidden(viewer_client, make_order, method):
    order = make_order("100.00")
    data = {"_form_submitted": "True", "reason": "No show"} if method == "post" else None

    response = getattr(viewer_client, method)(cancel_url(order), data)

    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert cancel_url(order) not in text_of(viewer_client.get(change_url(order)))


@pytest.mark.parametrize("method", ["get", "post"])
def test_cancel_dialog_without_view_order_is_forbidden(make_order, method):
    order = make_order("100.00", billing_name="Secret Attendee")
    client = client_for(make_staff("only-cancel", "backoffice.cancel_order"))
    data = {"_form_submitted": "True", "reason": "No show"} if method == "post" else None

    response = getattr(client, method)(cancel_url(order), data)

    assert response.status_code == 403
    assert "Secret Attendee" not in text_of(response)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


@pytest.mark.parametrize("reason", [None, "No show"], ids=["open", "submit"])
def test_bulk_cancel_without_cancel_order_is_forbidden(viewer_client, make_order, reason):
    order = make_order("100.00")

    response = bulk_cancel(viewer_client, [order], reason)

    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert "cancel_selected" not in text_of(viewer_client.get(reverse(CHANGELIST)))


# --- The bulk action ---------------------------------------------------------------------


def test_bulk_cancel_asks_for_one_reason_for_the_selection(cancel_client, make_order):
    a, b = make_order("10.00"), make_order("20.00")

    page = bulk_cancel(cancel_client, [a, b])

    assert page.status_code == 200
    html = text_of(page)
    assert "2 orders selected:" in html
    assert a.reference in html and b.reference in html
    assert 'name="reason"' in html
    assert html.count('name="_selected_action"') == 2
    assert Order.objects.filter(status=Order.Status.CANCELLED).count() == 0


def test_bulk_cancel_cancels_each_order_and_says_why_others_were_not(
    cancel_client, canceller, make_order, staff_user
):
    free = [make_order("100.00") for _ in range(3)]
    holding = make_order("100.00")
    PaymentService.record_manual(holding, amount=Decimal("50.00"), staff_user=staff_user)
    paid = make_order("10.00")
    PaymentService.record_manual(paid, amount=Decimal("10.00"), staff_user=staff_user)

    response = bulk_cancel(cancel_client, [*free, holding, paid], "Hold expired")

    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("Cancelled 3 orders. 2 orders were not cancelled:")
    assert f"{holding.reference} holds 50.00 USD; refund it first." in message
    assert f"{paid.reference} is paid; only a pending order with no money" in message
    for order in free:
        order.refresh_from_db()
        assert order.status == Order.Status.CANCELLED
        assert order.history.get().message == "Hold expired"
    holding.refresh_from_db()
    assert holding.status == Order.Status.PENDING
    logged = LogEntry.objects.filter(action_flag=CHANGE, user=canceller)
    assert sorted(int(e.object_id) for e in logged) == sorted(o.pk for o in free)


def test_bulk_cancel_success_message_is_plural_aware(cancel_client, make_order):
    response = bulk_cancel(cancel_client, [make_order("10.00")], "Duplicate")

    assert messages_of(response) == ["Cancelled 1 order."]


def test_bulk_cancel_with_a_blank_reason_shows_the_page_again(cancel_client, make_order):
    order = make_order("10.00")

    response = bulk_cancel(cancel_client, [order], "  ")

    assert "This field is required." in text_of(response)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


# --- Expired holds: the filter, then cancel them all ---------------------------------------


@pytest.fixture
def holds(make_order, staff_user) -> dict[str, Order]:
    now = timezone.now()
    orders = {
        "expired": make_order("10.00", hold_expires_at=now - timedelta(hours=1)),
        "expired_too": make_order("10.00", hold_expires_at=now - timedelta(days=3)),
        "active": make_order("10.00", hold_expires_at=now + timedelta(days=2)),
        "none": make_order("10.00"),
        "paid_late": make_order("10.00", hold_expires_at=now - timedelta(days=1)),
    }
    PaymentService.record_manual(
        orders["paid_late"], amount=Decimal("10.00"), staff_user=staff_user
    )
    return orders


@pytest.mark.parametrize(
    ("state", "expected"),
    [("expired", {"expired", "expired_too"}), ("active", {"active"}), ("none", {"none"})],
)
def test_the_hold_filter_lists_pending_orders_by_their_hold(cancel_client, holds, state, expected):
    html = text_of(cancel_client.get(reverse(CHANGELIST), {"hold": state}))

    assert 'name="hold"' in html  # offered in the filter panel
    shown = {name for name, order in holds.items() if order.reference in html}
    assert shown == expected


def test_cancel_all_expired_holds_across_pages(cancel_client, holds):
    """ "Select all" on the filtered list: Django posts one page's ids and select_across=1."""
    query = "?hold=expired"
    first_page = [holds["expired"]]  # only part of the selection is on the page posted

    page = cancel_client.post(
        reverse(CHANGELIST) + query,
        {
            "action": "cancel_selected",
            "select_across": "1",
            "index": "0",
            "_selected_action": [o.pk for o in first_page],
        },
    )
    assert "2 orders selected:" in text_of(page)
    assert 'name="select_across" value="1"' in text_of(page)

    done = cancel_client.post(
        reverse(CHANGELIST) + query,
        {
            "action": "cancel_selected",
            "select_across": "1",
            "_selected_action": [o.pk for o in first_page],
            "_form_submitted": "True",
            "reason": "Hold expired",
        },
        follow=True,
    )

    assert messages_of(done) == ["Cancelled 2 orders."]
    cancelled = set(Order.objects.filter(status=Order.Status.CANCELLED))
    assert cancelled == {holds["expired"], holds["expired_too"]}
