"""Conferences: the events whose registrations are paid here."""

from django.db import models

from backoffice.fields import EncryptedTextField


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
