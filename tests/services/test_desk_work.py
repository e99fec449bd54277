"""The desk's work: pending zero-total orders to comp, pending orders with a balance due."""

from decimal import Decimal

import pytest

from backoffice.models import Order
from backoffice.services.desk_work import awaits_comp, desk_work, to_comp, with_balance_due
from backoffice.services.payment import PaymentService

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders(make_order) -> dict[str, Order]:
    """One order in each state the desk's lists tell apart, built through the services."""
    comped = make_order("0.00", billing_email="comped@example.com")
    PaymentService.record_comp(comped)
    part_paid = make_order("100.00", billing_email="part@example.com")
    PaymentService.record_manual(part_paid, amount=Decimal("30.00"))
    paid = make_order("50.00", billing_email="paid@example.com")
    PaymentService.record_manual(paid, amount=Decimal("50.00"))
    cancelled_free = make_order("0.00", billing_email="cancelled@example.com")
    PaymentService.cancel_order(cancelled_free, reason="Duplicate", staff_user=None)
    return {
        "to_comp": make_order("0.00", billing_email="free@example.com"),
        "unpaid": make_order("80.00", billing_email="unpaid@example.com"),
        "part_paid": part_paid,
        "comped": comped,
        "paid": paid,
        "cancelled_free": cancelled_free,
    }


def refs(queryset) -> set[str]:
    """The references of the orders a query finds."""
    return set(queryset.values_list("reference", flat=True))


def test_to_comp_is_the_pending_orders_with_a_total_of_zero(orders):
    assert refs(to_comp()) == {orders["to_comp"].reference}
    assert [name for name, order in orders.items() if awaits_comp(order)] == ["to_comp"]


def test_a_balance_is_due_on_every_pending_order_above_zero_and_no_other(orders):
    found = with_balance_due()

    assert refs(found) == {orders["unpaid"].reference, orders["part_paid"].reference}
    assert all(order.balance_due > 0 for order in found)


def test_the_selectors_narrow_a_given_queryset(orders, jpy_conference, make_order):
    make_order("0.00", conference=jpy_conference, billing_email="jp@example.com")

    usd = Order.objects.filter(conference=orders["to_comp"].conference)

    assert refs(to_comp(usd)) == {orders["to_comp"].reference}
    assert len(refs(to_comp())) == 2


def test_desk_work_counts_every_order_and_shows_the_newest_with_amounts(orders, make_order):
    extra = [make_order("10.00", billing_email=f"e{index}@example.com") for index in range(3)]

    work = desk_work(length=2)

    assert work.to_comp.count == 1
    assert [order.reference for order in work.to_comp.orders] == [orders["to_comp"].reference]
    assert work.balance_due.count == 5
    assert [order.reference for order in work.balance_due.orders] == [
        extra[2].reference,
        extra[1].reference,
    ]
    assert work.balance_due.orders[0].balance_sum == Decimal("10.00")
