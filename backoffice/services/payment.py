"""Payment workflows: complimentary orders, manual payments and Stripe card payments.

Every write locks the order row (``select_for_update``) and re-reads its
status inside the transaction before checking anything, so two clerks (or a
clerk and a webhook) acting on one order at once are serialised. Calls to
Stripe happen outside those short transactions: no row lock is held while
waiting on the network.
"""

import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum

from backoffice.models import (
    NET_OF_REFUNDS,
    ZERO,
    Conference,
    Order,
    Payment,
    generate_payment_token,
)
from backoffice.money import format_amount, has_valid_precision, quantum
from backoffice.services.order_paid import send_order_paid
from backoffice.stripe_client import (
    LEDGER_AMOUNT_LIMIT,
    PaymentIntentMissing,
    PaymentProviderError,
    StripeCharge,
    StripeClient,
    StripeNotConfigured,
    StripePaymentIntent,
    parse_charge,
    parse_payment_intent,
    to_stripe_amount,
)

__all__ = [
    "PaymentOfAnotherConference",
    "PaymentProviderError",
    "PaymentService",
    "StripeNotConfigured",
    "UnmatchedPaymentError",
    "apply_charge_refund",
    "apply_payment_intent",
]

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)


def lock_order(order: Order) -> Order:
    """Re-read the order under a row lock; call inside ``transaction.atomic``."""
    return (
        Order.objects.select_for_update(of=("self",))
        .select_related("conference", "user")
        .get(pk=order.pk)
    )


def net_received(order: Order) -> Decimal:
    """Money received on the order net of refunds, read from the ledger (not an annotation).

    The sum of ``amount - refunded_amount`` over SUCCEEDED and REFUNDED payments
    (a REFUNDED payment nets to zero); see ``backoffice.models.NET_OF_REFUNDS``.
    """
    return (
        Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED).aggregate(
            s=Sum(NET_OF_REFUNDS)
        )["s"]
        or ZERO
    )


# The former name, kept for callers written before refunds were netted out.
succeeded_total = net_received


def mark_order_paid(order: Order) -> None:
    """Move a locked order to PAID, clear its hold, and send ``order_paid`` on commit.

    The signal is sent only if the order is still sold once the transaction
    has committed: a refund applied later in the same transaction (a
    ``charge.refunded`` arriving before ``payment_intent.succeeded``) may have
    turned it REFUNDED, and nobody must act on a paid order that is not.
    It is sent once per order, even if the worker dies right after the commit
    (see ``backoffice.services.order_paid``).
    """
    order.status = Order.Status.PAID
    order.hold_expires_at = None
    order.save(update_fields=["status", "hold_expires_at", "updated_at"])
    order_id = order.pk
    transaction.on_commit(lambda: send_order_paid(order_id))


def _sync_caller_copy(original: Order, locked: Order) -> None:
    """Copy the fresh state back to the instance the caller passed in."""
    if original is not locked:
        original.status = locked.status
        original.hold_expires_at = locked.hold_expires_at
        original.updated_at = locked.updated_at
        original.__dict__.pop("paid_sum", None)
        original.__dict__.pop("balance_sum", None)


# The ledger stores 12 digits with 2 decimal places: amounts below 10,000,000,000.
AMOUNT_LIMIT = LEDGER_AMOUNT_LIMIT


def parse_amount(amount: Any, currency: str) -> Decimal:
    """Validate a money amount for the currency and return it as a Decimal."""
    if isinstance(amount, float | bool):
        raise ValidationError("Enter the amount as an exact decimal number, e.g. 50.00.")
    try:
        value = Decimal(str(amount).strip()) if not isinstance(amount, Decimal) else amount
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationError("Enter a valid amount, e.g. 50.00.") from None
    if not value.is_finite():
        raise ValidationError("Enter a valid amount, e.g. 50.00.")
    if value <= ZERO:
        raise ValidationError("The payment amount must be greater than zero.")
    if value >= AMOUNT_LIMIT:
        raise ValidationError(
            f"The amount is too large: enter less than {AMOUNT_LIMIT:,} {currency.upper()}."
        )
    if not has_valid_precision(value, currency):
        step = quantum(currency)
        if step == 1:
            raise ValidationError(
                f"{currency} amounts have no decimal places; enter a whole number."
            )
        raise ValidationError(
            f"{currency} amounts have at most {-step.as_tuple().exponent} decimal places."
        )
    return value.quantize(quantum(currency))


class PaymentService:
    """Stateless payment operations on orders; every refusal is a ``ValidationError``."""

    @staticmethod
    def record_comp(order: Order, *, staff_user: "AbstractBaseUser | None" = None) -> Payment:
        """Record a complimentary (zero) payment on a PENDING zero-total order and mark it PAID."""
        with transaction.atomic():
            locked = lock_order(order)
            if locked.status != Order.Status.PENDING:
                raise ValidationError(
                    f"{locked.reference} is {locked.get_status_display().lower()}; "
                    "only pending orders can be comped."
                )
            if locked.total > ZERO:
                raise ValidationError(
                    f"{locked.reference} has a total of {locked.format(locked.total)}; "
                    "only zero-total orders can be comped."
                )
            payment = Payment.objects.create(
                order=locked,
                method=Payment.Method.COMP,
                status=Payment.Status.SUCCEEDED,
                amount=ZERO,
                created_by=staff_user,
            )
            mark_order_paid(locked)
        _sync_caller_copy(order, locked)
        logger.info(
            "Recorded comp payment",
            extra={
                "order": locked.reference,
                "amount": str(ZERO),
                "staff_user": getattr(staff_user, "pk", None),
            },
        )
        return payment

    @staticmethod
    def record_manual(
        order: Order,
        *,
        amount: Decimal,
        reference: str = "",
        note: str = "",
        staff_user: "AbstractBaseUser | None" = None,
    ) -> Payment:
        """Record an off-platform payment (cash, wire) of at most the balance due.

        The order becomes PAID when its succeeded payments reach the total.
        """
        with transaction.atomic():
            locked = lock_order(order)
            currency = locked.conference.currency
            value = parse_amount(amount, currency)
            if locked.status != Order.Status.PENDING:
                raise ValidationError(
                    f"{locked.reference} is {locked.get_status_display().lower()}; "
                    "manual payments can only be recorded for pending orders."
                )
            paid = net_received(locked)
            balance = locked.total - paid
            if balance <= ZERO:
                raise ValidationError(
                    f"{locked.reference} has no balance due; use “Mark comp” for zero-total orders."
                )
            if value > balance:
                raise ValidationError(
                    f"The amount {locked.format(value)} is more than the balance due of "
                    f"{locked.format(balance)}."
                )
            open_attempt = _open_attempt(locked)
            payment = Payment.objects.create(
                order=locked,
                method=Payment.Method.MANUAL,
                status=Payment.Status.SUCCEEDED,
                amount=value,
                reference=reference.strip(),
                note=note.strip(),
                created_by=staff_user,
            )
            if paid + value >= locked.total:
                mark_order_paid(locked)
            if open_attempt is not None:
                # A pay page left open must not charge the old balance. Stripe is
                # called only after the cash is committed, and failing to reach it
                # leaves the cash recorded (see _cancel_outdated_attempt).
                open_attempt.order = locked
                transaction.on_commit(lambda: _cancel_outdated_attempt(open_attempt))
        _sync_caller_copy(order, locked)
        logger.info(
            "Recorded manual payment",
            extra={
                "order": locked.reference,
                "amount": str(value),
                "staff_user": getattr(staff_user, "pk", None),
            },
        )
        return payment

    @staticmethod
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

    @staticmethod
    def refresh_from_stripe(order: Order, *, payment_intent_id: str = "") -> Payment | None:
        """Reconcile the order's Stripe attempt with Stripe's current state (checkout return page).

        ``payment_intent_id`` (from the return URL) is only used when it is one
        of this order's own attempts; otherwise the newest attempt is checked.
        """
        return _refresh_from_stripe(order, payment_intent_id)

    @staticmethod
    def regenerate_payment_link(order: Order) -> str:
        """Give the order a new payment token so its old payment link stops working."""
        return _regenerate_payment_link(order)


# --- Stripe -------------------------------------------------------------------

# Our attempt is still open while it is one of these.
OPEN_STRIPE_STATUSES = (Payment.Status.PENDING, Payment.Status.PROCESSING)
# Stripe intent statuses in which the attendee can still pay the same intent.
REUSABLE_INTENT_STATUSES = frozenset(
    {"requires_payment_method", "requires_confirmation", "requires_action"}
)
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
RACE_RETRIES = 3


class UnmatchedPaymentError(Exception):
    """A Stripe payment names an order we cannot find in this conference; staff must look."""


class PaymentOfAnotherConference(UnmatchedPaymentError):
    """The payment clearly belongs to another conference (several may share a Stripe account).

    Stripe sends every event of an account to every endpoint of that account, so
    each conference's webhook also sees its siblings' payments: not an error,
    nothing to do here.
    """


def _flag_for_attention(order: Order, reason: str) -> None:
    """Flag a locked order for staff, appending the reason to any earlier ones."""
    reasons = [line for line in order.attention_reason.splitlines() if line.strip()]
    if reason not in reasons:
        reasons.append(reason)
    order.needs_attention = True
    order.attention_reason = "\n".join(reasons)
    order.save(update_fields=["needs_attention", "attention_reason", "updated_at"])
    logger.warning("Order needs attention", extra={"order": order.reference, "reason": reason})


def _latest_attempt(order: Order) -> Payment | None:
    """The order's newest Stripe attempt that is open or declined (its intent may be payable)."""
    return (
        Payment.objects.filter(
            order=order,
            method=Payment.Method.STRIPE,
            status__in=(*OPEN_STRIPE_STATUSES, Payment.Status.FAILED),
        )
        .exclude(stripe_payment_intent_id="")
        .order_by("-created_at", "-id")
        .first()
    )


def _open_attempt(order: Order) -> Payment | None:
    """The order's newest Stripe attempt that is still open, if any."""
    return (
        Payment.objects.filter(
            order=order, method=Payment.Method.STRIPE, status__in=OPEN_STRIPE_STATUSES
        )
        .exclude(stripe_payment_intent_id="")
        .order_by("-created_at", "-id")
        .first()
    )


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
            _flag_for_attention(
                order,
                f"Overpaid by {order.format(paid - order.total)}: Stripe payment {intent_id} "
                f"of {order.format(amount)} arrived after other payments; refund the difference.",
            )
    else:
        _flag_for_attention(
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
        existing = _open_attempt(locked)
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


def _cancel_outdated_attempt(attempt: Payment) -> None:
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
        attempt = _latest_attempt(locked)
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


def _refresh_from_stripe(order: Order, payment_intent_id: str) -> Payment | None:
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


def _regenerate_payment_link(order: Order) -> str:
    """Give the order a new random payment token; the old link stops working."""
    with transaction.atomic():
        locked = lock_order(order)
        locked.payment_token = generate_payment_token()
        locked.save(update_fields=["payment_token", "updated_at"])
    order.payment_token = locked.payment_token
    logger.info("Regenerated payment link", extra={"order": locked.reference})
    return locked.payment_token
