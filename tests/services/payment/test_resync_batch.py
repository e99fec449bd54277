"""Re-syncing many orders (``resync_orders``): one order's trouble never stops the others."""

import pytest
from django.db import connection

from backoffice.models import Order
from backoffice.services.payment.resync_batch import resync_orders
from tests.deploy_env import shared_database_url
from tests.fault_injection import table_locked
from tests.stripe_fixtures import paid_at_stripe


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # another connection must be able to lock the table
def test_an_order_locked_past_the_lock_timeout_is_an_error_and_the_next_run_repairs_it(
    stripe_conference, make_order, localstripe
):
    if connection.vendor != "postgresql":
        pytest.skip("LOCK TABLE and lock_timeout are PostgreSQL features")
    order = make_order("100.00", conference=stripe_conference)
    paid_at_stripe(order, localstripe)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '200ms'")  # this connection, until reset below

    with table_locked(shared_database_url(), Order._meta.db_table, release_after=10):
        busy = resync_orders([order])

    assert busy.checked == 1
    assert busy.errors == [
        f"{order.reference}: not checked now: the database is busy (LockNotAvailable); "
        "the next run tries again."
    ]
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")

    later = resync_orders([order])

    assert later.errors == []
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
