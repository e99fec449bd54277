"""Give orders sold before the history began a timeline reconstructed from their payments.

One entry per succeeded, refunded or failed payment, dated when the payment was
recorded, by whoever recorded it (or Stripe for a card payment). An order that
already has history entries (written by the services since 0007) is left as it
is: its history has begun. Shipped in the same release as 0007 (the plan), no
order has any yet when this runs. Reversing deletes exactly the reconstructed
entries.
"""

from itertools import batched

from django.db import migrations

RECONSTRUCTED = "Reconstructed from the ledger when the history began"
BATCH_SIZE = 2000

# Frozen copies of the values of this release (a migration never imports app code).
STRIPE = "Stripe"
ACTIONS = {"stripe": "card_payment", "manual": "manual_payment", "comp": "comp"}
PAYMENT_STATUSES = ("succeeded", "refunded", "failed")


def _message(status: str, refunded: bool) -> str:
    """The reconstructed entry's message, saying what became of the payment."""
    if status == "failed":
        return f"{RECONSTRUCTED}; this payment failed."
    if status == "refunded":
        return f"{RECONSTRUCTED}; refunded in full since."
    if refunded:
        return f"{RECONSTRUCTED}; partly refunded since."
    return f"{RECONSTRUCTED}."


def backfill_history(apps, schema_editor) -> None:
    """Insert one entry per past payment, in batches, streaming the payments."""
    Payment = apps.get_model("backoffice", "Payment")
    Entry = apps.get_model("backoffice", "OrderHistoryEntry")
    # Read before inserting anything: the query below streams while entries are added.
    # (Empty when this ships with 0007; else the ids of orders whose history has begun.)
    begun = set(Entry.objects.values_list("order_id", flat=True).distinct())
    payments = (
        Payment.objects.filter(status__in=PAYMENT_STATUSES)
        .order_by("pk")
        .values_list(
            "order_id", "created_by_id", "method", "status", "amount", "refunded_amount",
            "created_at",
        )
    )
    entries = (
        Entry(
            order_id=order_id,
            created_at=created_at,
            actor_id=created_by_id,
            actor_label=STRIPE if created_by_id is None and method == "stripe" else "",
            action=ACTIONS.get(method, "other"),
            amount=amount,
            message=_message(status, refunded_amount > 0),
        )
        for order_id, created_by_id, method, status, amount, refunded_amount, created_at in (
            payments.iterator(chunk_size=BATCH_SIZE)
        )
        if order_id not in begun
    )
    created_at = Entry._meta.get_field("created_at")
    created_at.auto_now_add = False  # keep each payment's own date, not the migration's
    try:
        for batch in batched(entries, BATCH_SIZE):
            Entry.objects.bulk_create(batch)
    finally:
        created_at.auto_now_add = True


def delete_reconstructed_history(apps, schema_editor) -> None:
    """Delete the reconstructed entries (one DELETE), keeping every real one."""
    Entry = apps.get_model("backoffice", "OrderHistoryEntry")
    Entry.objects.filter(message__startswith=RECONSTRUCTED).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("backoffice", "0007_order_history"),
    ]

    operations = [
        migrations.RunPython(backfill_history, delete_reconstructed_history),
    ]
