"""Refunds as ledger rows; a channel and a double-submit key on payments.

Data, so that what the ledger already holds fits the new rules:

- manual payments recorded before channels existed get the channel "other"
  (nobody knows now whether they were cash or a transfer; Stripe and comp
  payments keep an empty channel);
- a payment already refunded (``refunded_amount`` above zero, set by
  ``charge.refunded`` webhooks) gets one SUCCEEDED ``Refund`` of that amount
  (reason "other", note "Recorded before refunds were itemised", dated when the
  payment last changed), so ``refunded_amount`` equals the sum of its
  succeeded refunds for all data and the payments export, which subtracts
  refund rows, keeps summing to net collected.

Reversing drops the new table and columns, so the data steps have nothing to undo.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

LEGACY_REFUND_NOTE = "Recorded before refunds were itemised"


def set_manual_channel(apps, schema_editor) -> None:  # noqa: ANN001
    """Existing manual payments: channel "other"."""
    Payment = apps.get_model("backoffice", "Payment")
    Payment.objects.filter(method="manual", channel="").update(channel="other")


def itemise_past_refunds(apps, schema_editor) -> None:  # noqa: ANN001
    """One succeeded Refund per already refunded payment, for its ``refunded_amount``."""
    Payment = apps.get_model("backoffice", "Payment")
    Refund = apps.get_model("backoffice", "Refund")
    refunded = Payment.objects.filter(refunded_amount__gt=0).order_by("pk")
    Refund.objects.bulk_create(
        (
            Refund(
                payment_id=payment_id,
                amount=amount,
                status="succeeded",
                reason="other",
                note=LEGACY_REFUND_NOTE,
                channel="other" if method == "manual" else "",
            )
            for payment_id, amount, method in refunded.values_list(
                "pk", "refunded_amount", "method"
            ).iterator(chunk_size=2000)
        ),
        batch_size=2000,
    )
    # auto_now_add stamped them now; date them when their payment last changed instead.
    Refund.objects.filter(note=LEGACY_REFUND_NOTE).update(
        created_at=Subquery(
            Payment.objects.filter(pk=OuterRef("payment_id")).values("updated_at")[:1]
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0008_backfill_order_history"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Refund",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("amount", models.DecimalField(decimal_places=2, max_digits=12)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("canceled", "Canceled"),
                        ],
                        default="pending",
                        max_length=12,
                    ),
                ),
                (
                    "reason",
                    models.CharField(
                        choices=[
                            ("requested_by_customer", "Requested by customer"),
                            ("duplicate", "Duplicate"),
                            ("fraudulent", "Fraudulent"),
                            ("event_cancelled", "Event cancelled"),
                            ("other", "Other"),
                        ],
                        default="other",
                        max_length=24,
                    ),
                ),
                ("note", models.TextField(blank=True)),
                (
                    "channel",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("cash", "Cash"),
                            ("bank_transfer", "Bank transfer"),
                            ("cheque", "Cheque"),
                            ("card_terminal", "Card terminal"),
                            ("other", "Other"),
                        ],
                        help_text="How a manual refund was paid back; empty for Stripe refunds.",
                        max_length=20,
                    ),
                ),
                ("stripe_refund_id", models.CharField(blank=True, max_length=255)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.AlterModelOptions(
            name="order",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("record_manual_payment", "Can record a manual payment"),
                    ("mark_comp", "Can mark an order as complimentary"),
                    ("export_order", "Can export orders"),
                    ("import_order", "Can import orders"),
                    ("cancel_order", "Can cancel an order"),
                ],
            },
        ),
        migrations.AlterModelOptions(
            name="payment",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("export_payment", "Can export payments"),
                    ("refund_payment", "Can refund a payment"),
                ],
            },
        ),
        migrations.AddField(
            model_name="payment",
            name="channel",
            field=models.CharField(
                blank=True,
                choices=[
                    ("cash", "Cash"),
                    ("bank_transfer", "Bank transfer"),
                    ("cheque", "Cheque"),
                    ("card_terminal", "Card terminal"),
                    ("other", "Other"),
                ],
                db_default="",
                default="",
                help_text="How a manual payment was made; empty for Stripe and comp.",
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="payment",
            name="idempotency_key",
            field=models.CharField(
                blank=True, db_default="", default="", editable=False, max_length=64
            ),
        ),
        migrations.AddIndex(
            model_name="payment",
            index=models.Index(
                condition=models.Q(("channel", ""), _negated=True),
                fields=["channel"],
                name="payment_channel_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="payment",
            constraint=models.UniqueConstraint(
                condition=models.Q(("idempotency_key", ""), _negated=True),
                fields=("order", "idempotency_key"),
                name="payment_unique_idempotency_key",
            ),
        ),
        migrations.AddField(
            model_name="refund",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="recorded_refunds",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="refund",
            name="payment",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="refunds",
                to="backoffice.payment",
            ),
        ),
        migrations.AddIndex(
            model_name="refund",
            index=models.Index(fields=["-created_at", "-id"], name="refund_created_idx"),
        ),
        migrations.AddIndex(
            model_name="refund",
            index=models.Index(fields=["payment", "status"], name="refund_payment_status_idx"),
        ),
        migrations.AddIndex(
            model_name="refund",
            index=models.Index(fields=["status", "-created_at"], name="refund_status_created_idx"),
        ),
        migrations.AddIndex(
            model_name="refund",
            index=models.Index(fields=["reason", "-created_at"], name="refund_reason_created_idx"),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.CheckConstraint(
                condition=models.Q(("amount__gt", 0)), name="refund_amount_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.UniqueConstraint(
                condition=models.Q(("stripe_refund_id", ""), _negated=True),
                fields=("stripe_refund_id",),
                name="refund_unique_stripe_id",
            ),
        ),
        migrations.RunPython(set_manual_channel, migrations.RunPython.noop, elidable=True),
        migrations.RunPython(itemise_past_refunds, migrations.RunPython.noop, elidable=True),
    ]
