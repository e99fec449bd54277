"""The ledger's shared rule and reads: locking an order, money received, amounts.

Every write locks the order row (``select_for_update``) and re-reads its
status inside the transaction before checking anything, so two clerks (or a
clerk and a webhook) acting on one order at once are serialised.
"""

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum

from backoffice.models import NET_OF_REFUNDS, ZERO, Order, Payment
from backoffice.money import has_valid_precision, quantum
from backoffice.services.order_paid import send_order_paid
from backoffice.stripe_client import LEDGER_AMOUNT_LIMIT

logger = logging.getLogger(__name__)

# Our card attempt is still open while it is one of these.
OPEN_STRIPE_STATUSES = (Payment.Status.PENDING, Payment.Status.PROCESSING)


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


def sync_caller_copy(original: Order, locked: Order) -> None:
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


def flag_for_attention(order: Order, reason: str) -> None:
    """Flag a locked order for staff, appending the reason to any earlier ones."""
    reasons = [line for line in order.attention_reason.splitlines() if line.strip()]
    if reason not in reasons:
        reasons.append(reason)
    order.needs_attention = True
    order.attention_reason = "\n".join(reasons)
    order.save(update_fields=["needs_attention", "attention_reason", "updated_at"])
    logger.warning("Order needs attention", extra={"order": order.reference, "reason": reason})


def latest_attempt(order: Order) -> Payment | None:
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


def open_attempt(order: Order) -> Payment | None:
    """The order's newest Stripe attempt that is still open, if any."""
    return (
        Payment.objects.filter(
            order=order, method=Payment.Method.STRIPE, status__in=OPEN_STRIPE_STATUSES
        )
        .exclude(stripe_payment_intent_id="")
        .order_by("-created_at", "-id")
        .first()
    )
