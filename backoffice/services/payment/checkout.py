"""The attendee's checkout: starting a card payment, the return page, the payment link.

Calls to Stripe happen outside the short transactions that lock the order:
no row lock is held while waiting on the network.
"""

import logging
from decimal import Decimal
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from backoffice.models import ZERO, Order, OrderHistoryEntry, Payment, generate_payment_token
from backoffice.money import format_amount, has_valid_precision
from backoffice.services.history import CHECKOUT, STRIPE, SYSTEM, record_history
from backoffice.services.payment.ledger import (
    OPEN_STRIPE_STATUSES,
    OrderAction,
    allowed_actions,
    latest_attempt,
    lock_order,
    net_received,
    open_attempt,
    settle_order,
)
from backoffice.services.payment.stripe_sync import (
    INTENT_STATUS_OUTCOMES,
    UnmatchedPaymentError,
    apply_payment_intent,
    outcome_of,
)
from backoffice.services.payment_links import retire_payment_token
from backoffice.stripe_client import (
    PaymentIntentMissing,
    PaymentProviderError,
    StripeClient,
    StripeNotConfigured,
    StripePaymentIntent,
    StripeUnreachable,
    to_stripe_amount,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)


# Stripe intent statuses in which the attendee can still pay the same intent.
REUSABLE_INTENT_STATUSES = frozenset(
    {"requires_payment_method", "requires_confirmation", "requires_action"}
)
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
    order: Order, intent: StripePaymentIntent, amount: Decimal
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
                extra={"order": locked.reference, "intent": intent.id, "balance": str(balance)},
            )
            return None, None
        try:
            with transaction.atomic():
                payment = Payment.objects.create(
                    order=locked,
                    method=Payment.Method.STRIPE,
                    status=Payment.Status.PENDING,
                    amount=amount,
                    stripe_payment_intent_id=intent.id,
                )
        except IntegrityError:
            # Real Stripe replayed the same intent for the same idempotency key and
            # another request already stored it (and it has since moved on).
            return None, Payment.objects.get(stripe_payment_intent_id=intent.id)
    return payment, None


def cancel_outdated_attempt(
    attempt: Payment,
    *,
    actor: "AbstractBaseUser | str",
    reason: str = "Cancelled: a manual payment changed the balance due.",
) -> None:
    """After a desk write commits: cancel the order's card attempt at Stripe, best effort.

    After a manual payment its intent is for the old balance; after the order
    was cancelled nothing is due. Either way a pay page still open on it could
    charge it. When Stripe cannot be reached the desk write stays recorded and
    the attempt stays as it is: the next pay page load replaces it (its amount
    no longer matches the balance) or shows the order cancelled, and the
    webhook or the re-sync (``sync_stripe``) settles it.

    When Stripe refuses because the attendee already paid (the intent succeeded
    or is processing, its webhook not yet here), that outcome is applied at once
    (``apply_refused_attempt``): the order then holds both payments, and the
    ledger's rule flags it overpaid with a reason naming both.
    """
    client: StripeClient | None = None
    try:
        client = StripeClient(attempt.order.conference)
        client.cancel_payment_intent(attempt.stripe_payment_intent_id)
    except (PaymentProviderError, StripeNotConfigured) as exc:
        logger.warning(
            "Could not cancel the card payment attempt at Stripe",
            extra={
                "order": attempt.order.reference,
                "intent": attempt.stripe_payment_intent_id,
                "reason": reason,
                "error": str(exc),
            },
        )
        refused = isinstance(exc, PaymentProviderError) and not isinstance(exc, StripeUnreachable)
        if client is not None and refused:
            apply_refused_attempt(client, attempt)
        return
    _retire_attempt(attempt, reason, actor=actor)


def apply_refused_attempt(client: StripeClient, attempt: Payment) -> Payment | None:
    """Apply what Stripe says of an attempt it refused to cancel; best effort, logged.

    Returns the payment when an outcome was applied, else None (still open at
    Stripe, or Stripe could not be asked: the webhook or the re-sync settles it).
    """
    intent_id = attempt.stripe_payment_intent_id
    try:
        intent = client.retrieve_payment_intent(intent_id)
    except PaymentProviderError as exc:
        logger.warning(
            "Could not look up the card payment Stripe refused to cancel",
            extra={"order": attempt.order.reference, "intent": intent_id, "error": str(exc)},
        )
        return None
    outcome = outcome_of(intent)
    if not outcome:
        return None
    try:
        return apply_payment_intent(client.conference, intent, outcome, actor=STRIPE)
    except UnmatchedPaymentError as exc:  # e.g. paid in another currency: staff must look
        logger.error(
            "Could not apply the card payment Stripe refused to cancel",
            extra={"order": attempt.order.reference, "intent": intent_id, "error": str(exc)},
        )
        return None


def _retire_attempt(attempt: Payment, reason: str, *, actor: "AbstractBaseUser | str") -> None:
    """Mark an open attempt CANCELED after its intent was cancelled at Stripe."""
    with transaction.atomic():
        locked = lock_order(attempt.order)
        retired = Payment.objects.filter(pk=attempt.pk, status__in=OPEN_STRIPE_STATUSES).update(
            status=Payment.Status.CANCELED, note=reason
        )
        if retired:
            settle_order(
                locked,
                actor=actor,
                action=OrderHistoryEntry.Action.CARD_UPDATE,
                message=f"Stripe payment {attempt.stripe_payment_intent_id}: {reason}",
            )


def _retrieve_attempt(client: StripeClient, attempt: Payment) -> StripePaymentIntent:
    """The attempt's intent as Stripe has it now; status "missing" if Stripe does not know it."""
    try:
        return client.retrieve_payment_intent(attempt.stripe_payment_intent_id)
    except PaymentIntentMissing:
        # Not at this Stripe account (keys changed, test data wiped): nothing can be
        # paid on it any more, so it is closed and a new one started.
        return StripePaymentIntent(
            id=attempt.stripe_payment_intent_id,
            currency=client.currency,
            amount=ZERO,
            status="missing",
        )


def _resume_attempt(client: StripeClient, attempt: Payment, balance: Decimal) -> str | None:
    """Resume the order's latest attempt: its client secret, "" to look again, None to replace.

    A paid or processing intent is applied first (the webhook may be late); a
    declined, stale or vanished one is cancelled at Stripe and retired here.
    """
    intent = _retrieve_attempt(client, attempt)
    if intent.status in ("succeeded", "processing"):
        outcome = INTENT_STATUS_OUTCOMES[intent.status]
        apply_payment_intent(client.conference, intent, outcome, actor=CHECKOUT)
        if intent.status == "processing":
            raise ValidationError(
                "Your payment is being processed. This page will show it as paid once "
                "Stripe confirms it; please do not pay again."
            )
        return ""  # look again: the order may be paid now, or still owe a rest
    reusable = intent.status in REUSABLE_INTENT_STATUSES
    if attempt.status == Payment.Status.FAILED:
        # Declined, and back to "requires_payment_method" at Stripe: cancel it
        # before starting anew, so only one intent of the order can be paid.
        # The row keeps its FAILED status and Stripe's message.
        if reusable:
            client.cancel_payment_intent(intent.id)
        return None
    if reusable and intent.amount == balance and intent.currency == client.currency:
        return intent.client_secret
    if intent.status == "missing":
        reason = "Closed: Stripe no longer knows this payment (were the keys changed?)."
    elif intent.status == "canceled":
        reason = "Cancelled at Stripe."
    else:
        client.cancel_payment_intent(intent.id)
        reason = f"Replaced: the balance due changed to {format_amount(balance, client.currency)}."
    _retire_attempt(attempt, reason, actor=CHECKOUT)
    return None


def _initiate_payment(order: Order, client: StripeClient) -> str:
    """One pass of ``initiate_payment``; returns "" when it lost a race and must look again."""
    with transaction.atomic():
        locked = lock_order(order)
        balance = _payable_balance(locked)
        attempt = latest_attempt(locked)
        attempts_so_far = Payment.objects.filter(order=locked, method=Payment.Method.STRIPE).count()
    if attempt is not None:
        resumed = _resume_attempt(client, attempt, balance)
        if resumed is not None:
            return resumed
    # The same key for every request that starts from the same ledger state, so
    # concurrent page loads get one intent from Stripe instead of several.
    minor = to_stripe_amount(balance, client.currency)
    key = f"order-{locked.reference}-attempt-{attempts_so_far}-{minor}-{client.currency}"
    intent = client.create_payment_intent(locked, amount=balance, idempotency_key=key)
    try:
        created, winner = _record_new_attempt(locked, intent, balance)
    except ValidationError:
        client.cancel_payment_intent(intent.id)
        raise
    if created is not None:
        logger.info(
            "Started Stripe payment",
            extra={
                "order": locked.reference,
                "intent": intent.id,
                "amount": str(balance),
                "attendee": locked.user_id,
            },
        )
        return intent.client_secret
    if winner is None or winner.stripe_payment_intent_id != intent.id:
        # Another page load stored its intent first, or ours is for a stale
        # balance: drop ours, then look again.
        client.cancel_payment_intent(intent.id)
    return ""


def refresh_from_stripe(order: Order, *, payment_intent_id: str = "") -> Payment | None:
    """Fetch the order's Stripe attempt from Stripe and apply its state (the return page).

    ``payment_intent_id`` (from the return URL) is only used when it is one
    of this order's own attempts; otherwise the newest attempt is checked.
    """
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
    outcome = outcome_of(intent)
    if outcome:
        return apply_payment_intent(order.conference, intent, outcome, actor=CHECKOUT)
    payment.refresh_from_db()
    return payment


def regenerate_payment_link(order: Order, *, staff_user: "AbstractBaseUser | None" = None) -> str:
    """Give a PENDING order a new random payment token; the old link stops working."""
    with transaction.atomic():
        locked = lock_order(order)
        allowed_actions(locked)[OrderAction.REGENERATE_PAYMENT_LINK].check()
        retire_payment_token(locked)  # the old link then names whom to ask, nothing more
        locked.payment_token = generate_payment_token()
        locked.save(update_fields=["payment_token", "updated_at"])
        record_history(
            locked,
            actor=staff_user or SYSTEM,
            action=OrderHistoryEntry.Action.PAYMENT_LINK,
            message="Regenerated the payment link; the old link no longer works.",
        )
    order.payment_token = locked.payment_token
    logger.info("Regenerated payment link", extra={"order": locked.reference})
    return locked.payment_token
