"""E-mails sent to attendees about their orders."""

from django.conf import settings
from django.db import models

from backoffice.models.orders import Order
from backoffice.models.payments import Refund


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
