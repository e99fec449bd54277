"""Sending ``order_paid``: once per order, recorded on the order in the same transaction.

The payment services move an order to PAID and ask for the signal on commit.
The signal is then sent inside a short transaction that locks the order and
stamps ``Order.paid_notified_at``: the receivers' database writes and the stamp
commit together, or not at all. A worker killed after the payment committed
but before the stamp (SIGKILL, OOM, a lost container) leaves a paid order
without the stamp; ``send_due_order_paid`` (the ``send_order_paid`` command,
run by cron) sends those. A receiver with effects outside the database (an
e-mail) may then see a signal again, never none.
"""

import logging

from django.db import transaction
from django.utils import timezone

from backoffice.models import Order
from backoffice.signals import order_paid

logger = logging.getLogger(__name__)

# Statuses in which an order that reached PAID still counts as sold: a partial
# refund (a discount given back) keeps the registration, a full refund does not.
STILL_SOLD_STATUSES = (Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED)


def send_order_paid(order_id: int) -> bool:
    """Send ``order_paid`` for a committed, still sold order unless it was sent; True if sent."""
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(of=("self",))
            .select_related("user", "conference")
            .filter(pk=order_id)
            .first()
        )
        if order is None or order.paid_notified_at is not None:
            return False
        if order.status not in STILL_SOLD_STATUSES:
            logger.info(
                "order_paid not sent: the order was refunded before it committed",
                extra={"order": order.reference, "status": order.status},
            )
            return False
        order_paid.send(sender=Order, order=order, user=order.user)
        order.paid_notified_at = timezone.now()
        order.save(update_fields=["paid_notified_at"])
    return True


def send_due_order_paid() -> int:
    """Send ``order_paid`` for every sold order still waiting for it; return how many were sent."""
    due = Order.objects.filter(
        status__in=STILL_SOLD_STATUSES, paid_notified_at__isnull=True
    ).values_list("pk", flat=True)
    sent = sum(send_order_paid(pk) for pk in list(due))
    if sent:
        logger.warning("Sent order_paid a crashed worker had not sent", extra={"orders": sent})
    return sent
