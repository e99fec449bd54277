"""Payment workflows: complimentary orders, manual payments (and Stripe, later).

Every write locks the order row (``select_for_update``) and re-reads its
status inside the transaction before checking anything, so two clerks (or a
clerk and a webhook) acting on one order at once are serialised.
"""

import logging
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum

from backoffice.models import ZERO, Order, Payment
from backoffice.money import has_valid_precision, quantum
from backoffice.signals import order_paid

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


def succeeded_total(order: Order) -> Decimal:
    """Sum of the order's succeeded payments, read from the ledger (not an annotation)."""
    return (
        Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED).aggregate(
            s=Sum("amount")
        )["s"]
        or ZERO
    )


def mark_order_paid(order: Order) -> None:
    """Move a locked order to PAID, clear its hold, and send ``order_paid`` on commit."""
    order.status = Order.Status.PAID
    order.hold_expires_at = None
    order.save(update_fields=["status", "hold_expires_at", "updated_at"])
    transaction.on_commit(lambda: order_paid.send(sender=Order, order=order, user=order.user))


def _sync_caller_copy(original: Order, locked: Order) -> None:
    """Copy the fresh state back to the instance the caller passed in."""
    if original is not locked:
        original.status = locked.status
        original.hold_expires_at = locked.hold_expires_at
        original.updated_at = locked.updated_at
        original.__dict__.pop("paid_sum", None)
        original.__dict__.pop("balance_sum", None)


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
            extra={"order": locked.reference, "staff_user": getattr(staff_user, "pk", None)},
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
            paid = succeeded_total(locked)
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
