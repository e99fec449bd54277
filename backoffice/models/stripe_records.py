"""What the site keeps of Stripe: customers and received webhook events."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from backoffice.models.conference import Conference
from backoffice.models.orders import Order


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
