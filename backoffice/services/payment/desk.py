"""The desk's writes: complimentary orders and payments taken off-platform."""

import logging
from decimal import Decimal
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction

from backoffice.models import ZERO, Order, OrderHistoryEntry, Payment
from backoffice.services.history import SYSTEM
from backoffice.services.payment.checkout import cancel_outdated_attempt
from backoffice.services.payment.ledger import (
    OrderAction,
    allowed_actions,
    lock_order,
    open_attempt,
    parse_amount,
    settle_order,
    sync_caller_copy,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)


def _manual_message(payment: Payment) -> str:
    """How a manual payment reads in the order's history."""
    text = f"Manual payment of {payment.order.format(payment.amount)}"
    if payment.reference:
        text += f" (reference {payment.reference})"
    return text


def _log_desk_write(message: str, payment: Payment, staff_user: "AbstractBaseUser | None") -> None:
    """Log a desk write: which order, how much, which staff user."""
    logger.info(
        message,
        extra={
            "order": payment.order.reference,
            "amount": str(payment.amount),
            "staff_user": getattr(staff_user, "pk", None),
        },
    )


def record_comp(order: Order, *, staff_user: "AbstractBaseUser | None" = None) -> Payment:
    """Record a complimentary (zero) payment on a PENDING zero-total order and mark it PAID."""
    with transaction.atomic():
        locked = lock_order(order)
        allowed_actions(locked)[OrderAction.RECORD_COMP].check()
        payment = Payment.objects.create(
            order=locked,
            method=Payment.Method.COMP,
            status=Payment.Status.SUCCEEDED,
            amount=ZERO,
            created_by=staff_user,
        )
        settle_order(
            locked,
            actor=staff_user or SYSTEM,
            action=OrderHistoryEntry.Action.COMP,
            message="Marked comp",
            amount=ZERO,
        )
    sync_caller_copy(order, locked)
    _log_desk_write("Recorded comp payment", payment, staff_user)
    return payment


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
    actor = staff_user or SYSTEM
    with transaction.atomic():
        locked = lock_order(order)
        currency = locked.conference.currency
        value = parse_amount(amount, currency)
        allowed_actions(locked)[OrderAction.RECORD_MANUAL].check()
        balance = locked.balance_due
        if value > balance:
            raise ValidationError(
                f"The amount {locked.format(value)} is more than the balance due of "
                f"{locked.format(balance)}."
            )
        attempt = open_attempt(locked)
        payment = Payment.objects.create(
            order=locked,
            method=Payment.Method.MANUAL,
            status=Payment.Status.SUCCEEDED,
            amount=value,
            reference=reference.strip(),
            note=note.strip(),
            created_by=staff_user,
        )
        settle_order(
            locked,
            actor=actor,
            action=OrderHistoryEntry.Action.MANUAL_PAYMENT,
            message=_manual_message(payment),
            amount=value,
        )
        if attempt is not None:
            # A pay page left open must not charge the old balance. Stripe is
            # called only after the cash is committed, and failing to reach it
            # leaves the cash recorded (see cancel_outdated_attempt).
            attempt.order = locked
            transaction.on_commit(lambda: cancel_outdated_attempt(attempt, actor=actor))
    sync_caller_copy(order, locked)
    _log_desk_write("Recorded manual payment", payment, staff_user)
    return payment
