"""The ledger: payments, their refunds and disputes, and the money expressions over them."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper

from backoffice.models.actors import STRIPE_ACTOR, user_name

MONEY = {"max_digits": 12, "decimal_places": 2}
ZERO = Decimal("0.00")

# What left a payment again: its succeeded refunds and its lost disputes (chargebacks).
# A lost dispute counts as money out exactly like a refund of its amount.
MONEY_OUT = F("refunded_amount") + F("lost_dispute_amount")

# Money received on an order: the sum of (amount - refunded - lost to disputes)
# over its SUCCEEDED and REFUNDED payments (``MONEY_HELD_STATUSES``, on the
# (order, status) index). A REFUNDED payment was refunded in full, so it adds
# nothing, unless a dispute was also lost on it: then the money was given back
# twice and the sum says so (the ledger flags the order). This matches the finance
# dashboard, where revenue is "succeeded minus refunded minus lost disputes".
# Every read of money received uses this one expression over those statuses.
NET_OF_REFUNDS = F("amount") - MONEY_OUT


class Payment(models.Model):
    """One payment attempt or record against an order; a ledger row never edited by staff."""

    class Method(models.TextChoices):
        STRIPE = "stripe", "Stripe"
        COMP = "comp", "Complimentary"
        MANUAL = "manual", "Manual"

    class Channel(models.TextChoices):
        """How money changed hands outside Stripe (manual payments and manual refunds)."""

        CASH = "cash", "Cash"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        CHEQUE = "cheque", "Cheque"
        CARD_TERMINAL = "card_terminal", "Card terminal"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"
        REFUNDED = "refunded", "Refunded"

    order = models.ForeignKey("backoffice.Order", on_delete=models.PROTECT, related_name="payments")
    method = models.CharField(max_length=10, choices=Method.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    amount = models.DecimalField(**MONEY)
    # Always the sum of this payment's SUCCEEDED refunds (``Refund`` rows).
    refunded_amount = models.DecimalField(**MONEY, default=ZERO)
    # Always the sum of this payment's LOST disputes (``Dispute`` rows): money out, like a refund.
    # db_default: rows inserted by SQL written before this column stay valid.
    lost_dispute_amount = models.DecimalField(
        **MONEY, default=ZERO, db_default=ZERO, editable=False
    )
    # db_default too: rows inserted by SQL written before these columns (bulk loads, bench)
    # stay valid; default keeps the Python value a plain string.
    channel = models.CharField(
        max_length=20,
        choices=Channel.choices,
        blank=True,
        default="",
        db_default="",
        help_text="How a manual payment was made; empty for Stripe and comp.",
    )
    # A form's one-time key: the same key twice on one order records one payment.
    idempotency_key = models.CharField(
        max_length=64, blank=True, default="", db_default="", editable=False
    )
    # What the maintained totals (``LedgerTotal``) count for this payment: NULL while
    # it is not collected, else its amount and what went back of it. See services/ledger_totals.py.
    counted_collected = models.DecimalField(**MONEY, null=True, blank=True, editable=False)
    counted_refunded = models.DecimalField(**MONEY, default=ZERO, db_default=ZERO, editable=False)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True)
    stripe_checked_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When a re-sync last asked Stripe about this payment's intent.",
    )
    reference = models.CharField(max_length=255, blank=True)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="recorded_payments",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["order", "status"], name="payment_order_status_idx"),
            models.Index(fields=["-created_at", "-id"], name="payment_created_idx"),
            models.Index(fields=["method", "status"], name="payment_method_status_idx"),
            models.Index(fields=["channel"], name="payment_channel_idx", condition=~Q(channel="")),
            # A form's key reused on another order is refused: found without a scan.
            models.Index(
                fields=["idempotency_key"],
                name="payment_idempotency_key_idx",
                condition=~Q(idempotency_key=""),
            ),
            # Finance pastes charge ids and payment references into the ledger's search;
            # charge.refunded events without an intent id are matched on the charge.
            models.Index(
                fields=["stripe_charge_id"],
                name="payment_charge_idx",
                condition=~Q(stripe_charge_id=""),
            ),
            models.Index(Upper("reference"), name="payment_reference_upper_idx"),
            # Needs attention's stale card attempts: open ones untouched for a while, read
            # by age from this index alone (not by filtering every open attempt). The order
            # is a key column, not INCLUDEd: SQLite has no covering indexes (models.W040).
            models.Index(
                fields=["updated_at", "stripe_checked_at", "order"],
                name="payment_open_stripe_idx",
                condition=Q(method="stripe", status__in=["pending", "processing"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="payment_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="payment_refund_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(lost_dispute_amount__gte=0), name="payment_lost_dispute_not_negative"
            ),
            models.UniqueConstraint(
                fields=["stripe_payment_intent_id"],
                condition=~Q(stripe_payment_intent_id=""),
                name="payment_unique_intent",
            ),
            models.UniqueConstraint(
                fields=["order", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="payment_unique_idempotency_key",
            ),
        ]
        permissions = [
            ("export_payment", "Can export payments"),
            ("refund_payment", "Can refund a payment"),
        ]

    def __str__(self) -> str:
        return f"{self.get_method_display()} {self.amount} ({self.get_status_display()})"

    @property
    def recorded_by_name(self) -> str:
        """Who recorded the payment: the staff user's name, Stripe for a card, or ''."""
        if self.created_by_id is not None:
            return user_name(self.created_by)
        return STRIPE_ACTOR if self.method == self.Method.STRIPE else ""

    @property
    def actor_name(self) -> str:
        """Who recorded the payment, as the admin shows it (a dash when nobody is known)."""
        return self.recorded_by_name or "—"


# The payments whose money an order received (net of what left again): NET_OF_REFUNDS.
MONEY_HELD_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED)


class Refund(models.Model):
    """Money given back on one payment; a ledger row, append-only like payments.

    A Stripe payment is refunded through Stripe (``stripe_refund_id``, PENDING
    until Stripe settles it); a manual payment gets a manual refund, with the
    ``channel`` the money went back through. ``Payment.refunded_amount`` is the
    sum of a payment's SUCCEEDED refunds.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    class Reason(models.TextChoices):
        REQUESTED_BY_CUSTOMER = "requested_by_customer", "Requested by customer"
        DUPLICATE = "duplicate", "Duplicate"
        FRAUDULENT = "fraudulent", "Fraudulent"
        EVENT_CANCELLED = "event_cancelled", "Event cancelled"
        OTHER = "other", "Other"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(**MONEY)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=24, choices=Reason.choices, default=Reason.OTHER)
    note = models.TextField(blank=True)
    channel = models.CharField(
        max_length=20,
        choices=Payment.Channel.choices,
        blank=True,
        help_text="How a manual refund was paid back; empty for Stripe refunds.",
    )
    stripe_refund_id = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="recorded_refunds",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="refund_created_idx"),
            models.Index(fields=["payment", "status"], name="refund_payment_status_idx"),
            models.Index(fields=["status", "-created_at"], name="refund_status_created_idx"),
            models.Index(fields=["reason", "-created_at"], name="refund_reason_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.UniqueConstraint(
                fields=["stripe_refund_id"],
                condition=~Q(stripe_refund_id=""),
                name="refund_unique_stripe_id",
            ),
        ]

    def __str__(self) -> str:
        return f"Refund {self.amount} ({self.get_status_display()})"

    @property
    def recorded_by_name(self) -> str:
        """Who made the refund: the staff user's name, Stripe for one made there, or ''."""
        if self.created_by_id is not None:
            return user_name(self.created_by)
        return STRIPE_ACTOR if self.stripe_refund_id else ""

    @property
    def actor_name(self) -> str:
        """Who made the refund, as the admin shows it (a dash when nobody is known)."""
        return self.recorded_by_name or "—"


class Dispute(models.Model):
    """A chargeback (or the inquiry before one) on a card payment, as Stripe reports it.

    Written only by ``services.payment.dispute_sync`` from Stripe's dispute
    events or a re-sync; its status never moves backwards. A LOST dispute counts
    as money out like a refund of its amount (``Payment.lost_dispute_amount``).
    """

    class Status(models.TextChoices):
        """Stripe's dispute statuses."""

        WARNING_NEEDS_RESPONSE = "warning_needs_response", "Inquiry: needs response"
        WARNING_UNDER_REVIEW = "warning_under_review", "Inquiry: under review"
        WARNING_CLOSED = "warning_closed", "Inquiry closed"
        NEEDS_RESPONSE = "needs_response", "Needs response"
        UNDER_REVIEW = "under_review", "Under review"
        WON = "won", "Won"
        LOST = "lost", "Lost"
        PREVENTED = "prevented", "Prevented"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    stripe_dispute_id = models.CharField(max_length=255, unique=True)
    amount = models.DecimalField(**MONEY)
    status = models.CharField(max_length=24, choices=Status.choices)
    reason = models.CharField(
        max_length=100, blank=True, help_text="Stripe's reason, e.g. fraudulent, duplicate."
    )
    created_at = models.DateTimeField(help_text="When Stripe opened the dispute.")
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the dispute was first seen won, lost or closed."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="dispute_created_idx"),
            models.Index(fields=["payment", "status"], name="dispute_payment_status_idx"),
            models.Index(fields=["status", "-created_at"], name="dispute_status_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="dispute_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"Dispute {self.stripe_dispute_id} ({self.get_status_display()})"
