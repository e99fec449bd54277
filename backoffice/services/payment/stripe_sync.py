"""Applying what Stripe reports to the ledger: PaymentIntent outcomes.

(Refunds, reported or started here, are applied in ``refunds``.)

Used by the webhook and by the checkout return page alike; every outcome is
applied idempotently under the order's row lock.
"""

import logging
from collections.abc import Mapping
from decimal import Decimal

from django.db import transaction

from backoffice.models import Conference, Order, OrderHistoryEntry, Payment
from backoffice.services.history import STRIPE
from backoffice.services.payment.ledger import lock_order, settle_order
from backoffice.stripe_client import (
    StripeCharge,
    StripePaymentIntent,
)

logger = logging.getLogger(__name__)


# Which of our statuses a payment may move to from each status. Anything else
# is an out-of-order or stale event and is ignored: a payment never moves
# backwards (a late "failed" never undoes "succeeded"). Money taken always wins,
# so SUCCEEDED is reachable from every non-final status.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Payment.Status.PENDING: frozenset(
        {
            Payment.Status.PROCESSING,
            Payment.Status.SUCCEEDED,
            Payment.Status.FAILED,
            Payment.Status.CANCELED,
        }
    ),
    Payment.Status.PROCESSING: frozenset(
        {Payment.Status.SUCCEEDED, Payment.Status.FAILED, Payment.Status.CANCELED}
    ),
    Payment.Status.FAILED: frozenset(
        {Payment.Status.PROCESSING, Payment.Status.SUCCEEDED, Payment.Status.CANCELED}
    ),
    Payment.Status.CANCELED: frozenset({Payment.Status.SUCCEEDED}),
    Payment.Status.SUCCEEDED: frozenset({Payment.Status.REFUNDED}),
    Payment.Status.REFUNDED: frozenset(),
}


# Stripe intent status -> our status, when reconciling a retrieved intent.
INTENT_STATUS_OUTCOMES = {
    "succeeded": Payment.Status.SUCCEEDED,
    "processing": Payment.Status.PROCESSING,
    "canceled": Payment.Status.CANCELED,
}


def outcome_of(intent: StripePaymentIntent) -> str:
    """The outcome (a ``Payment.Status``) a retrieved intent reports; "" while it is open."""
    if intent.status in INTENT_STATUS_OUTCOMES:
        return INTENT_STATUS_OUTCOMES[intent.status]
    if intent.status == "requires_payment_method" and intent.failed:
        return Payment.Status.FAILED
    return ""


class UnmatchedPaymentError(Exception):
    """A Stripe payment names an order we cannot find in this conference; staff must look."""


class PaymentOfAnotherConference(UnmatchedPaymentError):
    """The payment clearly belongs to another conference (several may share a Stripe account).

    Stripe sends every event of an account to every endpoint of that account, so
    each conference's webhook also sees its siblings' payments: not an error,
    nothing to do here.
    """


def _find_order_for_intent(conference: Conference, intent: StripePaymentIntent) -> Order | None:
    """Find the order a PaymentIntent belongs to: by our attempt row, else by its metadata.

    Returns None for intents that are not ours (no ``order_id`` metadata);
    raises ``UnmatchedPaymentError`` when the metadata names an order that is
    missing or belongs to another conference.
    """
    intent_id = intent.id
    payment = (
        Payment.objects.filter(stripe_payment_intent_id=intent_id).select_related("order").first()
    )
    metadata = intent.metadata
    if payment is not None:
        order = payment.order
    else:
        order_id = metadata.get("order_id", "")
        if not order_id:
            return None
        # Only ASCII digits that fit a primary key: int() also reads "١٢" and "１２".
        is_pk = order_id.isascii() and order_id.isdigit() and len(order_id) <= 18
        order = Order.objects.filter(pk=int(order_id)).first() if is_pk else None
        reference = metadata.get("order_reference")
        if order is None or (reference and reference != order.reference):
            _refuse_other_conference(conference, metadata, f"Stripe payment {intent_id}")
            raise UnmatchedPaymentError(
                f"Stripe payment {intent_id} names order {reference or order_id}, "
                "which does not exist here."
            )
    if order.conference_id != conference.pk:
        raise PaymentOfAnotherConference(
            f"Stripe payment {intent_id} belongs to order {order.reference} of another "
            f"conference, not {conference.slug}."
        )
    return order


def _refuse_other_conference(
    conference: Conference, metadata: Mapping[str, str], what: str
) -> None:
    """Raise ``PaymentOfAnotherConference`` when the metadata names another conference."""
    slug = metadata.get("conference", "")
    if slug and slug != conference.slug:
        raise PaymentOfAnotherConference(
            f"{what} was made for conference {slug}, not {conference.slug}."
        )


def _record_succeeded(
    order: Order, payment: Payment | None, intent: StripePaymentIntent
) -> tuple[Payment, bool]:
    """Record money taken by Stripe on a locked order's payment; the payment, and if it was new.

    False when it was already recorded; the caller settles the order
    (``settle_order``) when it is True.
    """
    if intent.currency != order.currency.upper():
        raise UnmatchedPaymentError(
            f"Stripe payment {intent.id} is in {intent.currency}, but {order.reference} is in "
            f"{order.currency}."
        )
    if payment is None:
        payment = Payment.objects.create(
            order=order,
            method=Payment.Method.STRIPE,
            status=Payment.Status.SUCCEEDED,
            amount=intent.amount,
            stripe_payment_intent_id=intent.id,
            stripe_charge_id=intent.charge_id,
            note="Recorded from Stripe; no checkout attempt was on file.",
        )
    elif payment.status in (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED):
        if intent.charge_id and not payment.stripe_charge_id:
            payment.stripe_charge_id = intent.charge_id
            payment.save(update_fields=["stripe_charge_id", "updated_at"])
        return payment, False  # already recorded: a duplicate or replayed event
    else:
        payment.status = Payment.Status.SUCCEEDED
        payment.amount = intent.amount
        payment.stripe_charge_id = intent.charge_id or payment.stripe_charge_id
        payment.save(update_fields=["status", "amount", "stripe_charge_id", "updated_at"])
    logger.info(
        "Stripe payment succeeded",
        extra={"order": order.reference, "intent": intent.id, "amount": str(intent.amount)},
    )
    return payment, True


def _card_payment(order: Order, intent_id: str, amount: Decimal) -> str:
    """How a Stripe payment reads in the order's history and attention reasons."""
    return f"Stripe payment {intent_id} of {order.format(amount)}"


def settle_card_payment(order: Order, intent_id: str, amount: Decimal, *, actor: str) -> None:
    """Settle a locked order after a card payment was recorded on it (one history entry)."""
    settle_order(
        order,
        actor=actor,
        action=OrderHistoryEntry.Action.CARD_PAYMENT,
        message=_card_payment(order, intent_id, amount),
        amount=amount,
    )


def apply_payment_intent(
    conference: Conference,
    intent: StripePaymentIntent,
    outcome: str,
    *,
    actor: str = STRIPE,
) -> Payment | None:
    """Apply a PaymentIntent's outcome (a ``Payment.Status``) to our ledger, idempotently.

    Used by the webhook (``actor`` Stripe) and by the checkout return page
    (``actor`` checkout) alike. Returns the payment, or None for intents that
    are not ours or outcomes that do not apply.

    Inside a caller's transaction (the webhook's) it adds no savepoint: an
    error it raises there rolls the caller's transaction back.
    """
    with transaction.atomic(savepoint=False):
        payment = _lock_attempt(conference, intent.id)
        if payment is not None:
            return _apply_outcome(payment.order, payment, intent, outcome, actor=actor)
    try:
        order = _find_order_for_intent(conference, intent)
    except PaymentOfAnotherConference:
        raise  # the caller (the webhook) records it as not for this conference
    except UnmatchedPaymentError:
        if outcome == Payment.Status.SUCCEEDED:
            raise  # money was taken for an order we cannot place: staff must see it
        order = None  # a failed or cancelled attempt of an unknown order changes nothing
    if order is None:
        logger.info("Ignoring Stripe payment that is not ours", extra={"intent": intent.id})
        return None
    with transaction.atomic(savepoint=False):
        locked = lock_order(order)
        payment = Payment.objects.filter(order=locked, stripe_payment_intent_id=intent.id).first()
        return _apply_outcome(locked, payment, intent, outcome, actor=actor)


def _lock_attempt(conference: Conference, intent_id: str) -> Payment | None:
    """Our payment of this intent in this conference, its order locked; one query.

    The order row is locked first, then the payment's, so both are read as
    they are once the lock is held. The order's conference is the one given
    (not read again); its user is read only if asked for, which applying an
    outcome never does. None when no payment of this conference has the intent.
    """
    payment = (
        Payment.objects.select_for_update(of=("order", "self"))
        .select_related("order")
        .filter(stripe_payment_intent_id=intent_id, order__conference=conference)
        .first()
    )
    if payment is not None:
        payment.order.conference = conference
    return payment


def _apply_outcome(
    order: Order, payment: Payment | None, intent: StripePaymentIntent, outcome: str, *, actor: str
) -> Payment | None:
    """Apply the outcome to a locked order's payment of the intent (None: none on file yet)."""
    if outcome == Payment.Status.SUCCEEDED:
        payment, recorded = _record_succeeded(order, payment, intent)
        if recorded:
            settle_card_payment(order, intent.id, intent.amount, actor=actor)
        return payment
    if payment is not None:
        _apply_attempt_update(order, payment, intent, outcome, actor=actor)
    return payment


def _apply_attempt_update(
    order: Order, payment: Payment, intent: StripePaymentIntent, outcome: str, *, actor: str
) -> None:
    """Move a locked order's card attempt to a status that took no money, if it may move."""
    if outcome not in ALLOWED_TRANSITIONS[payment.status]:
        if outcome != payment.status:
            logger.info(
                "Ignoring out-of-order Stripe update",
                extra={"intent": intent.id, "status": payment.status, "outcome": outcome},
            )
        return
    payment.status = outcome
    fields = ["status", "updated_at"]
    message = f"Stripe payment {intent.id}: {payment.get_status_display().lower()}."
    if outcome == Payment.Status.FAILED:
        payment.note = intent.failure_message or "The card payment failed."
        fields.append("note")
        message += f" {payment.note}"
    payment.save(update_fields=fields)
    settle_order(order, actor=actor, action=OrderHistoryEntry.Action.CARD_UPDATE, message=message)


def _check_refunded_charge(conference: Conference, charge: StripeCharge) -> Payment | None:
    """The payment a refunded charge is about, checked to be this conference's and currency."""
    intent_id, charge_id = charge.payment_intent_id, charge.id
    payment = _refunded_payment(intent_id, charge_id)
    if payment is None:
        metadata = charge.metadata
        _refuse_other_conference(conference, metadata, f"Refunded charge {charge_id}")
        if not metadata.get("order_id") and not intent_id:
            return None
        raise UnmatchedPaymentError(
            f"Stripe refunded charge {charge_id} (payment {intent_id or 'unknown'}), "
            "which matches no payment here."
        )
    if payment.order.conference_id != conference.pk:
        raise PaymentOfAnotherConference(
            f"Refunded charge {charge_id} belongs to another conference, not {conference.slug}."
        )
    if charge.currency != payment.order.currency.upper():
        raise UnmatchedPaymentError(
            f"Refunded charge {charge_id} is in {charge.currency}, but "
            f"{payment.order.reference} is in {payment.order.currency}."
        )
    return payment


def _refunded_payment(intent_id: str, charge_id: str) -> Payment | None:
    """The payment a refunded charge belongs to: by intent id, else by charge id (both indexed)."""
    payments = Payment.objects.select_related("order")
    if intent_id:
        payment = payments.filter(stripe_payment_intent_id=intent_id).first()
        if payment is not None:
            return payment
    if charge_id:
        return payments.filter(stripe_charge_id=charge_id).first()
    return None
