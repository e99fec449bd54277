"""The desk's writes: complimentary orders and payments taken off-platform."""

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, Value, When

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

# The longest form key the ledger stores (``Payment.idempotency_key``).
KEY_MAX_LENGTH = Payment._meta.get_field("idempotency_key").max_length


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


def _check_manual_fields(channel: str, idempotency_key: str) -> None:
    """Refuse a channel that is not one of ``Payment.Channel`` and a key the ledger cannot hold."""
    if channel not in Payment.Channel.values:
        raise ValidationError(
            {
                "channel": "Choose how the money was paid: cash, bank transfer, cheque, "
                "card terminal or other."
            }
        )
    if len(idempotency_key) > KEY_MAX_LENGTH:
        raise ValidationError(
            f"The form's key is longer than {KEY_MAX_LENGTH} characters; open the form again."
        )


def _replayed(
    order: Order, payment: Payment, *, amount: Decimal, channel: str, reference: str
) -> Payment:
    """The payment a form's key recorded, when this call asks for the same on the same order.

    Anything else (another order, amount, channel or reference under the same
    key) is refused: the caller would otherwise be shown a payment it did not ask for.
    """
    asked = (order.pk, Payment.Method.MANUAL, amount, channel, reference)
    if (payment.order_id, payment.method, payment.amount, payment.channel, payment.reference) == (
        asked
    ):
        return payment
    recorded_on = payment.order
    raise ValidationError(
        f"This form was already used to record {recorded_on.format(payment.amount)} "
        f"({payment.get_channel_display() or payment.get_method_display()}) on "
        f"{recorded_on.reference}; open the form again to record another payment."
    )


def _payment_with_key(order: Order, key: str) -> Payment | None:
    """The payment recorded with a form's key: on this order if any, else on another one."""
    return (
        Payment.objects.filter(idempotency_key=key)
        .exclude(idempotency_key="")  # lets PostgreSQL use the partial index
        .select_related("order__conference")
        .order_by(Case(When(order=order, then=Value(0)), default=Value(1)), "pk")
        .first()
    )


def _create_once(order: Order, *, idempotency_key: str, **fields: Any) -> tuple[Payment, bool]:
    """Create a locked order's payment, or return the one its key already recorded.

    The insert runs in a savepoint: a row with the same (order, key), written
    by a caller that did not hold the order's lock, makes the constraint
    ``payment_unique_idempotency_key`` refuse it, and that row is returned.
    """
    try:
        with transaction.atomic():
            return Payment.objects.create(
                order=order, idempotency_key=idempotency_key, **fields
            ), True
    except IntegrityError:
        existing = _payment_with_key(order, idempotency_key) if idempotency_key else None
        if existing is None or existing.order_id != order.pk:
            raise
        return existing, False


def _record_manual_locked(
    locked: Order,
    *,
    amount: Decimal,
    reference: str,
    note: str,
    channel: str,
    idempotency_key: str,
    staff_user: "AbstractBaseUser | None",
) -> tuple[Payment, bool]:
    """``record_manual_once`` on an order locked by the caller's transaction."""
    actor = staff_user or SYSTEM
    try:
        value = parse_amount(amount, locked.conference.currency)
    except ValidationError as exc:
        raise ValidationError({"amount": exc.error_list}) from None
    asked = {"amount": value, "channel": channel, "reference": reference}
    earlier = _payment_with_key(locked, idempotency_key) if idempotency_key else None
    if earlier is not None:
        return _replayed(locked, earlier, **asked), False
    allowed_actions(locked)[OrderAction.RECORD_MANUAL].check()
    balance = locked.balance_due
    if value > balance:
        raise ValidationError(
            {
                "amount": f"The amount {locked.format(value)} is more than the balance due of "
                f"{locked.format(balance)}."
            }
        )
    attempt = open_attempt(locked)
    payment, created = _create_once(
        locked,
        idempotency_key=idempotency_key,
        method=Payment.Method.MANUAL,
        status=Payment.Status.SUCCEEDED,
        amount=value,
        channel=channel,
        reference=reference,
        note=note.strip(),
        created_by=staff_user,
    )
    if not created:
        return _replayed(locked, payment, **asked), False
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
    return payment, True


def record_manual_once(
    order: Order,
    *,
    amount: Decimal,
    reference: str = "",
    note: str = "",
    channel: str = Payment.Channel.OTHER,
    idempotency_key: str = "",
    staff_user: "AbstractBaseUser | None" = None,
) -> tuple[Payment, bool]:
    """``record_manual``, also saying whether the payment is new (False: the key's earlier one).

    A non-empty ``idempotency_key`` (a form's one-time key) records at most
    one payment per order: a second call with it, in sequence or at the same
    moment, records nothing, writes no history and returns the first payment.
    A refusal about one argument names it (``amount``, ``channel``), so a form shows
    it on that field.
    """
    _check_manual_fields(channel, idempotency_key)
    with transaction.atomic():
        locked = lock_order(order)
        payment, created = _record_manual_locked(
            locked,
            amount=amount,
            reference=reference.strip(),
            note=note,
            channel=channel,
            idempotency_key=idempotency_key,
            staff_user=staff_user,
        )
    sync_caller_copy(order, locked)
    if created:
        _log_desk_write("Recorded manual payment", payment, staff_user)
    return payment, created


def record_manual(
    order: Order,
    *,
    amount: Decimal,
    reference: str = "",
    note: str = "",
    channel: str = Payment.Channel.OTHER,
    idempotency_key: str = "",
    staff_user: "AbstractBaseUser | None" = None,
) -> Payment:
    """Record an off-platform payment (cash, wire) of at most the balance due.

    The order becomes PAID when its succeeded payments reach the total. With
    an ``idempotency_key``, the same key again returns the payment it recorded
    (see ``record_manual_once``).
    """
    payment, _created = record_manual_once(
        order,
        amount=amount,
        reference=reference,
        note=note,
        channel=channel,
        idempotency_key=idempotency_key,
        staff_user=staff_user,
    )
    return payment
