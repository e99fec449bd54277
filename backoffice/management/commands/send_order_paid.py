"""Send ``order_paid`` for paid orders whose worker died before it could (run it from cron)."""

from typing import Any

from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from backoffice.services.order_paid import send_due_order_paid


class Command(BaseCommand):
    """manage.py send_order_paid"""

    help = (
        "Send order_paid for every paid order that has not had it yet (its worker was killed "
        "right after the payment committed). Safe to run at any time, e.g. every few minutes."
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
