"""Data migrations: 0003 encrypts the stored Stripe secrets; 0006 marks sold orders notified;
0008 gives orders sold before the history began a timeline reconstructed from their payments;
0009 itemises refunds and sets manual payments' channel."""

import importlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

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


HISTORY_BEGAN = [("backoffice", "0007_order_history")]
BACKFILLED = [("backoffice", "0008_backfill_order_history")]
RECONSTRUCTED = "Reconstructed from the ledger when the history began"
LONG_AGO = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def old_order(apps, reference: str):
    """An order as it stood before the history began (built with the historical models)."""
    User = apps.get_model("auth", "User")
    Conference = apps.get_model("backoffice", "Conference")
    Order = apps.get_model("backoffice", "Order")
    user, _ = User.objects.get_or_create(username="old-attendee")
    conference, _ = Conference.objects.get_or_create(name="Old", slug="old")
    return Order.objects.create(
        conference=conference, user=user, reference=reference, payment_token=reference
    )


def old_payment(apps, order, minutes: int, amount: str, method: str, status: str, **fields):
    """A ledger row recorded ``minutes`` after LONG_AGO (created_at is set after the insert)."""
    Payment = apps.get_model("backoffice", "Payment")
    payment = Payment.objects.create(
        order=order, amount=Decimal(amount), method=method, status=status, **fields
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=LONG_AGO + timedelta(minutes=minutes))
    return payment


def history(apps) -> list[tuple]:
    """Entries as (order, minutes after LONG_AGO, actor, label, action, amount, message)."""
    Entry = apps.get_model("backoffice", "OrderHistoryEntry")
    return [
        (
            entry.order.reference,
            (entry.created_at - LONG_AGO) / timedelta(minutes=1),
            entry.actor.username if entry.actor_id else None,
            entry.actor_label,
            entry.action,
            entry.amount,
            entry.message,
        )
        for entry in Entry.objects.select_related("order", "actor").order_by(
            "order__reference", "id"
        )
    ]


def test_orders_sold_before_the_history_get_a_timeline_from_their_payments_and_it_reverses() -> (
    None
):
    old_apps = migrate(HISTORY_BEGAN)
    clerk = old_apps.get_model("auth", "User").objects.create(username="clerk")
    card = old_order(old_apps, "ORD-CARD")
    old_payment(old_apps, card, 1, "50.00", "stripe", "failed", stripe_payment_intent_id="pi_1")
    old_payment(old_apps, card, 2, "50.00", "stripe", "succeeded", stripe_payment_intent_id="pi_2")
    old_payment(old_apps, card, 3, "50.00", "stripe", "pending", stripe_payment_intent_id="pi_3")
    old_payment(old_apps, card, 4, "50.00", "stripe", "canceled", stripe_payment_intent_id="pi_4")
    desk = old_order(old_apps, "ORD-DESK")
    old_payment(old_apps, desk, 5, "30.00", "manual", "succeeded", created_by=clerk)
    old_payment(
        old_apps, desk, 6, "20.00", "manual", "succeeded", created_by=clerk, refunded_amount=5
    )
    old_payment(old_apps, desk, 7, "10.00", "stripe", "refunded", refunded_amount=10)
    old_payment(old_apps, old_order(old_apps, "ORD-FREE"), 8, "0.00", "comp", "succeeded")
    # An order whose history had begun (the services wrote an entry): left as it is.
    begun = old_order(old_apps, "ORD-LIVE")
    old_payment(old_apps, begun, 9, "15.00", "manual", "succeeded", created_by=clerk)
    Entry = old_apps.get_model("backoffice", "OrderHistoryEntry")
    real = Entry.objects.create(
        order=begun, actor=clerk, action="manual_payment", amount=Decimal("15.00"), message="live"
    )
    Entry.objects.filter(pk=real.pk).update(created_at=LONG_AGO + timedelta(minutes=9))
    live = ("ORD-LIVE", 9, "clerk", "", "manual_payment", Decimal("15.00"), "live")
    try:
        new_apps = migrate(BACKFILLED)
        assert history(new_apps) == [
            (
                "ORD-CARD",
                1,
                None,
                "Stripe",
                "card_payment",
                Decimal("50.00"),
                f"{RECONSTRUCTED}; this payment failed.",
            ),
            ("ORD-CARD", 2, None, "Stripe", "card_payment", Decimal("50.00"), f"{RECONSTRUCTED}."),
            ("ORD-DESK", 5, "clerk", "", "manual_payment", Decimal("30.00"), f"{RECONSTRUCTED}."),
            (
                "ORD-DESK",
                6,
                "clerk",
                "",
                "manual_payment",
                Decimal("20.00"),
                f"{RECONSTRUCTED}; partly refunded since.",
            ),
            (
                "ORD-DESK",
                7,
                None,
                "Stripe",
                "card_payment",
                Decimal("10.00"),
                f"{RECONSTRUCTED}; refunded in full since.",
            ),
            ("ORD-FREE", 8, None, "", "comp", Decimal("0.00"), f"{RECONSTRUCTED}."),
            live,
        ]

        assert history(migrate(HISTORY_BEGAN)) == [live]  # reversed: only the real entry is left
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_backfill_inserts_in_batches_without_a_query_per_payment(monkeypatch) -> None:
    backfill = importlib.import_module("backoffice.migrations.0008_backfill_order_history")
    monkeypatch.setattr(backfill, "BATCH_SIZE", 2)
    old_apps = migrate(HISTORY_BEGAN)
    order = old_order(old_apps, "ORD-MANY")
    for minute in range(5):
        old_payment(old_apps, order, minute, "1.00", "manual", "succeeded")
    try:
        with CaptureQueriesContext(connection) as queries:
            new_apps = migrate(BACKFILLED)
        inserts = [
            q["sql"]
            for q in queries
            if q["sql"].startswith('INSERT INTO "backoffice_orderhistoryentry"')
        ]
        assert len(inserts) == 3  # 5 payments in batches of 2
        assert [row[1] for row in history(new_apps)] == [0, 1, 2, 3, 4]
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_0009_itemises_past_refunds_and_sets_manual_channels() -> None:
    old_apps = migrate(BACKFILLED)
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
        new_apps = migrate([("backoffice", "0009_refunds_and_payment_channel")])
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


def test_0018_fills_the_totals_from_the_ledger_as_it_stands() -> None:
    old_apps = migrate([("backoffice", "0019_search_trigram_indexes")])
    User = old_apps.get_model("auth", "User")
    Conference = old_apps.get_model("backoffice", "Conference")
    Order = old_apps.get_model("backoffice", "Order")
    Payment = old_apps.get_model("backoffice", "Payment")
    user = User.objects.create(username="old-attendee")
    conference = Conference.objects.create(name="Old", slug="old", currency="USD")
    pending = Order.objects.create(
        conference=conference, user=user, reference="ORD-OLD1", payment_token="t1", total=300
    )
    Order.objects.create(
        conference=conference,
        user=user,
        reference="ORD-OLD2",
        payment_token="t2",
        total=50,
        status="paid",
    )
    for method, status, amount, refunded in [
        ("stripe", "succeeded", "100.00", "40.00"),
        ("stripe", "refunded", "60.00", "60.00"),
        ("manual", "succeeded", "50.00", "0.00"),
        ("stripe", "failed", "999.00", "0.00"),
    ]:
        Payment.objects.create(
            order=pending, method=method, status=status, amount=amount, refunded_amount=refunded
        )
    try:
        new_apps = migrate([("backoffice", "0020_ledger_totals")])
        LedgerTotal = new_apps.get_model("backoffice", "LedgerTotal")
        OrderTotal = new_apps.get_model("backoffice", "OrderTotal")
        by_method = {
            row.method: (row.payments, row.collected, row.refunded)
            for row in LedgerTotal.objects.all()
        }
        assert by_method == {
            "stripe": (2, Decimal("160.00"), Decimal("100.00")),
            "manual": (1, Decimal("50.00"), Decimal("0.00")),
        }
        orders = {row.status: (row.orders, row.balance) for row in OrderTotal.objects.all()}
        assert orders == {"pending": (1, Decimal("190.00")), "paid": (1, Decimal("0.00"))}
        NewPayment = new_apps.get_model("backoffice", "Payment")
        counted = NewPayment.objects.values_list("status", "counted_collected", "counted_refunded")
        assert sorted(counted, key=str) == sorted(
            [
                ("succeeded", Decimal("100.00"), Decimal("40.00")),
                ("refunded", Decimal("60.00"), Decimal("60.00")),
                ("succeeded", Decimal("50.00"), Decimal("0.00")),
                ("failed", None, Decimal("0.00")),
            ],
            key=str,
        )
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
