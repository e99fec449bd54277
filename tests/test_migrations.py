"""Data migrations: 0003 encrypts secrets; 0006 marks sold orders notified; 0008 itemises refunds"""

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


def test_orders_sold_before_0006_are_not_sent_order_paid_again() -> None:
    old_apps = migrate([("backoffice", "0005_stripe_events_per_conference")])
    User = old_apps.get_model("auth", "User")
    Conference = old_apps.get_model("backoffice", "Conference")
    Order = old_apps.get_model("backoffice", "Order")
    user = User.objects.create(username="old-attendee")
    conference = Conference.objects.create(name="Old", slug="old")
    for reference, status in [
        ("ORD-PAID", "paid"),
        ("ORD-PART", "partially_refunded"),
        ("ORD-PEND", "pending"),
        ("ORD-REFD", "refunded"),
    ]:
        Order.objects.create(
            conference=conference,
            user=user,
            reference=reference,
            payment_token=reference,
            status=status,
        )
    try:
        new_apps = migrate([("backoffice", "0006_order_paid_notified_at")])
        notified = dict(
            new_apps.get_model("backoffice", "Order").objects.values_list(
                "reference", "paid_notified_at"
            )
        )
        assert {ref for ref, at in notified.items() if at is not None} == {"ORD-PAID", "ORD-PART"}
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_0008_itemises_past_refunds_and_sets_manual_channels() -> None:
    old_apps = migrate([("backoffice", "0007_order_history")])
    User = old_apps.get_model("auth", "User")
    Conference = old_apps.get_model("backoffice", "Conference")
    Order = old_apps.get_model("backoffice", "Order")
    Payment = old_apps.get_model("backoffice", "Payment")
    user = User.objects.create(username="old-attendee")
    conference = Conference.objects.create(name="Old", slug="old")
    order = Order.objects.create(
        conference=conference, user=user, reference="ORD-OLD1", payment_token="t", total=300
    )
    rows = {
        "stripe-partial": ("stripe", "succeeded", "100.00", "40.00"),
        "stripe-full": ("stripe", "refunded", "100.00", "100.00"),
        "manual-partial": ("manual", "succeeded", "50.00", "5.00"),
        "manual-plain": ("manual", "succeeded", "30.00", "0.00"),
        "comp": ("comp", "succeeded", "0.00", "0.00"),
    }
    for reference, (method, status, amount, refunded) in rows.items():
        Payment.objects.create(
            order=order,
            method=method,
            status=status,
            amount=amount,
            refunded_amount=refunded,
            reference=reference,
        )
    try:
        new_apps = migrate([("backoffice", "0008_refunds_and_payment_channel")])
        NewPayment = new_apps.get_model("backoffice", "Payment")
        Refund = new_apps.get_model("backoffice", "Refund")
        channels = dict(NewPayment.objects.values_list("reference", "channel"))
        assert channels == {
            "stripe-partial": "",
            "stripe-full": "",
            "manual-partial": "other",
            "manual-plain": "other",
            "comp": "",
        }
        refunds = {
            refund.payment.reference: refund for refund in Refund.objects.select_related("payment")
        }
        assert sorted(refunds) == ["manual-partial", "stripe-full", "stripe-partial"]
        for reference, refund in refunds.items():
            # The invariant: refunded_amount == sum of the payment's succeeded refunds.
            assert refund.amount == refund.payment.refunded_amount
            assert refund.status == "succeeded" and refund.reason == "other"
            assert refund.note == "Recorded before refunds were itemised"
            assert refund.created_at == refund.payment.updated_at
            assert refund.channel == ("other" if reference.startswith("manual") else "")
            assert refund.stripe_refund_id == "" and refund.created_by_id is None
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
