"""Data model: conferences, orders, their line items, payments and Stripe records."""

import secrets
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Upper

from backoffice.fields import EncryptedTextField
from backoffice.money import format_amount

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

# No 0/O/1/I: references are read aloud at the desk and typed from paper.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERENCE_LENGTH = 8

# Who acted on an order when Stripe did (a card payment, a webhook); see services/history.py.
STRIPE_ACTOR = "Stripe"


def generate_order_reference() -> str:
    """Return a random order reference such as 'ORD-7K3QX9TM' (40 bits, unguessable)."""
    return "ORD-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def user_name(user: AbstractBaseUser) -> str:
    """A user as staff read it: the full name, falling back to the username.

    The one rendering of a person everywhere (lists, order page, history, exports);
    ``backoffice.exports.user_name_sql`` is its SQL twin for the streaming export.
    """
    full_name = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return full_name or user.get_username()


def actor_name(user: AbstractBaseUser | None, label: str = "") -> str:
    """Who did something, as staff read it: the user's name (``user_name``), or the label.

    The one rendering of "who did it" (a payment's "Recorded by", a history entry's actor).
    """
    if user is not None:
        return user_name(user)
    return label or "—"


def generate_payment_token() -> str:
    """Return a random URL-safe token for an order's payment link (192 bits)."""
    return secrets.token_urlsafe(24)


class Conference(models.Model):
    """An event whose registrations are paid through this site."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    currency = models.CharField(
        max_length=3, default="USD", help_text="ISO 4217 code, e.g. USD, EUR, JPY."
    )
    stripe_publishable_key = models.CharField(max_length=255, blank=True)
    # Encrypted at rest (backoffice/fields.py); the attributes read as the plain values.
    stripe_secret_key = EncryptedTextField(blank=True)
    stripe_webhook_secret = EncryptedTextField(blank=True)
    # Shown on every e-mail to attendees (backoffice/services/notifications.py).
    organiser_name = models.CharField(
        max_length=200,
        blank=True,
        help_text="Who runs the conference; the sender name of its e-mails (default: its name).",
    )
    organiser_address = models.TextField(
        blank=True, help_text="Postal address printed on receipts."
    )
    contact_email = models.EmailField(
        blank=True, help_text="Where attendees write with questions; printed on every e-mail."
    )
    reply_to_email = models.EmailField(
        blank=True,
        help_text="Where replies to the e-mails go (default: the contact e-mail).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """Store the currency code upper-case."""
        self.currency = (self.currency or "USD").upper()
        super().save(*args, **kwargs)


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

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments")
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

# Sums over many ledger rows: room for a conference's whole takings.
TOTAL = {"max_digits": 18, "decimal_places": 2}


class LedgerTotal(models.Model):
    """Money collected per conference, local day of the payment and method, kept by the ledger.

    Every ledger write adds its change in the same transaction (``settle_order``
    calls ``services.ledger_totals.recount_order``); ``check_ledger_totals``
    recomputes them from the ledger. ``refunded`` counts lost disputes as money
    out, like the dashboard always did. The currency is the conference's.
    """

    conference = models.ForeignKey(Conference, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="The payment's creation day in the site's time zone.")
    method = models.CharField(max_length=10, choices=Payment.Method.choices)
    payments = models.IntegerField(default=0, help_text="Succeeded and refunded payments.")
    collected = models.DecimalField(**TOTAL, default=ZERO)
    refunded = models.DecimalField(**TOTAL, default=ZERO)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conference", "day", "method"], name="ledger_total_unique_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conference_id} {self.day} {self.method}"


class OrderTotal(models.Model):
    """How many orders a conference has in each status, and what its pending ones still owe."""

    conference = models.ForeignKey(Conference, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=20, choices=Order.Status.choices)
    orders = models.IntegerField(default=0)
    balance = models.DecimalField(
        **TOTAL, default=ZERO, help_text="Balance due, summed over the pending orders."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conference", "status"], name="order_total_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.conference_id} {self.status}"


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


class StripeCustomer(models.Model):
    """The Stripe customer id of a user at one conference's Stripe account."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stripe_customers"
    )
    conference = models.ForeignKey(
        Conference, on_delete=models.CASCADE, related_name="stripe_customers"
    )
    stripe_customer_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "conference"], name="stripe_customer_unique_user_conference"
            )
        ]

    def __str__(self) -> str:
        return self.stripe_customer_id


class StripeEvent(models.Model):
    """A webhook event received from Stripe, stored once per conference and event id.

    Conferences sharing one Stripe account each receive every event of that
    account (same event id) at their own endpoint, so each stores its own copy.
    """

    stripe_event_id = models.CharField(max_length=255)
    conference = models.ForeignKey(
        Conference, on_delete=models.SET_NULL, null=True, blank=True, related_name="stripe_events"
    )
    # The order the event's object belongs to (its payment intent, charge or metadata),
    # set when the event is stored; empty for events about no order of ours, and for
    # events stored before the link existed until they are reprocessed. No database
    # constraint: its check would make storing an event wait for the order's row lock
    # (FOR KEY SHARE against a clerk's FOR UPDATE), and an event is stored first, always.
    # Orders are never deleted (PROTECT), so the link cannot dangle.
    order = models.ForeignKey(
        Order,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="stripe_events",
        db_constraint=False,
    )
    type = models.CharField(max_length=100, db_index=True)
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    note = models.TextField(
        blank=True, help_text="Why processing changed nothing, e.g. another conference's payment."
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["-received_at", "-id"], name="stripe_event_received_idx"),
            # A pasted event id is found without a scan (the unique index leads with conference).
            models.Index(fields=["stripe_event_id"], name="stripe_event_id_idx"),
            # The "Needs attention" list asks for an order's failed or unprocessed events.
            models.Index(
                fields=["order"],
                name="stripe_event_unsettled_idx",
                condition=Q(processed_at__isnull=True) | ~Q(last_error=""),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["conference", "stripe_event_id"], name="stripe_event_unique_per_conference"
            )
        ]
        permissions = [("reprocess_stripeevent", "Can reprocess a Stripe event")]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_event_id}"


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


class OrderEmail(models.Model):
    """One e-mail to an order's attendee: the rendered message and whether it went out.

    Written by ``backoffice.services.notifications`` in the transaction that
    makes the mail due, with the task that sends it; the worker marks it sent,
    or failed once its retries are used up. Nobody edits one in the admin.
    """

    class Kind(models.TextChoices):
        PAYMENT_LINK = "payment_link", "Payment link"
        RECEIPT = "receipt", "Receipt"
        REFUND = "refund", "Refund confirmation"
        CANCELLATION = "cancellation", "Cancellation confirmation"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="emails")
    # The refund a refund confirmation is about (one confirmation per refund).
    refund = models.ForeignKey(
        Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="emails"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    recipient = models.EmailField()
    from_email = models.CharField(max_length=300)
    reply_to = models.EmailField(blank=True)
    subject = models.CharField(max_length=300)
    text_body = models.TextField()
    html_body = models.TextField()
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="order_emails",
    )

    class Meta:
        ordering = ["-queued_at", "-id"]
        verbose_name = "e-mail"
        verbose_name_plural = "e-mails"
        indexes = [
            models.Index(fields=["order", "-queued_at"], name="order_email_order_idx"),
            models.Index(fields=["status", "-queued_at"], name="order_email_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient}"


class ScheduledJob(models.Model):
    """One periodic job's schedule row: when the worker last started it and how it ended.

    One row per job name (unique), claimed under a row lock by the worker that
    finds it due, so a job due while several workers run is started once
    (``backoffice.services.schedule``).
    """

    name = models.CharField(max_length=100, unique=True)
    last_run_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker last found the job due and queued it."
    )
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_result = models.TextField(blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WorkerHeartbeat(models.Model):
    """A background worker's sign of life, written every few seconds while it runs.

    A task left running by a worker whose heartbeat stopped is put back in the
    queue (``backoffice.services.schedule.recover_stuck_tasks``).
    """

    worker_id = models.CharField(max_length=64, unique=True)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return self.worker_id


class ExportFile(models.Model):
    """An export written by the background worker: what was asked, by whom, and the file.

    ``list_name`` is the exported list's model label (``backoffice.payment``);
    ``filters`` the list's query parameters, as the admin list had them, from
    which the worker rebuilds the rows; ``filters_description`` says the same
    in words. The file lives in the default storage until ``expires_at``.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Being written"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="export_files"
    )
    list_name = models.CharField(max_length=100, help_text="Model label of the exported list.")
    resource_name = models.CharField(
        max_length=100, blank=True, help_text="The list's export Resource class, by name."
    )
    filters = models.JSONField(default=dict, blank=True)
    filters_description = models.TextField(blank=True)
    download_name = models.CharField(
        max_length=200,
        blank=True,
        help_text="The file's name as downloaded, given when it was asked for (list, "
        "conference, dates).",
    )
    fields = models.JSONField(
        default=list, blank=True, help_text="Columns picked on the export form; empty for all."
    )
    file_format = models.CharField(max_length=10, choices=Format.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    row_count = models.PositiveIntegerField(null=True, blank=True)
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True, max_length=255)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["requested_by", "-created_at"], name="export_user_created_idx"),
            models.Index(fields=["expires_at"], name="export_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.list_name} {self.get_file_format_display()} ({self.get_status_display()})"
