"""Applying the refunds Stripe reports (``charge.refunded``, ``refund.*``) to the ledger.

Each refund Stripe reports creates or updates the one ``Refund`` row with its
id, in any order of arrival and however often: a refund started here is found
by its metadata (``refund_id``), and a succeeded row without a Stripe id of the
same amount (itemised before ids were kept, or counted from a charge's total)
is claimed rather than counted twice. Every change is applied under the order's
row lock, and the order is settled (``settle_order``) as for a clerk's refund.
"""

import logging
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum

from backoffice.models import ZERO, Conference, Order, OrderHistoryEntry, Payment, Refund
from backoffice.services.history import STRIPE
from backoffice.services.payment.ledger import lock_order, settle_order
from backoffice.services.payment.refunds import (
    move_refund,
    refund_outcome,
    settle_refund,
    sync_refunded_amount,
)
from backoffice.services.payment.stripe_sync import (
    PaymentOfAnotherConference,
    UnmatchedPaymentError,
    _card_payment,
    _check_refunded_charge,
    _record_succeeded,
    _refunded_payment,
    _refuse_other_conference,
    settle_card_payment,
)
from backoffice.stripe_client import StripeCharge, StripePaymentIntent, StripeRefund

logger = logging.getLogger(__name__)

# The note on a refund first reported by Stripe (made in its dashboard).
REPORTED_NOTE = "Reported by Stripe (made outside the back office)."


def _is_pk(text: str) -> bool:
    """Whether metadata text is a primary key (ASCII digits that fit one)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def _row_of(payment: Payment, refund: StripeRefund) -> Refund | None:
    """The row a reported refund is about, on a locked payment.

    By Stripe's id; else the row started here that its metadata names; else,
    for a succeeded refund, a succeeded row without a Stripe id of the same
    amount (a refund itemised before ids were kept, or counted from a charge's
    total): claimed, never counted twice.
    """
    rows = Refund.objects.filter(payment=payment)
    row = rows.filter(stripe_refund_id=refund.id).first()
    started_here = refund.metadata.get("refund_id", "")
    if row is None and _is_pk(started_here):
        row = rows.filter(pk=int(started_here), stripe_refund_id="").first()
    if row is None and refund_outcome(refund) == Refund.Status.SUCCEEDED:
        row = (
            rows.filter(stripe_refund_id="", amount=refund.amount, status=Refund.Status.SUCCEEDED)
            .order_by("created_at", "id")
            .first()
        )
    return row


def _reported_row(order: Order, payment: Payment, refund: StripeRefund) -> Refund:
    """A new PENDING row for a refund first heard of from Stripe (made in its dashboard)."""
    taken = payment.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(s=Sum("amount"))
    left = payment.amount - (taken["s"] or ZERO)
    if refund.amount > left:
        raise UnmatchedPaymentError(
            f"Stripe reports refund {refund.id} of {order.format(refund.amount)} on "
            f"{order.reference}, more than the {order.format(left)} left on that payment."
        )
    reason = refund.metadata.get("reason", "")
    return Refund.objects.create(
        payment=payment,
        amount=refund.amount,
        status=Refund.Status.PENDING,
        reason=reason if reason in Refund.Reason.values else Refund.Reason.OTHER,
        note=REPORTED_NOTE,
        stripe_refund_id=refund.id,
    )


def _payment_of_refund(conference: Conference, refund: StripeRefund) -> Payment | None:
    """The payment a reported refund is about, checked to be this conference's and currency."""
    known = Refund.objects.filter(stripe_refund_id=refund.id).select_related("payment").first()
    payment = known.payment if known is not None else None
    started_here = refund.metadata.get("refund_id", "")
    if payment is None and _is_pk(started_here):
        row = Refund.objects.filter(pk=int(started_here)).select_related("payment").first()
        intent = refund.payment_intent_id
        if row is not None and intent in ("", row.payment.stripe_payment_intent_id):
            payment = row.payment
    if payment is None:
        payment = _refunded_payment(refund.payment_intent_id, refund.charge_id)
    if payment is None:
        _refuse_other_conference(conference, refund.metadata, f"Stripe refund {refund.id}")
        if not refund.metadata.get("order_id") and not refund.payment_intent_id:
            return None
        raise UnmatchedPaymentError(
            f"Stripe refund {refund.id} (payment {refund.payment_intent_id or 'unknown'}) "
            "matches no payment here."
        )
    order = Order.objects.select_related("conference").get(pk=payment.order_id)
    if order.conference_id != conference.pk:
        raise PaymentOfAnotherConference(
            f"Stripe refund {refund.id} belongs to another conference, not {conference.slug}."
        )
    if refund.currency != order.currency.upper():
        raise UnmatchedPaymentError(
            f"Stripe refund {refund.id} is in {refund.currency}, but {order.reference} is in "
            f"{order.currency}."
        )
    return payment


def _taken_before_refund(
    order: Order, payment: Payment, *, amount: Decimal | None = None, charge_id: str = ""
) -> bool:
    """Record a card payment as taken when its refund arrives first; True if it was recorded.

    The refund proves the money was taken: ``amount`` (a charge's captured
    amount), else the amount our attempt asked for.
    """
    if payment.status in (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED):
        return False
    taken = StripePaymentIntent(
        id=payment.stripe_payment_intent_id,
        currency=order.currency.upper(),
        amount=amount or payment.amount,
        charge_id=charge_id or payment.stripe_charge_id,
    )
    _, recorded = _record_succeeded(order, payment, taken)
    payment.refresh_from_db()
    return recorded


def apply_stripe_refund(
    conference: Conference, refund: StripeRefund, *, actor: str = STRIPE
) -> Refund | None:
    """Apply a refund Stripe reports (``refund.*``, ``charge.refund.updated``), idempotently.

    Creates or updates the one row for that refund, in any order of arrival;
    a succeeded refund never goes back. Returns None for refunds not ours.
    """
    payment = _payment_of_refund(conference, refund)
    if payment is None:
        logger.info("Ignoring Stripe refund that is not ours", extra={"refund": refund.id})
        return None
    with transaction.atomic():
        order = lock_order(payment.order)
        payment = Payment.objects.get(pk=payment.pk)
        if _taken_before_refund(order, payment):
            settle_card_payment(
                order, payment.stripe_payment_intent_id, payment.amount, actor=actor
            )
        row = _row_of(payment, refund) or _reported_row(order, payment, refund)
        settle_refund(
            order,
            payment,
            row,
            refund_outcome(refund),
            actor=actor,
            stripe_refund_id=refund.id,
        )
    return row


def _apply_charge_refunds(order: Order, payment: Payment, charge: StripeCharge) -> None:
    """Bring a locked payment's refund rows in line with a refunded charge (no history written).

    From the charge's own list of refunds when it has one; else from its
    refunded total: the refunds started here that are still pending are taken
    as done first, and any rest becomes one row without a Stripe id (claimed
    later by the refund's own event, see ``_row_of``).
    """
    if charge.refunds is not None:
        for refund in charge.refunds:
            row = _row_of(payment, refund) or _reported_row(order, payment, refund)
            move_refund(row, refund_outcome(refund), stripe_refund_id=refund.id)
        return
    counted = payment.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(s=Sum("amount"))
    gap = min(charge.amount_refunded, payment.amount) - (counted["s"] or ZERO)
    pending = payment.refunds.filter(status=Refund.Status.PENDING).order_by("created_at", "id")
    for row in pending:
        if ZERO < row.amount <= gap:
            move_refund(row, Refund.Status.SUCCEEDED)
            gap -= row.amount
    if gap > ZERO:
        Refund.objects.create(
            payment=payment,
            amount=gap,
            status=Refund.Status.SUCCEEDED,
            reason=Refund.Reason.OTHER,
            note=f"{REPORTED_NOTE} Counted from charge {charge.id}'s refunded total.",
        )


def apply_charge_refund(
    conference: Conference, charge: StripeCharge, *, actor: str = STRIPE
) -> Payment | None:
    """Apply a refunded Stripe charge (``charge.refunded``): its refunds become ``Refund`` rows.

    The order's status then follows the money it still holds (``settle_order``).
    An older event with a smaller refunded amount changes nothing. A refund
    arriving before the payment's success records both, as one change.
    """
    payment = _check_refunded_charge(conference, charge)
    if payment is None:
        return None
    with transaction.atomic():
        order = lock_order(payment.order)
        payment = Payment.objects.get(pk=payment.pk)
        succeeded = _taken_before_refund(
            order, payment, amount=charge.amount_captured, charge_id=charge.id
        )
        if not payment.stripe_charge_id:
            payment.stripe_charge_id = charge.id
            payment.save(update_fields=["stripe_charge_id", "updated_at"])
        _apply_charge_refunds(order, payment, charge)
        given_back = sync_refunded_amount(payment)
        if not given_back and not succeeded:
            return payment  # an older or duplicate refund event
        refunded = payment.refunded_amount
        what = _card_payment(order, payment.stripe_payment_intent_id, payment.amount)
        refund_text = f"refunded {order.format(refunded)} in total (charge {charge.id})"
        settle_order(
            order,
            actor=actor,
            action=(
                OrderHistoryEntry.Action.CARD_PAYMENT
                if succeeded
                else OrderHistoryEntry.Action.REFUND
            ),
            message=f"{what}, {refund_text}" if given_back else what,
            amount=payment.amount if succeeded else given_back,
            refunded_with_payment=refunded if succeeded else ZERO,
        )
    logger.info(
        "Stripe refund applied",
        extra={"order": order.reference, "charge": charge.id, "refunded": str(refunded)},
    )
    return payment
