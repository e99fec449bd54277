"""Create the "Front desk" and "Finance" staff groups with their permissions."""

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from backoffice.services.staff_groups import create_staff_groups


class Command(BaseCommand):
    """manage.py create_staff_groups"""

    help = (
        'Create the "Front desk" (view orders, record manual payments, mark comp) and '
        '"Finance" (view and export orders and payments) groups. Safe to run again.'
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Create or complete the groups and say what changed."""
        try:
            results = create_staff_groups()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        for result in results:
            state = "created" if result.created else "exists"
            self.stdout.write(
                f'Group "{result.name}" {state}: {result.total} permissions ({result.added} added).'
            )
