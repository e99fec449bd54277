"""Print a new key for BACKOFFICE_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand

from backoffice.encryption import generate_key


class Command(BaseCommand):
    """Print a new random Fernet key (put it first in BACKOFFICE_ENCRYPTION_KEYS to rotate)."""

    help = "Print a new random key for BACKOFFICE_ENCRYPTION_KEYS."

    def handle(self, *args, **options) -> None:
        """Write the key to standard output."""
        self.stdout.write(generate_key())
