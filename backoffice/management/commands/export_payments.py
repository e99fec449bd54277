"""Stream the payments ledger to a CSV file (or standard output), any size, flat memory."""

import datetime
import sys
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backoffice.exports import PaymentResource
from backoffice.models import Conference, Payment
from backoffice.services.exports import payments_for_export, stream_csv


def parse_day(value: str, option: str) -> datetime.date:
    """Parse a YYYY-MM-DD option value."""
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be a date as YYYY-MM-DD, not “{value}”.") from None


def parse_choice(value: str, option: str, choices: Any) -> str:
    """Accept a choice's code or label (any case); name the valid codes otherwise."""
    for choice in choices:
        if value.lower() in (choice.value, str(choice.label).lower()):
            return choice.value
    valid = ", ".join(choice.value for choice in choices)
    raise CommandError(f"Unknown {option} “{value}”; choose one of: {valid}.")


class Command(BaseCommand):
    """Write the same CSV as the admin's payments export (BOM, header, escaping)."""

    help = (
        "Export payments as CSV (UTF-8 with BOM), streamed. Dates are whole days in the "
        "site's time zone, both included."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the filters and the output file."""
        parser.add_argument("--conference", metavar="SLUG", help="Only this conference.")
        parser.add_argument("--since", metavar="YYYY-MM-DD", help="From this day (included).")
        parser.add_argument("--until", metavar="YYYY-MM-DD", help="To this day (included).")
        parser.add_argument(
            "--method", help="Only this method: " + ", ".join(Payment.Method.values) + "."
        )
        parser.add_argument(
            "--status", help="Only this status: " + ", ".join(Payment.Status.values) + "."
        )
        parser.add_argument(
            "--output", metavar="FILE", help="Write to FILE instead of standard output."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Validate the options, then stream the CSV."""
        slug = options["conference"]
        if slug and not Conference.objects.filter(slug=slug).exists():
            known = ", ".join(Conference.objects.order_by("slug").values_list("slug", flat=True))
            raise CommandError(
                f"Unknown conference “{slug}”; known slugs: {known or '(none yet)'}."
            )
        since = parse_day(options["since"], "--since") if options["since"] else None
        until = parse_day(options["until"], "--until") if options["until"] else None
        if since and until and since > until:
            raise CommandError(f"--since {since} is after --until {until}.")
        method = options["method"]
        status = options["status"]
        queryset = payments_for_export(
            conference_slug=slug,
            since=since,
            until=until,
            method=parse_choice(method, "method", Payment.Method) if method else None,
            status=parse_choice(status, "status", Payment.Status) if status else None,
        )
        chunks = stream_csv(PaymentResource(), queryset)
        if options["output"]:
            try:
                with open(options["output"], "wb") as target:
                    self._write(chunks, target)
            except OSError as exc:
                raise CommandError(f"Cannot write {options['output']}: {exc}") from exc
        else:
            self._write_stdout(chunks)

    def _write(self, chunks: Any, target: BinaryIO) -> None:
        """Copy the chunks to a binary file."""
        for chunk in chunks:
            target.write(chunk)

    def _write_stdout(self, chunks: Any) -> None:
        """Write bytes to standard output (or text, when stdout was replaced by a text stream)."""
        stream = getattr(self.stdout, "_out", sys.stdout)
        binary = getattr(stream, "buffer", None)
        if binary is not None:
            stream.flush()
            self._write(chunks, binary)
            binary.flush()
        else:
            for chunk in chunks:
                stream.write(chunk.decode("utf-8"))
