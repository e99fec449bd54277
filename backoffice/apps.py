"""App configuration."""

from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The Backoffice app."""

    name = "backoffice"
    verbose_name = "Registration payments"
    default_auto_field = "django.db.models.BigAutoField"
