"""Migration 0003 encrypts the plain Stripe secrets already in the database, and back."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from backoffice.encryption import decrypt

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("backoffice", "0002_import_cache_table")]
AFTER = [("backoffice", "0003_encrypt_stripe_secrets")]


def migrate(targets: list[tuple[str, str]]):
    """Migrate the test database to the targets and return the historical app registry."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def raw_secrets() -> list[tuple[str, str]]:
    """The secret columns as stored."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stripe_secret_key, stripe_webhook_secret FROM backoffice_conference "
            "ORDER BY slug"
        )
        return cursor.fetchall()


def test_migration_encrypts_existing_rows_and_reverses() -> None:
    old_apps = migrate(BEFORE)
    Conference = old_apps.get_model("backoffice", "Conference")
    Conference.objects.create(
        name="Old", slug="a-old", stripe_secret_key="sk_test_old1234", stripe_webhook_secret=""
    )
    Conference.objects.create(
        name="Older", slug="b-older", stripe_secret_key="", stripe_webhook_secret="whsec_old"
    )
    try:
        migrate(AFTER)
        (key_a, hook_a), (key_b, hook_b) = raw_secrets()
        assert decrypt(key_a) == "sk_test_old1234" and hook_a == ""
        assert key_b == "" and decrypt(hook_b) == "whsec_old"

        migrate(BEFORE)
        assert raw_secrets() == [("sk_test_old1234", ""), ("", "whsec_old")]
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
