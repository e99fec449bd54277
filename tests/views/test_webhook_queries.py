"""One webhook event costs a fixed, small number of queries (issue 13 asks for at most 8)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backoffice.models import Order, OrderHistoryEntry, Payment, StripeEvent
from backoffice.services.payment import PaymentService
from tests.stripe_fixtures import build_event, post_event

# A real transaction, as in production: the test's own would add savepoints to the count.
pytestmark = pytest.mark.django_db(transaction=True)

#: One event, from the first query to the response: the issue's budget of 8 on PostgreSQL,
#: where the order's UPDATE, both totals upserts and the payments' counted state are one
#: statement (services/ledger_totals.py save_counted). SQLite has no data-modifying CTEs:
#: those are four statements there, and it has no time limits to set.
MOST_QUERIES_PER_EVENT = 8 if connection.vendor == "postgresql" else 11
#: Statements that open or close the transaction rather than read or write.
TRANSACTION_CONTROL = {"BEGIN", "BEGIN IMMEDIATE", "COMMIT"}


@pytest.fixture
def paid_intent(stripe_conference, make_order, localstripe):
    """A pending order whose intent localstripe has just confirmed; returns (order, intent)."""
    order = make_order("100.00", conference=stripe_conference)
    intent_id = PaymentService.initiate_payment(order).split("_secret_")[0]
    return order, localstripe.confirm_payment_intent(intent_id)


def test_a_succeeded_event_for_a_pending_order_takes_a_fixed_small_number_of_queries(
    client, stripe_conference, paid_intent
):
    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)

    with CaptureQueriesContext(connection) as queries:
        response = post_event(client, stripe_conference, event)

    assert response.status_code == 200, response.content
    statements = [q["sql"] for q in queries.captured_queries]
    work = [sql for sql in statements if sql not in TRANSACTION_CONTROL]
    assert len(work) <= MOST_QUERIES_PER_EVENT, [sql[:120] for sql in work]
    # One transaction (its BEGIN and COMMIT, as far as Django logs them).
    assert len(statements) - len(work) <= 2
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert Payment.objects.get(order=order).status == Payment.Status.SUCCEEDED
    assert StripeEvent.objects.get(stripe_event_id=event["id"]).processed_at is not None
    assert OrderHistoryEntry.objects.filter(
        order=order, action=OrderHistoryEntry.Action.CARD_PAYMENT
    ).exists()


def test_a_duplicate_delivery_changes_nothing_more(client, stripe_conference, paid_intent):
    """The second delivery of an event goes the general way and only acknowledges it."""
    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)
    assert post_event(client, stripe_conference, event).status_code == 200

    response = post_event(client, stripe_conference, event)

    assert response.status_code == 200
    assert StripeEvent.objects.filter(stripe_event_id=event["id"]).count() == 1
    assert (
        OrderHistoryEntry.objects.filter(
            order=order, action=OrderHistoryEntry.Action.CARD_PAYMENT
        ).count()
        == 1
    )


def test_the_stored_event_is_linked_to_its_order(client, stripe_conference, paid_intent):
    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)

    post_event(client, stripe_conference, event)

    assert StripeEvent.objects.get(stripe_event_id=event["id"]).order_id == order.pk
