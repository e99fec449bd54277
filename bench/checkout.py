"""Checkout: ``initiate_payment`` against a local Stripe (localstripe), on the bench database.

``measure_checkout(db_name, calls=)`` runs inside a Django process already pointed
at ``db_name``, starts localstripe (``tests/stripe_fixtures.py``), gives the
conferences its test keys, and times ``initiate_payment`` on pending orders that
have no open card attempt (each call creates a PaymentIntent and stores the
attempt). Returns one row ``{"what", "median_ms", "queries", "slowest_sql_ms",
"cpu_ms"}``; the time includes localstripe's answer, the CPU is this process and
its PostgreSQL backend only.
"""

import tempfile
from pathlib import Path

from page_timing import time_call


def payable_orders(count: int) -> list:
    """Pending orders with nothing received and no open attempt: each starts a new attempt."""
    from backoffice.models import Order, Payment

    busy = (
        Payment.Status.PENDING,
        Payment.Status.PROCESSING,
        Payment.Status.SUCCEEDED,
        Payment.Status.REFUNDED,
    )
    return list(
        Order.objects.filter(status=Order.Status.PENDING, total__gt=0)
        .exclude(payments__status__in=busy)
        .select_related("conference")
        .order_by("pk")[:count]
    )


def measure_checkout(db_name: str, *, calls: int = 10) -> list[dict]:
    """Median time, queries and CPU of one ``initiate_payment`` call at localstripe."""
    from django.db import connection
    from django.test import override_settings

    from backoffice.models import Conference
    from backoffice.services.payment import PaymentService
    from tests.stripe_fixtures import TEST_PUBLISHABLE_KEY, TEST_SECRET_KEY, start_localstripe

    assert connection.settings_dict["NAME"] == db_name, connection.settings_dict["NAME"]
    # Written without reading the old keys (a reused database may hold another run's).
    Conference.objects.update(
        stripe_secret_key=TEST_SECRET_KEY, stripe_publishable_key=TEST_PUBLISHABLE_KEY
    )
    orders = iter(payable_orders(calls + 1))

    def initiate() -> None:
        PaymentService.initiate_payment(next(orders))

    with (
        tempfile.TemporaryDirectory() as tmp,
        start_localstripe(Path(tmp)) as stripe,
        override_settings(STRIPE_API_BASE=stripe.url, STRIPE_MAX_NETWORK_RETRIES=0),
    ):
        return [time_call("Checkout: initiate_payment (localstripe)", initiate, runs=calls)]
