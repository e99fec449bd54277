"""Delete background exports past BACKOFFICE_EXPORT_RETENTION_DAYS, their files included."""

from typing import Any

from django.core.management.base import BaseCommand

from backoffice.services.export_jobs import delete_expired_exports


class Command(BaseCommand):
    """Run ``delete_expired_exports`` (safe at any time; scheduled daily)."""

    help = (
        "Delete exports written by the worker once they are older than "
        "BACKOFFICE_EXPORT_RETENTION_DAYS days, with their files."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Delete, and say how many."""
        deleted = delete_expired_exports()
        self.stdout.write(f"Deleted {deleted} expired export{'s' if deleted != 1 else ''}.")
