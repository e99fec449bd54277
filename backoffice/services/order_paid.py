"""Sending ``order_paid``: once per order, recorded on the order in the same transaction.

The payment services move an order to PAID and, in the same transaction,
enqueue ``send_order_paid_task``: the task commits with the payment, or
vanishes with it on rollback. The background worker (``manage.py db_worker``)
then sends the signal inside a short transaction that locks the order and
stamps ``Order.paid_notified_at``: the receivers' database writes and the stamp
commit together, or not at all; a failure is retried with back-off
(``backoffice.services.background``) and, at last, shown on the order.
``send_due_order_paid`` (the ``send_order_paid`` command) is a manual sweep of
sold orders still without the stamp, e.g. after tasks were lost with a queue.
A receiver with effects outside the database (an e-mail) may see a signal
again after a crash mid-send, never none. The attendee's receipt is queued
here, in the same transaction as the stamp (``notifications.send_receipt``).
"""

import logging

from django.db import transaction
from django.utils import timezone

from backoffice.models import Order
from backoffice.services.background import retrying_task
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
        # Imported here: notifications imports the ledger, which imports this module.
        from backoffice.services.notifications import send_receipt

        # The receipt commits with the stamp: one per order, whichever way it was paid.
        send_receipt(order)
        order.paid_notified_at = timezone.now()
        order.save(update_fields=["paid_notified_at"])
    return True


# The hook is named by path: the ledger imports this module.
@retrying_task(on_give_up="backoffice.services.payment.ledger.record_task_failure")
def send_order_paid_task(order_id: int) -> bool:
    """The worker's ``send_order_paid``: enqueued by the ledger in the payment's transaction."""
    return send_order_paid(order_id)


def send_due_order_paid() -> int:
    """Send ``order_paid`` for every sold order still waiting for it; return how many were sent."""
    due = Order.objects.filter(
        status__in=STILL_SOLD_STATUSES, paid_notified_at__isnull=True
    ).values_list("pk", flat=True)
    sent = sum(send_order_paid(pk) for pk in list(due))
    if sent:
        logger.warning("Sent order_paid the worker had not sent", extra={"orders": sent})
    return sent
