"""Free-text search of the admin lists: name and e-mail fragments, every word, any case."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backoffice.models import Dispute, Order, OrderEmail, Payment, Refund, StripeEvent
from backoffice.services.search import (
    search_disputes_text,
    search_order_emails,
    search_orders_text,
    search_payments_text,
    search_refunds_text,
    search_stripe_events,
    search_words,
)
from tests.ledger_factories import make_payment, make_refund

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders(make_order, conference) -> dict[str, Order]:
    """Three orders: billed names and e-mails, and one found only by its account."""
    grace = get_user_model().objects.create_user(
        username="grace", email="grace.hopper@navy.example", first_name="Grace", last_name="Hopper"
    )
    return {
        "ada": make_order(billing_name="Ada Lovelace", billing_email="ada@analytical.example"),
        "alan": make_order(billing_name="Alan Turing", billing_email="alan@bletchley.example"),
        "grace": make_order(user=grace, billing_name="", billing_email=""),
    }


def found(queryset, search, term: str) -> set[int]:
    """Primary keys the search finds."""
    return set(search(queryset, term).values_list("pk", flat=True))


def test_words_split_like_the_admins_search():
    assert search_words('ada "Alan Turing"  x') == ["ada", "Alan Turing", "x"]


def test_name_and_email_fragments_find_orders_in_any_case(orders):
    def orders_found(term: str) -> set[int]:
        return found(Order.objects.all(), search_orders_text, term)

    assert orders_found("lovel") == {orders["ada"].pk}
    assert orders_found("BLETCHLEY") == {orders["alan"].pk}
    # The account's e-mail and names count for an order billed without them.
    assert orders_found("hopper@navy") == {orders["grace"].pk}
    assert orders_found("grac") == {orders["grace"].pk}
    assert orders_found(orders["alan"].reference[-5:].lower()) == {orders["alan"].pk}
    assert orders_found("nobody") == set()


def test_every_word_must_match_and_short_words_narrow_the_rest(orders):
    def orders_found(term: str) -> set[int]:
        return found(Order.objects.all(), search_orders_text, term)

    assert orders_found("alan turing") == {orders["alan"].pk}
    assert orders_found("alan lovelace") == set()
    # A one- or two-letter word (too short for a trigram) still has to match.
    assert orders_found("Lovelace da") == {orders["ada"].pk}
    assert orders_found("Lovelace zz") == set()
    assert orders_found("") == set(Order.objects.values_list("pk", flat=True))


def test_payments_are_found_by_their_orders_text_or_their_reference(orders):
    ada = make_payment(orders["ada"], reference="WIRE-2026-01")
    grace = make_payment(orders["grace"], reference="CASH-7")

    def payments_found(term: str) -> set[int]:
        return found(Payment.objects.all(), search_payments_text, term)

    assert payments_found("analytical") == {ada.pk}
    assert payments_found("hopp") == {grace.pk}
    assert payments_found("wire-2026") == {ada.pk}
    assert payments_found("CASH grace") == {grace.pk}
    assert payments_found("7 grace") == {grace.pk}


def test_refunds_and_disputes_are_found_by_their_orders_text(orders):
    payment = make_payment(orders["alan"], amount="50.00")
    refund = make_refund(payment, note="goodwill gesture")
    dispute = Dispute.objects.create(
        payment=payment, stripe_dispute_id="dp_1", amount=10, status="needs_response",
        reason="fraudulent", created_at=timezone.now(),
    )  # fmt: skip

    assert found(Refund.objects.all(), search_refunds_text, "turing") == {refund.pk}
    assert found(Refund.objects.all(), search_refunds_text, "goodwill") == {refund.pk}
    assert found(Refund.objects.all(), search_refunds_text, "lovelace") == set()
    assert found(Dispute.objects.all(), search_disputes_text, "bletchley") == {dispute.pk}
    assert found(Dispute.objects.all(), search_disputes_text, "fraud") == {dispute.pk}


def test_a_search_is_one_query_however_many_rows_match(orders, make_order):
    def queries_for(term: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            list(search_payments_text(Payment.objects.all(), term))
            list(search_orders_text(Order.objects.all(), term))
        return len(queries)

    for order in orders.values():
        make_payment(order)
    few = queries_for("lovelace")
    for _ in range(5):
        make_payment(make_order(billing_name="Ada Lovelace"))
    assert queries_for("lovelace") == few == 2


def test_pasted_event_ids_and_order_references_take_the_exact_path(orders):
    event = StripeEvent.objects.create(
        stripe_event_id="evt_123", type="charge.refunded", payload={}
    )
    email = OrderEmail.objects.create(
        order=orders["ada"], kind=OrderEmail.Kind.RECEIPT, recipient="ada@analytical.example",
        from_email="desk@example.com", subject="Receipt", text_body="Thanks",
    )  # fmt: skip

    assert list(search_stripe_events(StripeEvent.objects.all(), " evt_123 ")) == [event]
    assert search_stripe_events(StripeEvent.objects.all(), "charge") is None
    reference = orders["ada"].reference
    assert list(search_order_emails(OrderEmail.objects.all(), reference.lower())) == [email]
    assert search_order_emails(OrderEmail.objects.all(), "receipt") is None
