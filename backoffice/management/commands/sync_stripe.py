"""Re-sync orders from Stripe: apply what Stripe holds that no webhook brought."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from backoffice.models import Conference
from backoffice.services.ledger import orders_to_resync
from backoffice.services.payment.resync_batch import resync_orders

# Exit codes besides 0: 1 for bad options or an order that could not be applied
# (Django's CommandError default), 2 when Stripe could not be reached or refused us.
STRIPE_FAILED = 2


def _since(value: str) -> date:
    """The --since option as a date."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--since must be a date as YYYY-MM-DD, e.g. 2026-11-01 (not {value!r})."
        ) from None


def _stale_minutes(value: str) -> int:
    """The --stale-minutes option as a whole number of minutes, zero or more."""
    if not value.isascii() or not value.isdigit():
        raise CommandError(f"--stale-minutes must be a whole number of minutes (not {value!r}).")
    return int(value)


def _conference(slug: str) -> Conference:
    """The --conference option's conference."""
    conference = Conference.objects.filter(slug=slug).first()
    if conference is None:
        raise CommandError(f"No conference with the slug {slug!r}.")
    return conference


class Command(BaseCommand):
    """manage.py sync_stripe [--conference SLUG] [--since YYYY-MM-DD] [--stale-minutes N]"""

    help = (
        "Re-sync from Stripe every order with a Stripe payment still pending or processing "
        "(and, with --since, every order with a Stripe payment created since that day), as "
        "the missed webhooks would have. Safe to run at any time, e.g. every 15 minutes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """The options: which orders to check."""
        parser.add_argument("--conference", metavar="SLUG", help="Only this conference's orders.")
        parser.add_argument(
            "--since",
            metavar="YYYY-MM-DD",
            help="Also every order with a Stripe payment created on or after this day.",
        )
        parser.add_argument(
            "--stale-minutes",
            metavar="N",
            help="Only payments pending or processing unchanged for more than N minutes.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Re-sync each selected order; print what changed, then a summary."""
        orders = orders_to_resync(
            conference=_conference(options["conference"]) if options["conference"] else None,
            since=_since(options["since"]) if options["since"] else None,
            stale_minutes=(
                _stale_minutes(str(options["stale_minutes"]))
                if options["stale_minutes"] is not None
                else None
            ),
        )
        run = resync_orders(orders.iterator())
        for line in run.changes:
            self.stdout.write(line)
        for line in run.errors:
            self.stderr.write(line)
        self.stdout.write(run.summary())
        if run.stripe_error is not None:
            raise CommandError(
                f"Stripe could not be reached or refused: {run.stripe_error}",
                returncode=STRIPE_FAILED,
            )
        if run.errors:
            raise CommandError(
                ngettext(
                    "%(count)d order could not be re-synced.",
                    "%(count)d orders could not be re-synced.",
                    len(run.errors),
                )
                % {"count": len(run.errors)}
            )
