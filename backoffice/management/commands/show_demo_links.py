"""Print what a newcomer needs once the site answers: the admin, a demo pay link, the logins."""

import time
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from backoffice.services.demo import demo_logins, order_to_pay
from backoffice.services.local_stripe import stand_in_enabled
from backoffice.services.worker_liveness import worker_idle


def site_answers(site_url: str) -> bool:
    """Whether the site's health check answers 200."""
    try:
        with urllib.request.urlopen(site_url + "/healthz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Command(BaseCommand):
    """manage.py show_demo_links --site-url URL [--wait SECONDS]"""

    help = (
        "Wait until the site at --site-url answers its health check (and, with "
        "--wait-for-worker, until a background worker has emptied the task queue, so that "
        "the e-mails it prints come before), then print the admin's URL, the pay link of a "
        "pending demo order with a balance due, and the demo logins (`make run` prints them "
        "at start)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--site-url and --wait."""
        parser.add_argument("--site-url", required=True, help="e.g. http://127.0.0.1:8000")
        parser.add_argument(
            "--wait", type=float, default=0, help="Seconds to wait for the site (0: do not ask it)."
        )
        parser.add_argument(
            "--wait-for-worker",
            type=float,
            default=0,
            help="At most this many seconds more for a worker to empty the queue (then print).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Wait for the site, then print the links."""
        site_url = options["site_url"].rstrip("/")
        if options["wait"]:
            deadline = time.monotonic() + options["wait"]
            while not site_answers(site_url):
                if time.monotonic() > deadline:
                    raise CommandError(f"{site_url} did not answer within {options['wait']:g} s.")
                time.sleep(0.5)
        # A fresh database's demo e-mails (receipts, cancellations) fill the terminal once
        # the worker starts: the links come after them, not lost above them. Idle twice in
        # a row: the worker logs a task's end just after its row says so.
        deadline = time.monotonic() + options["wait_for_worker"]
        idle_polls = 0
        while idle_polls < 2 and time.monotonic() < deadline:
            idle_polls = idle_polls + 1 if worker_idle() else 0
            time.sleep(0.5)
        lines = ["", self.style.SUCCESS(f"Backoffice is running at {site_url}/"), ""]
        lines.append(f"  {'Admin:':<10} {site_url}{reverse('admin:index')}")
        order = order_to_pay()
        if order is not None:
            link = site_url + reverse("backoffice:pay", args=[order.payment_token])
            lines.append(f"  {'Pay link:':<10} {link}")
            card = " with card 4242 4242 4242 4242" if stand_in_enabled() else ""
            due = order.format(order.balance_due)
            lines.append(f"  {'':<10} ({order.reference}, {due} due: pay it{card})")
        for index, (username, password, role) in enumerate(demo_logins()):
            label = "Logins:" if index == 0 else ""
            lines.append(f"  {label:<10} {username} / {password}  ({role})")
        lines.append("")
        self.stdout.write("\n".join(lines))
