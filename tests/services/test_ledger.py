"""Ledger search: pasted identifiers are matched exactly; free text goes to services/search."""

import pytest

from backoffice.models import Order, Payment
from backoffice.services.ledger import search_orders, search_payments
from tests.ledger_factories import make_payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def payments(make_order, attendee):
    """Three payments on two orders with distinct identifiers."""
    first = make_order(billing_email="Billing@Example.com")
    second = make_order(billing_email="")
    return {
        "stripe": make_payment(
            first, method=Payment.Method.STRIPE, stripe_payment_intent_id="pi_123",
            stripe_charge_id="ch_456",
        ),
        "wire": make_payment(first, reference="WIRE-2026-77"),
        "cash": make_payment(second, reference="CASH-1"),
    }  # fmt: skip


def found(term: str) -> set[int] | None:
    result = search_payments(Payment.objects.all(), term)
    return None if result is None else set(result.values_list("pk", flat=True))


def test_order_reference_finds_the_orders_payments(payments):
    reference = payments["cash"].order.reference
    assert found(reference) == {payments["cash"].pk}
    assert found(f" {reference.lower()} ") == {payments["cash"].pk}


def test_stripe_ids_are_matched_exactly(payments):
    assert found("pi_123") == {payments["stripe"].pk}
    assert found("ch_456") == {payments["stripe"].pk}
    assert found("pi_12") == set()


def test_email_matches_billing_or_account_email_ignoring_case(payments):
    assert found("billing@example.COM") == {payments["stripe"].pk, payments["wire"].pk}
    # the second order has no billing email: the attendee's account email applies
    assert found("ATTENDEE@example.com") == {p.pk for p in payments.values()}


def test_payment_reference_is_matched_ignoring_case(payments):
    assert found("wire-2026-77") == {payments["wire"].pk}


def test_free_text_is_left_to_the_substring_search(payments):
    assert found("WIRE") is None
    assert found("billing@exam") is None
    assert found("two words") is None
    assert found("") is None


def test_orders_are_found_by_pasted_reference_email_or_stripe_id(payments, make_order):
    first, second = payments["stripe"].order, payments["cash"].order
    other = make_order(billing_email="someone@example.org")

    def orders_found(term: str) -> set[int] | None:
        result = search_orders(Order.objects.all(), term)
        return None if result is None else set(result.values_list("pk", flat=True))

    assert orders_found(first.reference.lower()) == {first.pk}
    assert orders_found("pi_123") == {first.pk}
    assert orders_found("ch_456") == {first.pk}
    assert orders_found("BILLING@example.com") == {first.pk}
    # the attendee's account e-mail finds every order they placed
    assert orders_found("attendee@example.com") == {first.pk, second.pk, other.pk}
    assert orders_found("pi_unknown") == set()
    assert orders_found("lovelace") is None
    assert orders_found("two words") is None
