"""record_history: one entry per change of an order's money or status, with its actor."""

from decimal import Decimal

import pytest

from backoffice.models import Order, OrderHistoryEntry
from backoffice.services.history import CHECKOUT, STRIPE, record_history

pytestmark = pytest.mark.django_db


def test_a_staff_user_is_stored_as_the_actor_and_shown_by_name(make_order, django_user_model):
    clerk = django_user_model.objects.create_user(
        username="mhopper", first_name="Grace", last_name="Hopper", is_staff=True
    )
    order = make_order("100.00")

    record_history(order, actor=clerk, action=OrderHistoryEntry.Action.MANUAL_PAYMENT)

    entry = OrderHistoryEntry.objects.get(order=order)
    assert entry.actor == clerk
    assert entry.actor_label == ""
    assert entry.actor_name == "Grace Hopper"


def test_a_user_without_a_full_name_is_shown_by_username(make_order, staff_user):
    entry = record_history(make_order(), actor=staff_user, action=OrderHistoryEntry.Action.COMP)

    assert OrderHistoryEntry.objects.get(pk=entry.pk).actor_name == "clerk"


@pytest.mark.parametrize("label", [STRIPE, CHECKOUT, "send_order_paid"])
def test_a_label_is_stored_when_no_user_acted(make_order, label):
    order = make_order()

    record_history(order, actor=label, action=OrderHistoryEntry.Action.CARD_PAYMENT)

    entry = OrderHistoryEntry.objects.get(order=order)
    assert entry.actor is None
    assert entry.actor_label == label
    assert entry.actor_name == label


def test_status_after_defaults_to_the_orders_status(make_order):
    order = make_order("10.00", status=Order.Status.PAID)

    record_history(
        order,
        actor=STRIPE,
        action=OrderHistoryEntry.Action.CARD_PAYMENT,
        status_before=Order.Status.PENDING,
    )

    entry = OrderHistoryEntry.objects.get(order=order)
    assert (entry.status_before, entry.status_after) == (Order.Status.PENDING, Order.Status.PAID)


def test_an_explicit_status_after_is_kept(make_order):
    order = make_order("10.00")

    record_history(
        order,
        actor=STRIPE,
        action=OrderHistoryEntry.Action.REFUND,
        status_before=Order.Status.PAID,
        status_after=Order.Status.REFUNDED,
    )

    assert OrderHistoryEntry.objects.get(order=order).status_after == Order.Status.REFUNDED


def test_amount_and_message_are_stored(make_order):
    order = make_order("100.00")

    record_history(
        order,
        actor=CHECKOUT,
        action=OrderHistoryEntry.Action.CARD_PAYMENT,
        amount=Decimal("42.50"),
        message="Card payment started",
    )
    record_history(order, actor=CHECKOUT, action=OrderHistoryEntry.Action.PAYMENT_LINK)

    first, second = OrderHistoryEntry.objects.filter(order=order)
    assert first.amount == Decimal("42.50")
    assert first.message == "Card payment started"
    assert second.amount is None
    assert second.message == ""
