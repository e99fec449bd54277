"""A webhook never waits unbounded for a locked table: it answers 503 and applies on retry."""

import time

import pytest
from django.db import connection
from django.test import Client

from backoffice.models import Conference, Order, Payment, StripeEvent
from backoffice.services.payment import PaymentService
from tests.deploy_env import shared_database_url
from tests.fault_injection import table_locked
from tests.stripe_fixtures import build_event, post_event

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LOCK_TIMEOUT_MS = 300


@pytest.fixture
def paid_intent(stripe_conference, make_order, localstripe, settings):
    """An order whose PaymentIntent localstripe has just confirmed; returns (order, intent)."""
    if connection.vendor != "postgresql":
        pytest.skip("LOCK TABLE and lock_timeout are PostgreSQL features")
    settings.STRIPE_WEBHOOK_LOCK_TIMEOUT_MS = LOCK_TIMEOUT_MS
    order = make_order("100.00", conference=stripe_conference)
    intent_id = PaymentService.initiate_payment(order).split("_secret_")[0]
    return order, localstripe.confirm_payment_intent(intent_id)


@pytest.mark.parametrize("model", [Conference, StripeEvent, Order])
def test_webhook_on_a_locked_table_answers_503_quickly_and_applies_on_retry(
    stripe_conference, paid_intent, model
):
    order, intent = paid_intent
    event = build_event("payment_intent.succeeded", intent)

    with table_locked(shared_database_url(), model._meta.db_table, release_after=10):
        started = time.monotonic()
        busy = post_event(Client(), stripe_conference, event)
        waited = time.monotonic() - started

    assert busy.status_code == 503, busy.content
    assert busy["Retry-After"]
    assert waited < LOCK_TIMEOUT_MS / 1000 * 2 + 2, f"waited {waited:.1f} s for the lock"
    assert not StripeEvent.objects.filter(processed_at__isnull=False).exists()
    assert not Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED).exists()

    assert post_event(Client(), stripe_conference, event).status_code == 200
    assert post_event(Client(), stripe_conference, event).status_code == 200  # a late duplicate

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED).count() == 1
    assert StripeEvent.objects.get(stripe_event_id=event["id"]).processed_at is not None


def test_a_webhook_leaves_no_lock_timeout_on_the_connection(stripe_conference, paid_intent):
    """The bound is for webhooks only: the next request on the same connection waits as usual."""
    order, intent = paid_intent
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        usual = cursor.fetchone()[0]  # DJANGO_DB_LOCK_TIMEOUT_MS, set for every connection

    response = post_event(
        Client(), stripe_conference, build_event("payment_intent.succeeded", intent)
    )
    assert response.status_code == 200

    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == usual
    assert usual != f"{LOCK_TIMEOUT_MS}ms"  # not the webhook's own
