"""Orders: the order, its line items, retired payment links and history."""

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Upper

from backoffice.models.actors import actor_name
from backoffice.models.conference import Conference
from backoffice.models.payments import MONEY, MONEY_HELD_STATUSES, NET_OF_REFUNDS, ZERO, Payment
from backoffice.money import format_amount

# No 0/O/1/I: references are read aloud at the desk and typed from paper.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERENCE_LENGTH = 8


def generate_order_reference() -> str:
    """Return a random order reference such as 'ORD-7K3QX9TM' (40 bits, unguessable)."""
    return "ORD-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def generate_payment_token() -> str:
    """Return a random URL-safe token for an order's payment link (192 bits)."""
    return secrets.token_urlsafe(24)


class OrderQuerySet(models.QuerySet):
    """Queries over orders."""

    def with_amounts(self) -> "OrderQuerySet":
        """Annotate ``paid_sum`` (net received) and ``balance_sum`` with one subquery per row.

        A correlated subquery on the (order, status) index stays fast on list
        pages at hundreds of thousands of orders, where JOIN + GROUP BY does not.
        """
        paid = (
            Payment.objects.filter(order=OuterRef("pk"), status__in=MONEY_HELD_STATUSES)
            .order_by()
            .values("order")
            .annotate(s=Sum(NET_OF_REFUNDS))
            .values("s")
        )
        return self.annotate(
            paid_sum=Coalesce(
                Subquery(paid), Value(ZERO), output_field=models.DecimalField(**MONEY)
            )
        ).annotate(balance_sum=F("total") - F("paid_sum"))


class Order(models.Model):
    """An attendee's registration order."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        CANCELLED = "cancelled", "Cancelled"
        REFUNDED = "refunded", "Refunded"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"

    conference = models.ForeignKey(Conference, on_delete=models.PROTECT, related_name="orders")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    subtotal = models.DecimalField(**MONEY, default=ZERO)
    discount_amount = models.DecimalField(**MONEY, default=ZERO)
    total = models.DecimalField(**MONEY, default=ZERO)
    reference = models.CharField(max_length=20, unique=True, blank=True, editable=False)
    billing_name = models.CharField(max_length=200, blank=True)
    billing_email = models.EmailField(blank=True)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    payment_token = models.CharField(
        max_length=64, unique=True, default=generate_payment_token, editable=False
    )
    needs_attention = models.BooleanField(
        default=False, help_text="Set when money arrived that staff must look at (overpaid)."
    )
    attention_reason = models.TextField(blank=True)
    paid_notified_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When order_paid was sent for this order; empty while it is due.",
    )
    # What the maintained totals (``OrderTotal``) count for this order: its status
    # and, while pending, its balance; empty until counted. See services/ledger_totals.py.
    counted_status = models.CharField(
        max_length=20, blank=True, default="", db_default="", editable=False
    )
    counted_balance = models.DecimalField(**MONEY, default=ZERO, db_default=ZERO, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="order_created_idx"),
            models.Index(fields=["status", "-created_at"], name="order_status_created_idx"),
            models.Index(fields=["conference", "status"], name="order_conference_status_idx"),
            # The Needs attention count's parts (backoffice/services/attention.py): small sets.
            models.Index(
                fields=["id"], name="order_attention_idx", condition=Q(needs_attention=True)
            ),
            # The desk's two lists and their counts (backoffice/services/desk_work.py):
            # only pending orders are in them, so each count is a short index-only scan.
            models.Index(
                fields=["-created_at", "-id"],
                name="order_to_comp_idx",
                condition=Q(status="pending", total=0),
            ),
            models.Index(
                fields=["-created_at", "-id"],
                name="order_balance_due_idx",
                condition=Q(status="pending", total__gt=0),
            ),
            models.Index(
                fields=["hold_expires_at"],
                name="order_pending_hold_idx",
                condition=Q(status="pending", hold_expires_at__isnull=False),
            ),
            # Substring search (icontains: UPPER(col) LIKE '%TERM%') uses trigram indexes on
            # PostgreSQL, created by migration 0019 outside the model state (SQLite has none).
            # A pasted e-mail (iexact): a trigram index answers equality too, but slowly
            # when every address shares "@example.com"'s trigrams.
            models.Index(Upper("billing_email"), name="order_billing_email_upper_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative"),
            models.CheckConstraint(
                condition=Q(subtotal__gte=0), name="order_subtotal_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(discount_amount__gte=0), name="order_discount_not_negative"
            ),
        ]
        permissions = [
            ("record_manual_payment", "Can record a manual payment"),
            ("mark_comp", "Can mark an order as complimentary"),
            ("export_order", "Can export orders"),
            ("import_order", "Can import orders"),
            ("cancel_order", "Can cancel an order"),
            ("sync_stripe", "Can re-sync an order from Stripe"),
            ("send_payment_link", "Can e-mail an order's payment link"),
        ]

    def __str__(self) -> str:
        return self.reference

    def save(self, *args, **kwargs) -> None:
        """Give a new order a random reference that is not taken yet."""
        if not self.reference:
            reference = generate_order_reference()
            while Order.objects.filter(reference=reference).exists():
                reference = generate_order_reference()
            self.reference = reference
        super().save(*args, **kwargs)

    @property
    def currency(self) -> str:
        """The conference's currency code."""
        return self.conference.currency

    @property
    def email_recipient(self) -> str:
        """Where e-mails to the attendee go: the billing e-mail, else the user's; may be empty."""
        return self.billing_email or self.user.email

    @property
    def amount_paid(self) -> Decimal:
        """Money received net of refunds; uses the ``with_amounts()`` annotation when present."""
        annotated = self.__dict__.get("paid_sum")
        if annotated is not None:
            return annotated
        paid = self.payments.filter(status__in=MONEY_HELD_STATUSES).aggregate(s=Sum(NET_OF_REFUNDS))
        return paid["s"] or ZERO

    @property
    def balance_due(self) -> Decimal:
        """Total minus money received net of refunds, never below zero."""
        return max(self.total - self.amount_paid, ZERO)

    def format(self, amount: Decimal) -> str:
        """Format an amount in this order's currency."""
        return format_amount(amount, self.currency)


class RetiredPaymentLink(models.Model):
    """A payment link replaced by a newer one: enough to tell its holder whom to ask, no more.

    Only a digest of the old token is kept (``services/payment_links.py``); it pays nothing.
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="retired_payment_links")
    token_digest = models.CharField(max_length=64, unique=True)
    retired_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Old payment link of {self.order.reference}"


class OrderLineItem(models.Model):
    """One purchased item of an order."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="line_items")
    description = models.CharField(max_length=255)
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(**MONEY, default=ZERO)
    line_total = models.DecimalField(**MONEY, default=ZERO)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="line_item_unit_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.description}"


class OrderHistoryEntry(models.Model):
    """One change of an order's money or status, with who made it; append-only.

    Written by the services in the same transaction as the change, whoever made
    it: a staff user (``actor``), or Stripe, the checkout or a command
    (``actor_label``). Nobody edits or deletes an entry in the admin.
    """

    class Action(models.TextChoices):
        COMP = "comp", "Marked comp"
        MANUAL_PAYMENT = "manual_payment", "Manual payment"
        CARD_PAYMENT = "card_payment", "Card payment"
        CARD_UPDATE = "card_update", "Card payment update"
        REFUND = "refund", "Refund"
        CANCEL = "cancel", "Cancelled"
        PAYMENT_LINK = "payment_link", "Payment link"
        ATTENTION_RESOLVED = "attention_resolved", "Attention resolved"
        DISPUTE = "dispute", "Dispute"
        DISPUTE_LOST = "dispute_lost", "Dispute lost"
        EMAIL = "email", "E-mail"
        OTHER = "other", "Other"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="history")
    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="order_history_entries",
    )
    actor_label = models.CharField(
        max_length=100, blank=True, help_text="Who acted when not a user: Stripe, checkout, …"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    amount = models.DecimalField(**MONEY, null=True, blank=True)
    status_before = models.CharField(max_length=20, choices=Order.Status.choices, blank=True)
    status_after = models.CharField(max_length=20, choices=Order.Status.choices, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "order history entries"
        indexes = [models.Index(fields=["order", "created_at"], name="history_order_created_idx")]

    def __str__(self) -> str:
        return f"{self.order.reference}: {self.get_action_display()}"

    @property
    def actor_name(self) -> str:
        """Who acted, as shown to staff: the user's name, or the label (Stripe, checkout…)."""
        return actor_name(self.actor if self.actor_id is not None else None, self.actor_label)
