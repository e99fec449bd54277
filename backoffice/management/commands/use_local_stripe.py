"""Wire the demo conference to a local fake Stripe server (``make run`` calls it at every start)."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backoffice.models import Conference
from backoffice.services.demo import DEMO_CONFERENCE
from backoffice.services.local_stripe import LocalStripeError, wire_conference


class Command(BaseCommand):
    """manage.py use_local_stripe --api-base URL --site-url URL [--conference SLUG]"""

    help = (
        "Give a conference (the demo one by default) the local fake Stripe's keys and "
        "register its webhook at the fake (localstripe), so card payments confirm by "
        "webhook. Idempotent. Fails (exit status 1, saying why) when the address is not "
        "local, the conference does not exist or has Stripe keys of its own, or the fake "
        "does not answer: `make run` then runs without the fake."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--api-base, --site-url, --conference, --wait."""
        parser.add_argument("--api-base", required=True, help="e.g. http://127.0.0.1:8420")
        parser.add_argument(
            "--site-url",
            required=True,
            help="Where the fake posts webhooks, e.g. http://127.0.0.1:8000",
        )
        parser.add_argument("--conference", default=DEMO_CONFERENCE["slug"], help="Its slug.")
        parser.add_argument(
            "--wait", type=float, default=20, help="Seconds to wait for the fake to start."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Wire the conference, or say why not."""
        conference = Conference.objects.filter(slug=options["conference"]).first()
        if conference is None:
            raise CommandError(f"No conference {options['conference']!r}: nothing to wire.")
        try:
            webhook_url = wire_conference(
                conference,
                api_base=options["api_base"],
                site_url=options["site_url"],
                wait_seconds=options["wait"],
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        except LocalStripeError as exc:
            raise CommandError(f"The fake Stripe at {options['api_base']}: {exc}") from exc
        self.stdout.write(
            f"{conference.name} uses the fake Stripe at {options['api_base']} "
            f"(its webhooks go to {webhook_url})."
        )
