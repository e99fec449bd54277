"""E-mails to attendees: queued with the change that makes them due, sent by the worker.

Each function renders the message (``email_content``), stores it as an
``OrderEmail`` (QUEUED) and enqueues ``send_email_task`` in the caller's
transaction: the mail commits with the payment, refund or cancellation that
caused it, or vanishes with it on rollback. The worker sends the stored
message through Django's mail API (``MAILERS``) and marks it SENT; a failure
is retried with back-off (``backoffice.services.background``), and the last
one marks it FAILED, with an entry on the order's history and the order
flagged for staff (``record_send_failure``).

A worker that dies mid-send leaves the task to be run again: the attendee may
then get a mail twice, never none.
"""

import logging
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone

from backoffice.models import Order, OrderEmail, OrderHistoryEntry, Refund
from backoffice.services.background import TaskFailure, retrying_task
from backoffice.services.email_content import render_email
from backoffice.services.history import SYSTEM, record_history
from backoffice.services.payment.ledger import (
    OrderAction,
    allowed_actions,
    lock_order,
    record_task_failure,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)


def _queue(
    order: Order,
    kind: OrderEmail.Kind,
    *,
    refund: Refund | None = None,
    staff_user: "AbstractBaseUser | None" = None,
) -> OrderEmail | None:
    """Store the rendered e-mail and enqueue its sending, in the caller's transaction.

    None (nothing queued, a log line) when the order has no address to send to.
    """
    recipient = order.email_recipient
    if not recipient:
        logger.info("No e-mail sent: the order has no address", extra={"order": order.reference})
        return None
    rendered = render_email(order, kind, refund=refund)
    record = OrderEmail.objects.create(
        order=order,
        refund=refund,
        kind=kind,
        recipient=recipient,
        from_email=rendered.from_email,
        reply_to=rendered.reply_to,
        subject=rendered.subject,
        text_body=rendered.text_body,
        html_body=rendered.html_body,
        created_by=staff_user,
    )
    send_email_task.enqueue(email_id=record.pk, order_id=order.pk)
    return record


def send_payment_link(order: Order, *, staff_user: "AbstractBaseUser | None") -> OrderEmail:
    """E-mail the order's pay link, items and balance due to the attendee.

    Refused with ``ValidationError`` when the order cannot be paid (not
    pending, nothing due) or has no e-mail address (``allowed_actions``).
    """
    with transaction.atomic():
        locked = lock_order(order)
        allowed_actions(locked)[OrderAction.SEND_PAYMENT_LINK].check()
        record = _queue(locked, OrderEmail.Kind.PAYMENT_LINK, staff_user=staff_user)
        record_history(
            locked,
            actor=staff_user or SYSTEM,
            action=OrderHistoryEntry.Action.EMAIL,
            message=f"Payment link e-mailed to {record.recipient}.",
            status_before=locked.status,
        )
    return record


def send_receipt(order: Order) -> OrderEmail | None:
    """Queue the receipt of a paid order; call in the transaction that notices it was paid."""
    return _queue(order, OrderEmail.Kind.RECEIPT)


def send_refund_confirmation(refund: Refund) -> OrderEmail | None:
    """Queue the confirmation of a succeeded refund, once per refund; call under the order lock."""
    if OrderEmail.objects.filter(refund=refund, kind=OrderEmail.Kind.REFUND).exists():
        return None
    return _queue(refund.payment.order, OrderEmail.Kind.REFUND, refund=refund)


def send_cancellation_confirmation(order: Order) -> OrderEmail | None:
    """Queue the confirmation that the order was cancelled; call in the cancel's transaction."""
    return _queue(order, OrderEmail.Kind.CANCELLATION)


def resend(email: OrderEmail, *, staff_user: "AbstractBaseUser | None") -> OrderEmail:
    """Send an e-mail of the same kind again, rendered afresh, to the order's current address.

    Rendered again so that a pay link, a receipt's payments and the recipient
    are today's. A payment link is refused (``ValidationError``) once the order
    cannot be paid; any kind is refused when the order has no address.
    """
    with transaction.atomic():
        locked = lock_order(email.order)
        if email.kind == OrderEmail.Kind.PAYMENT_LINK:
            allowed_actions(locked)[OrderAction.SEND_PAYMENT_LINK].check()
        record = _queue(locked, email.kind, refund=email.refund, staff_user=staff_user)
        if record is None:
            raise ValidationError(
                f"{locked.reference} has no e-mail address; add a billing e-mail first."
            )
        record_history(
            locked,
            actor=staff_user or SYSTEM,
            action=OrderHistoryEntry.Action.EMAIL,
            message=f"{email.get_kind_display()} e-mailed again to {record.recipient}.",
            status_before=locked.status,
        )
    return record


def deliver(email_id: int) -> bool:
    """Send a stored e-mail unless it was sent; True if sent now. Raises when sending fails."""
    with transaction.atomic():
        email = OrderEmail.objects.select_for_update().filter(pk=email_id).first()
        if email is None or email.status == OrderEmail.Status.SENT:
            return False
        email.attempts += 1
        email.save(update_fields=["attempts"])
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.text_body,
        from_email=email.from_email,
        to=[email.recipient],
        reply_to=[email.reply_to] if email.reply_to else None,
    )
    message.attach_alternative(email.html_body, "text/html")
    try:
        message.send()
    except Exception as error:
        # Kept on the record for staff; the task retries, then gives up (record_send_failure).
        email.error = f"{type(error).__name__}: {error}"[:1000]
        email.save(update_fields=["error"])
        raise
    email.status = OrderEmail.Status.SENT
    email.sent_at = timezone.now()
    email.error = ""
    email.save(update_fields=["status", "sent_at", "error"])
    logger.info(
        "E-mail sent", extra={"email": email.pk, "kind": email.kind, "order": email.order_id}
    )
    return True


def record_send_failure(failure: TaskFailure) -> None:
    """The send task gave up: mark the e-mail FAILED, then show it on the order (history, flag)."""
    OrderEmail.objects.filter(pk=failure.arguments["email_id"]).exclude(
        status=OrderEmail.Status.SENT
    ).update(status=OrderEmail.Status.FAILED, error=failure.summary)
    record_task_failure(failure)


@retrying_task(on_give_up=record_send_failure)
def send_email_task(email_id: int, order_id: int) -> bool:
    """The worker's ``deliver``; ``order_id`` names the order a final failure is shown on."""
    return deliver(email_id)
