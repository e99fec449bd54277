"""Re-sync orders from Stripe: apply what Stripe holds that no webhook brought (run from cron)."""

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from backoffice.models import Conference
from backoffice.services.ledger import orders_to_resync
from backoffice.services.payment import PaymentProviderError, PaymentService, StripeUnreachable

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
        checked = changed_payments = errors = 0
        stripe_error: PaymentProviderError | None = None
        for order in orders.iterator():
            if isinstance(stripe_error, StripeUnreachable):
                errors += 1  # every further try would wait for the same time-out
                self.stderr.write(f"{order.reference}: not checked (Stripe unreachable).")
                continue
            checked += 1
            try:
                report = PaymentService.sync_from_stripe(order)
            except PaymentProviderError as exc:
                errors += 1
                stripe_error = exc
                self.stderr.write(f"{order.reference}: error: {exc}")
                continue
            except ValidationError as exc:
                errors += 1
                self.stderr.write(f"{order.reference}: error: {' '.join(exc.messages)}")
                continue
            changed_payments += report.payments_changed
            if report.changed or report.notes:
                self.stdout.write(report.summary())
        self.stdout.write(_summary(checked, changed_payments, errors))
        if stripe_error is not None:
            raise CommandError(
                f"Stripe could not be reached or refused: {stripe_error}", returncode=STRIPE_FAILED
            )
        if errors:
            raise CommandError(
                ngettext(
                    "%(count)d order could not be re-synced.",
                    "%(count)d orders could not be re-synced.",
                    errors,
                )
                % {"count": errors}
            )


def _summary(checked: int, changed_payments: int, errors: int) -> str:
    """The last line: orders checked, payments changed, errors."""
    return ", ".join(
        [
            ngettext("Checked %(count)d order", "Checked %(count)d orders", checked)
            % {"count": checked},
            ngettext("%(count)d payment changed", "%(count)d payments changed", changed_payments)
            % {"count": changed_payments},
            ngettext("%(count)d error.", "%(count)d errors.", errors) % {"count": errors},
        ]
    )
