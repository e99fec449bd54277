"""Applying the disputes (chargebacks) Stripe reports to the ledger (``charge.dispute.*``).

Each dispute Stripe reports creates or updates the one ``Dispute`` row with
its id, under the order's row lock, in any order of arrival and however
often: its status only moves forward (``DISPUTE_TRANSITIONS``), so an older
event arriving late, or the same one twice, changes nothing. A LOST dispute
counts as money out like a refund of its amount (``Payment.lost_dispute_amount``,
read by every sum of money received through ``NET_OF_REFUNDS``); an open one
flags the order, and the order is settled (``settle_order``) after each change.
"""

import logging

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from backoffice.models import ZERO, Conference, Dispute, Order, OrderHistoryEntry, Payment
from backoffice.services.history import STRIPE
from backoffice.services.payment.ledger import (
    CLOSED_DISPUTE_STATUSES,
    dispute_text,
    lock_order,
    settle_order,
)
from backoffice.services.payment.refund_sync import _taken_before_refund
from backoffice.services.payment.stripe_sync import (
    PaymentOfAnotherConference,
    UnmatchedPaymentError,
    _refunded_payment,
    _refuse_other_conference,
    settle_card_payment,
)
from backoffice.stripe_client import StripeDispute

logger = logging.getLogger(__name__)

S = Dispute.Status
_CLOSED = frozenset(CLOSED_DISPUTE_STATUSES)

# Which status a dispute may move to from each; anything else is an older event
# arriving late (or a duplicate) and changes nothing. An inquiry (warning_*) may
# become a chargeback; a closed dispute (won, lost, warning_closed, prevented)
# never reopens.
DISPUTE_TRANSITIONS: dict[str, frozenset[str]] = {
    S.WARNING_NEEDS_RESPONSE: frozenset(
        {S.WARNING_UNDER_REVIEW, S.NEEDS_RESPONSE, S.UNDER_REVIEW} | _CLOSED
    ),
    S.WARNING_UNDER_REVIEW: frozenset({S.NEEDS_RESPONSE, S.UNDER_REVIEW} | _CLOSED),
    S.NEEDS_RESPONSE: frozenset({S.UNDER_REVIEW, S.WON, S.LOST, S.PREVENTED}),
    S.UNDER_REVIEW: frozenset({S.WON, S.LOST, S.PREVENTED}),
    **{status: frozenset() for status in _CLOSED},
}


def _check_payment(conference: Conference, dispute: StripeDispute, payment: Payment) -> None:
    """Refuse a dispute on another conference's payment, or one that does not fit it."""
    order = payment.order
    if order.conference_id != conference.pk:
        raise PaymentOfAnotherConference(
            f"Stripe dispute {dispute.id} belongs to another conference, not {conference.slug}."
        )
    if dispute.currency != order.currency.upper():
        raise UnmatchedPaymentError(
            f"Stripe dispute {dispute.id} is in {dispute.currency}, but {order.reference} is "
            f"in {order.currency}."
        )
    if dispute.amount > payment.amount:
        raise UnmatchedPaymentError(
            f"Stripe dispute {dispute.id} of {order.format(dispute.amount)} on "
            f"{order.reference} is more than the {order.format(payment.amount)} of its payment."
        )


def _payment_of_dispute(conference: Conference, dispute: StripeDispute) -> Payment:
    """The card payment a dispute is about: by a row we hold, its intent, else its charge.

    Raises ``UnmatchedPaymentError`` (stored on the event for staff) for a
    payment we do not know: money is being taken back, someone must look.
    """
    known = (
        Dispute.objects.filter(stripe_dispute_id=dispute.id)
        .select_related("payment__order__conference")
        .first()
    )
    payment = known.payment if known is not None else None
    if payment is None:
        payment = _refunded_payment(dispute.payment_intent_id, dispute.charge_id)
    if payment is None:
        _refuse_other_conference(conference, dispute.metadata, f"Stripe dispute {dispute.id}")
        raise UnmatchedPaymentError(
            f"Stripe dispute {dispute.id} ({dispute.status}, {dispute.amount} "
            f"{dispute.currency}) is on payment {dispute.payment_intent_id or 'unknown'} "
            f"(charge {dispute.charge_id}), which matches no payment here; look it up in "
            "Stripe's dashboard."
        )
    _check_payment(conference, dispute, payment)
    return payment


def sync_lost_dispute_amount(payment: Payment) -> None:
    """Set a locked payment's lost dispute amount to the sum of its LOST disputes."""
    lost = payment.disputes.filter(status=S.LOST).aggregate(s=Sum("amount"))["s"] or ZERO
    if lost != payment.lost_dispute_amount:
        payment.lost_dispute_amount = lost
        payment.save(update_fields=["lost_dispute_amount", "updated_at"])


def _moved_row(payment: Payment, reported: StripeDispute) -> tuple[Dispute, str] | None:
    """Create the reported dispute's row or move it forward; (row, status before) or None."""
    closed_at = timezone.now() if reported.status in _CLOSED else None
    dispute = Dispute.objects.filter(stripe_dispute_id=reported.id).first()
    if dispute is None:
        dispute = Dispute.objects.create(
            payment=payment,
            stripe_dispute_id=reported.id,
            amount=reported.amount,
            status=reported.status,
            reason=reported.reason,
            created_at=reported.created,
            closed_at=closed_at,
        )
        return dispute, ""
    if reported.status not in DISPUTE_TRANSITIONS[dispute.status]:
        if reported.status != dispute.status:
            logger.info(
                "Ignoring out-of-order Stripe dispute update",
                extra={
                    "dispute": reported.id,
                    "status": dispute.status,
                    "outcome": reported.status,
                },
            )
        return None
    before = dispute.status
    dispute.status = reported.status
    dispute.amount = reported.amount
    dispute.reason = reported.reason or dispute.reason
    dispute.closed_at = closed_at
    dispute.save(update_fields=["status", "amount", "reason", "closed_at", "updated_at"])
    return dispute, before


def _history_message(order: Order, row: Dispute, before: str) -> str:
    """How a dispute's change reads in the order's timeline."""
    text = f"{dispute_text(order, row)}: {row.get_status_display().lower()}"
    if before:
        text += f" (was {S(before).label.lower()})"
    if row.status == S.LOST:
        return f"{text}; {order.format(row.amount)} counts as given back."
    if row.status == S.WON:
        return f"{text}; the money stays with the order."
    return f"{text}."


def apply_stripe_dispute(
    conference: Conference, dispute: StripeDispute, *, actor: str = STRIPE
) -> Dispute | None:
    """Apply a dispute Stripe reports (an event or a re-sync), idempotently.

    Creates or moves forward the one ``Dispute`` row for it and settles its
    order, with one history entry. Returns the row when this call created or
    changed it, None when it changed nothing (a duplicate or an older status
    arriving late). Raises ``UnmatchedPaymentError`` for a payment we do not
    know and ``PaymentOfAnotherConference`` for a sibling conference's one.
    """
    payment = _payment_of_dispute(conference, dispute)
    with transaction.atomic():
        order = lock_order(payment.order)
        payment = Payment.objects.get(pk=payment.pk)
        if _taken_before_refund(order, payment, charge_id=dispute.charge_id):
            # A dispute proves the charge succeeded: its success was not applied yet.
            settle_card_payment(
                order, payment.stripe_payment_intent_id, payment.amount, actor=actor
            )
        moved = _moved_row(payment, dispute)
        if moved is None:
            return None
        row, before = moved
        sync_lost_dispute_amount(payment)
        lost = row.status == S.LOST
        settle_order(
            order,
            actor=actor,
            action=OrderHistoryEntry.Action.DISPUTE_LOST
            if lost
            else OrderHistoryEntry.Action.DISPUTE,
            message=_history_message(order, row, before),
            amount=row.amount,
        )
    logger.info(
        "Stripe dispute applied",
        extra={"order": order.reference, "dispute": dispute.id, "status": row.status},
    )
    return row
