"""The attendee's checkout: starting a card payment, the return page, the payment link.

Calls to Stripe happen outside the short transactions that lock the order:
no row lock is held while waiting on the network.
"""

import logging
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from backoffice.models import ZERO, Order, Payment, generate_payment_token
from backoffice.money import format_amount, has_valid_precision
from backoffice.services.payment.ledger import (
    OPEN_STRIPE_STATUSES,
    latest_attempt,
    lock_order,
    net_received,
    open_attempt,
)
from backoffice.services.payment.stripe_sync import apply_payment_intent
from backoffice.stripe_client import (
    PaymentIntentMissing,
    PaymentProviderError,
    StripeClient,
    StripeNotConfigured,
    to_stripe_amount,
)

logger = logging.getLogger(__name__)


# Stripe intent statuses in which the attendee can still pay the same intent.
REUSABLE_INTENT_STATUSES = frozenset(
    {"requires_payment_method", "requires_confirmation", "requires_action"}
)
# Stripe intent status -> our status, when reconciling a retrieved intent.
INTENT_STATUS_OUTCOMES = {
    "succeeded": Payment.Status.SUCCEEDED,
    "processing": Payment.Status.PROCESSING,
    "canceled": Payment.Status.CANCELED,
}
RACE_RETRIES = 3


def initiate_payment(order: Order) -> str:
    """Start (or resume) paying a PENDING order's balance due by card; return the client secret.

    Reuses the order's open Stripe attempt while its amount still matches;
    otherwise cancels it and starts a new one. Raises ``ValidationError``
    when the order cannot be paid, ``StripeNotConfigured`` without Stripe
    keys and ``PaymentProviderError`` when Stripe fails (no row is left behind).
    """
    client = StripeClient(order.conference)
    for _ in range(RACE_RETRIES):
        client_secret = _initiate_payment(order, client)
        if client_secret:
            return client_secret
    raise ValidationError("The payment could not be started; please reload the page.")


def _payable_balance(order: Order) -> Decimal:
    """Return the balance due of a locked order, or raise why it cannot be paid online."""
    if order.status == Order.Status.PAID:
        raise ValidationError(f"{order.reference} is already paid.")
    if order.status != Order.Status.PENDING:
        raise ValidationError(
            f"{order.reference} is {order.get_status_display().lower()}; "
            "only pending orders can be paid."
        )
    balance = order.total - net_received(order)
    if balance <= ZERO:
        raise ValidationError(
            f"{order.reference} has no balance due; staff should use “Mark comp” "
            "for a zero-total order."
        )
    if not has_valid_precision(balance, order.currency):
        # E.g. the conference's currency was changed from USD to JPY after the order.
        raise ValidationError(
            f"{order.reference} owes {balance}, which cannot be charged in "
            f"{order.currency.upper()} (too many decimal places); please contact the organisers."
        )
    return balance


def _record_new_attempt(
    order: Order, intent: dict[str, Any], amount: Decimal
) -> tuple[Payment | None, Payment | None]:
    """Store a freshly created intent as the order's pending attempt, under the order lock.

    Returns ``(created, winner)``: ``created`` when ours was stored, else
    ``winner``, the open attempt another request stored first, or
    ``(None, None)`` when the balance changed while Stripe created the intent
    (e.g. a clerk recorded cash meanwhile): the intent's amount is stale.
    """
    with transaction.atomic():
        locked = lock_order(order)
        balance = _payable_balance(locked)
        existing = open_attempt(locked)
        if existing is not None:
            return None, existing
        if balance != amount:
            logger.info(
                "Balance changed while starting a Stripe payment; starting again",
                extra={"order": locked.reference, "intent": intent["id"], "balance": str(balance)},
            )
            return None, None
        try:
            with transaction.atomic():
                payment = Payment.objects.create(
                    order=locked,
                    method=Payment.Method.STRIPE,
                    status=Payment.Status.PENDING,
                    amount=amount,
                    stripe_payment_intent_id=intent["id"],
                )
        except IntegrityError:
            # Real Stripe replayed the same intent for the same idempotency key and
            # another request already stored it (and it has since moved on).
            return None, Payment.objects.get(stripe_payment_intent_id=intent["id"])
    return payment, None


def cancel_outdated_attempt(attempt: Payment) -> None:
    """After a manual payment commits: cancel the order's open card attempt, best effort.

    Its intent is for the old balance; a pay page still open on it could charge
    that amount. When Stripe cannot be reached (or refuses, e.g. the attendee
    is paying right now) the cash stays recorded and the attempt stays open:
    the next pay page load replaces it, since its amount no longer matches the
    balance, and a payment made on it meanwhile is recorded and flagged as
    overpaid for staff.
    """
    try:
        StripeClient(attempt.order.conference).cancel_payment_intent(
            attempt.stripe_payment_intent_id
        )
    except (PaymentProviderError, StripeNotConfigured) as exc:
        logger.warning(
            "Could not cancel the card payment attempt of an order paid in part at the desk",
            extra={
                "order": attempt.order.reference,
                "intent": attempt.stripe_payment_intent_id,
                "error": str(exc),
            },
        )
        return
    _retire_attempt(attempt, "Cancelled: a manual payment changed the balance due.")


def _retire_attempt(attempt: Payment, reason: str) -> None:
    """Mark an open attempt CANCELED after its intent was cancelled at Stripe."""
    with transaction.atomic():
        lock_order(attempt.order)
        Payment.objects.filter(pk=attempt.pk, status__in=OPEN_STRIPE_STATUSES).update(
            status=Payment.Status.CANCELED, note=reason
        )


def _initiate_payment(order: Order, client: StripeClient) -> str:
    """One pass of ``initiate_payment``; returns "" when it lost a race and must look again."""
    with transaction.atomic():
        locked = lock_order(order)
        balance = _payable_balance(locked)
        attempt = latest_attempt(locked)
        attempts_so_far = Payment.objects.filter(order=locked, method=Payment.Method.STRIPE).count()
    currency = locked.conference.currency.upper()
    minor = to_stripe_amount(balance, currency)

    if attempt is not None:
        try:
            intent = client.retrieve_payment_intent(attempt.stripe_payment_intent_id)
        except PaymentIntentMissing:
            # Not at this Stripe account (keys changed, test data wiped): nothing can be
            # paid on it any more, so close it and start afresh.
            intent = {"id": attempt.stripe_payment_intent_id, "status": "missing"}
        status = intent.get("status")
        if status in ("succeeded", "processing"):
            apply_payment_intent(locked.conference, intent, INTENT_STATUS_OUTCOMES[status])
            if status == "processing":
                raise ValidationError(
                    "Your payment is being processed. This page will show it as paid once "
                    "Stripe confirms it; please do not pay again."
                )
            return ""  # look again: the order may be paid now, or still owe a rest
        if attempt.status == Payment.Status.FAILED:
            # Declined, and back to "requires_payment_method" at Stripe: cancel it
            # before starting anew, so only one intent of the order can be paid.
            # The row keeps its FAILED status and Stripe's message.
            if status in REUSABLE_INTENT_STATUSES:
                client.cancel_payment_intent(attempt.stripe_payment_intent_id)
        elif (
            status in REUSABLE_INTENT_STATUSES
            and intent.get("amount") == minor
            and str(intent.get("currency")).upper() == currency
        ):
            return str(intent["client_secret"])
        else:
            if status == "missing":
                reason = "Closed: Stripe no longer knows this payment (were the keys changed?)."
            elif status == "canceled":
                reason = "Cancelled at Stripe."
            else:
                client.cancel_payment_intent(attempt.stripe_payment_intent_id)
                reason = f"Replaced: the balance due changed to {format_amount(balance, currency)}."
            _retire_attempt(attempt, reason)

    # The same key for every request that starts from the same ledger state, so
    # concurrent page loads get one intent from Stripe instead of several.
    key = f"order-{locked.reference}-attempt-{attempts_so_far}-{minor}-{currency}"
    intent = client.create_payment_intent(locked, amount=balance, idempotency_key=key)
    try:
        created, winner = _record_new_attempt(locked, intent, balance)
    except ValidationError:
        client.cancel_payment_intent(intent["id"])
        raise
    if created is not None:
        logger.info(
            "Started Stripe payment",
            extra={
                "order": locked.reference,
                "intent": intent["id"],
                "amount": str(balance),
                "attendee": locked.user_id,
            },
        )
        return str(intent["client_secret"])
    if winner is None or winner.stripe_payment_intent_id != intent["id"]:
        # Another page load stored its intent first, or ours is for a stale
        # balance: drop ours, then look again.
        client.cancel_payment_intent(intent["id"])
    return ""


def refresh_from_stripe(order: Order, *, payment_intent_id: str = "") -> Payment | None:
    """Fetch the order's Stripe attempt from Stripe and apply its state."""
    attempts = Payment.objects.filter(order=order, method=Payment.Method.STRIPE).exclude(
        stripe_payment_intent_id=""
    )
    payment = None
    if payment_intent_id:
        # Only an intent we created for this very order; the query string alone proves nothing.
        payment = attempts.filter(stripe_payment_intent_id=payment_intent_id).first()
    if payment is None:
        payment = attempts.order_by("-created_at", "-id").first()
    if payment is None:
        return None
    client = StripeClient(order.conference)
    intent = client.retrieve_payment_intent(payment.stripe_payment_intent_id)
    status = intent.get("status")
    if status in INTENT_STATUS_OUTCOMES:
        return apply_payment_intent(order.conference, intent, INTENT_STATUS_OUTCOMES[status])
    if status == "requires_payment_method" and intent.get("last_payment_error"):
        return apply_payment_intent(order.conference, intent, Payment.Status.FAILED)
    payment.refresh_from_db()
    return payment


def regenerate_payment_link(order: Order) -> str:
    """Give the order a new random payment token; the old link stops working."""
    with transaction.atomic():
        locked = lock_order(order)
        locked.payment_token = generate_payment_token()
        locked.save(update_fields=["payment_token", "updated_at"])
    order.payment_token = locked.payment_token
    logger.info("Regenerated payment link", extra={"order": locked.reference})
    return locked.payment_token
