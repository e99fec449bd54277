"""Applying what Stripe reports to the ledger: PaymentIntent outcomes and refunded charges.

Used by the webhook and by the checkout return page alike; every outcome is
applied idempotently under the order's row lock.
"""

import logging
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from backoffice.models import ZERO, Conference, Order, Payment
from backoffice.services.payment.ledger import (
    flag_for_attention,
    lock_order,
    mark_order_paid,
    net_received,
)
from backoffice.stripe_client import (
    StripeCharge,
    StripePaymentIntent,
    parse_charge,
    parse_payment_intent,
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
) -> Payment:
    """Record money taken by Stripe on a locked order; mark it PAID or flag it as overpaid."""
    intent_id, amount, charge_id = intent.id, intent.amount, intent.charge_id
    if intent.currency != order.currency.upper():
        raise UnmatchedPaymentError(
            f"Stripe payment {intent_id} is in {intent.currency}, but {order.reference} is in "
            f"{order.currency}."
        )
    if payment is None:
        payment = Payment.objects.create(
            order=order,
            method=Payment.Method.STRIPE,
            status=Payment.Status.SUCCEEDED,
            amount=amount,
            stripe_payment_intent_id=intent_id,
            stripe_charge_id=charge_id,
            note="Recorded from Stripe; no checkout attempt was on file.",
        )
    elif payment.status in (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED):
        if charge_id and not payment.stripe_charge_id:
            payment.stripe_charge_id = charge_id
            payment.save(update_fields=["stripe_charge_id", "updated_at"])
        return payment  # already recorded: a duplicate or replayed event
    else:
        payment.status = Payment.Status.SUCCEEDED
        payment.amount = amount
        payment.stripe_charge_id = charge_id or payment.stripe_charge_id
        payment.save(update_fields=["status", "amount", "stripe_charge_id", "updated_at"])

    if order.status == Order.Status.PENDING:
        paid = net_received(order)
        if paid >= order.total:
            mark_order_paid(order)
        if paid > order.total:
            flag_for_attention(
                order,
                f"Overpaid by {order.format(paid - order.total)}: Stripe payment {intent_id} "
                f"of {order.format(amount)} arrived after other payments; refund the difference.",
            )
    else:
        flag_for_attention(
            order,
            f"Overpaid: Stripe payment {intent_id} of {order.format(amount)} succeeded while "
            f"the order was {order.get_status_display().lower()}; refund it or reconcile.",
        )
    logger.info(
        "Stripe payment succeeded",
        extra={"order": order.reference, "intent": intent_id, "amount": str(amount)},
    )
    return payment


def apply_payment_intent(
    conference: Conference, intent: StripePaymentIntent | dict[str, Any], outcome: str
) -> Payment | None:
    """Apply a PaymentIntent's outcome (a ``Payment.Status``) to our ledger, idempotently.

    Used by the webhook and by the checkout return page alike (a dict is
    Stripe's JSON, checked first: ``MalformedStripeEvent`` if it cannot be
    read). Returns the payment, or None for intents that are not ours or
    outcomes that do not apply.
    """
    if not isinstance(intent, StripePaymentIntent):
        intent = parse_payment_intent(intent, where="the PaymentIntent")
    intent_id = intent.id
    try:
        order = _find_order_for_intent(conference, intent)
    except PaymentOfAnotherConference:
        raise  # the caller (the webhook) records it as not for this conference
    except UnmatchedPaymentError:
        if outcome == Payment.Status.SUCCEEDED:
            raise  # money was taken for an order we cannot place: staff must see it
        order = None  # a failed or cancelled attempt of an unknown order changes nothing
    if order is None:
        logger.info("Ignoring Stripe payment that is not ours", extra={"intent": intent_id})
        return None
    with transaction.atomic():
        locked = lock_order(order)
        payment = Payment.objects.filter(order=locked, stripe_payment_intent_id=intent_id).first()
        if outcome == Payment.Status.SUCCEEDED:
            return _record_succeeded(locked, payment, intent)
        if payment is None:
            return None  # nothing was taken and we never offered this intent
        if outcome not in ALLOWED_TRANSITIONS[payment.status]:
            if outcome != payment.status:
                logger.info(
                    "Ignoring out-of-order Stripe update",
                    extra={"intent": intent_id, "status": payment.status, "outcome": outcome},
                )
            return payment
        payment.status = outcome
        fields = ["status", "updated_at"]
        if outcome == Payment.Status.FAILED:
            payment.note = intent.failure_message or "The card payment failed."
            fields.append("note")
        payment.save(update_fields=fields)
    return payment


def apply_charge_refund(
    conference: Conference, charge: StripeCharge | dict[str, Any]
) -> Payment | None:
    """Apply a refunded Stripe charge: full refund -> REFUNDED, partial -> amount kept visible.

    Then the order's status follows the money it still holds (net of refunds):
    at least the total -> stays PAID (e.g. an overpayment given back), nothing
    -> REFUNDED, anything in between -> PARTIALLY_REFUNDED. An older event with
    a smaller refunded amount changes nothing. A dict is Stripe's JSON, checked
    first (``MalformedStripeEvent`` if it cannot be read).
    """
    if not isinstance(charge, StripeCharge):
        charge = parse_charge(charge, where="the Charge")
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
    with transaction.atomic():
        order = lock_order(payment.order)
        payment = Payment.objects.get(pk=payment.pk)
        if payment.status not in (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED):
            # The refund arrived before "succeeded": the charge itself proves the money was taken.
            succeeded = StripePaymentIntent(
                id=intent_id or payment.stripe_payment_intent_id,
                currency=charge.currency,
                amount=charge.amount_captured,
                charge_id=charge_id,
            )
            payment = _record_succeeded(order, payment, succeeded)
        refunded = min(charge.amount_refunded, payment.amount)
        if refunded <= payment.refunded_amount:
            return payment  # an older or duplicate refund event
        payment.refunded_amount = refunded
        if refunded >= payment.amount:
            payment.status = Payment.Status.REFUNDED
        payment.stripe_charge_id = payment.stripe_charge_id or charge_id
        payment.save(update_fields=["refunded_amount", "status", "stripe_charge_id", "updated_at"])
        if order.status in (
            Order.Status.PAID,
            Order.Status.PARTIALLY_REFUNDED,
            Order.Status.REFUNDED,
        ):
            held = net_received(order)
            if held >= order.total:
                order.status = Order.Status.PAID
            elif held <= ZERO:
                order.status = Order.Status.REFUNDED
            else:
                order.status = Order.Status.PARTIALLY_REFUNDED
            order.save(update_fields=["status", "updated_at"])
    logger.info(
        "Stripe refund applied",
        extra={"order": order.reference, "charge": charge_id, "refunded": str(refunded)},
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
