"""App configuration."""

from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The Backoffice app."""

    name = "backoffice"
    verbose_name = "Registration payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Fail at start-up, not on first use, when the encryption keys are malformed."""
        from backoffice import checks  # noqa: F401 (registers the system checks)
        from backoffice.encryption import validate_keys

        validate_keys()
