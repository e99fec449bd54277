"""Migration 0018: trigram indexes for substring search on PostgreSQL, nothing on SQLite."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from backoffice.models import Order
from backoffice.services.search import search_orders_text

TRIGRAM_INDEXES = {
    "order_reference_trgm",
    "order_billing_name_trgm",
    "order_billing_email_trgm",
    "payment_reference_trgm",
    "backoffice_user_email_trgm",
    "backoffice_user_first_name_trgm",
    "backoffice_user_last_name_trgm",
}
BEFORE = [("backoffice", "0018_attention_count_indexes")]
AFTER = [("backoffice", "0019_search_trigram_indexes")]


def index_names() -> set[str]:
    """Every index of the order, payment and user tables."""
    with connection.cursor() as cursor:
        tables = ["backoffice_order", "backoffice_payment", "auth_user"]
        constraints = {}
        for table in tables:
            constraints |= connection.introspection.get_constraints(cursor, table)
    return {name for name, spec in constraints.items() if spec["index"]}


def migrate(targets: list[tuple[str, str]]) -> None:
    """Migrate the test database to the targets."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_the_migration_runs_both_ways_on_either_database():
    try:
        migrate(BEFORE)
        assert not index_names() & TRIGRAM_INDEXES
    finally:
        migrate(AFTER)
    expected = TRIGRAM_INDEXES if connection.vendor == "postgresql" else set()
    assert index_names() & TRIGRAM_INDEXES == expected


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_orders_substring_search_uses_the_trigram_indexes(make_order):
    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes exist on PostgreSQL only")
    make_order(billing_name="Ada Lovelace")
    sql, params = search_orders_text(Order.objects.all(), "lovelace").query.sql_with_params()
    with connection.cursor() as cursor:
        # A handful of rows: without this the planner rightly prefers reading the table.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    for index in ("order_billing_name_trgm", "order_billing_email_trgm", "order_reference_trgm"):
        assert index in plan
    assert "backoffice_user_email_trgm" in plan
