"""Recompute the dashboard's maintained totals from the ledger; report (and repair) differences."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backoffice.services.ledger_totals_check import find_differences, repair_totals


class Command(BaseCommand):
    """manage.py check_ledger_totals [--fix]"""

    help = (
        "Recompute the totals the finance dashboard reads (money collected and refunded per "
        "conference, day and method; orders and balance due per status) from the ledger and "
        "list every difference. Exits 1 when any, unless --fix rewrote them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--fix: rewrite the totals from the ledger."""
        parser.add_argument(
            "--fix", action="store_true", help="Rewrite the totals from the ledger."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """List the differences; repair them with --fix, else fail when there are any."""
        differences = repair_totals() if options["fix"] else find_differences()
        for difference in differences:
            self.stdout.write(str(difference))
        if options["fix"]:
            self.stdout.write(f"Rewrote the totals from the ledger; {len(differences)} differed.")
        elif differences:
            raise CommandError(
                f"{len(differences)} total(s) differ from the ledger; "
                "run check_ledger_totals --fix to rewrite them."
            )
        else:
            self.stdout.write("The totals match the ledger.")
