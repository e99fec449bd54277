"""Fill an empty database with demo data and demo staff accounts (development only)."""

import logging
import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backoffice.services.demo import DEMO_ACCOUNTS, database_is_empty, seed_demo_data


class Command(BaseCommand):
    """manage.py seed_demo [--if-empty] [--force]"""

    help = (
        "Fill an EMPTY database with a demo conference, a few dozen attendees and orders in "
        "every state, and demo accounts (a superuser, a Front desk and a Finance user) whose "
        "credentials it prints. Runs only with DJANGO_DEBUG=1 unless --force is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--if-empty and --force."""
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing (successfully) when the database already has data.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off; the demo accounts then get random passwords.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Check the guards, seed, print what was created and how to log in."""
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "seed_demo creates accounts with published passwords, so it only runs with "
                "DJANGO_DEBUG=1. Pass --force to run it anyway (random passwords)."
            )
        if not database_is_empty():
            if options["if_empty"]:
                self.stdout.write("The database already has data; not seeding demo data.")
                return
            raise CommandError(
                "The database is not empty; seed_demo only fills an empty database "
                "(use --if-empty to skip quietly)."
            )

        passwords = {}
        if not settings.DEBUG:
            passwords = {username: secrets.token_urlsafe(12) for username, *_ in DEMO_ACCOUNTS}
        # The payment service logs every payment; forty lines of that hide the credentials.
        service_logger = logging.getLogger("backoffice.services")
        level = service_logger.level
        service_logger.setLevel(logging.WARNING)
        try:
            result = seed_demo_data(passwords=passwords)
        finally:
            service_logger.setLevel(level)

        self.stdout.write(self.style.SUCCESS(f"Demo data created for {result.conference.name}:"))
        self.stdout.write(f"  {result.attendees} attendees, orders by status:")
        for status, count in result.orders_by_status.items():
            if count:
                self.stdout.write(f"    {status:<20} {count}")
        self.stdout.write("")
        self.stdout.write("Log in to the admin (/admin/, e.g. http://127.0.0.1:8000/admin/) with:")
        for username, password, role, created in result.accounts:
            note = "" if created else "  (existing account, password not changed)"
            self.stdout.write(f"  {role:<11} username: {username:<8} password: {password}{note}")
