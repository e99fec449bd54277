"""Send ``order_paid`` to paid orders still without it: a manual sweep beside the worker."""

from typing import Any

from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from backoffice.services.order_paid import send_due_order_paid


class Command(BaseCommand):
    """manage.py send_order_paid"""

    help = (
        "Send order_paid for every paid order that has not had it yet. The background worker "
        "(manage.py db_worker) sends it after each payment; this sweep is for orders whose "
        "task was lost or gave up. Safe to run at any time: nothing is sent twice."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Send what is due and say how many."""
        sent = send_due_order_paid()
        self.stdout.write(
            ngettext(
                "Sent order_paid for %(count)d order.",
                "Sent order_paid for %(count)d orders.",
                sent,
            )
            % {"count": sent}
        )
