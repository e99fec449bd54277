"""Money given back: the clerk's refunds (card and manual) and the refunds Stripe reports.

Every refund is a ``Refund`` row; ``Payment.refunded_amount`` is the sum of a
payment's SUCCEEDED refunds, updated in the transaction that makes one
succeed, and the order's status then follows its money (``settle_order``).

A card refund is started here in three steps: a PENDING row is committed
under the order lock (so a second clerk sees the amount as taken), Stripe is
called outside any transaction with an idempotency key tied to that row, and
its answer is applied under the lock by the same code as the webhooks. If
Stripe cannot be reached, the row is marked FAILED ("nothing was refunded")
and the clerk is told to try again: no row stays pending forever. Should
Stripe have refunded after all, its webhook names the row in the refund's
metadata (``refund_id``) and settles it as succeeded.
"""

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum

from backoffice.models import ZERO, Conference, Order, OrderHistoryEntry, Payment, Refund
from backoffice.services.history import STRIPE, SYSTEM
from backoffice.services.payment.ledger import (
    lock_order,
    parse_amount,
    refundable_rest,
    settle_order,
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
from backoffice.stripe_client import (
    PaymentProviderError,
    StripeCharge,
    StripeClient,
    StripeNotConfigured,
    StripePaymentIntent,
    StripeRefund,
    StripeUnreachable,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

# The note on a refund row Stripe could not be asked for.
UNREACHABLE_NOTE = "Stripe could not be reached; nothing was refunded."
# The note on a refund first reported by Stripe (made in its dashboard).
REPORTED_NOTE = "Reported by Stripe (made outside the back office)."

# Which status a refund may move to from each. A refund never goes back to
# pending; FAILED may still become SUCCEEDED: a call that could not reach
# Stripe is marked failed, and Stripe's webhook says if it refunded after all.
REFUND_TRANSITIONS: dict[str, frozenset[str]] = {
    Refund.Status.PENDING: frozenset(
        {Refund.Status.SUCCEEDED, Refund.Status.FAILED, Refund.Status.CANCELED}
    ),
    Refund.Status.FAILED: frozenset({Refund.Status.SUCCEEDED}),
    Refund.Status.SUCCEEDED: frozenset(),
    Refund.Status.CANCELED: frozenset(),
}

# Stripe's refund statuses as ours; anything else (requires_action, …) is pending.
STRIPE_REFUND_STATUSES = {
    "succeeded": Refund.Status.SUCCEEDED,
    "failed": Refund.Status.FAILED,
    "canceled": Refund.Status.CANCELED,
}


def _outcome(refund: StripeRefund) -> str:
    """Our status for what Stripe says of a refund."""
    return STRIPE_REFUND_STATUSES.get(refund.status, Refund.Status.PENDING)


# --- The clerk's refund ---------------------------------------------------------


def _check_refund(order: Order, payment: Payment, amount: Any, reason: str) -> Decimal:
    """The amount as a Decimal, or a ``ValidationError`` saying why the refund is refused."""
    value = parse_amount(amount, order.currency, what="refund")
    if reason not in Refund.Reason.values:
        raise ValidationError(f"Choose a refund reason ({', '.join(Refund.Reason.values)}).")
    if payment.method == Payment.Method.COMP:
        raise ValidationError("A complimentary payment took no money; there is nothing to refund.")
    if payment.status != Payment.Status.SUCCEEDED:
        raise ValidationError(
            f"This payment is {payment.get_status_display().lower()}; "
            "only succeeded payments can be refunded."
        )
    rest = refundable_rest(payment)
    if value > rest:
        raise ValidationError(
            f"The amount {order.format(value)} is more than the {order.format(rest)} "
            "left to refund on this payment."
        )
    return value


def _manual_channel(payment: Payment, channel: str) -> str:
    """The channel a manual refund went back through: the one given, else the payment's."""
    chosen = channel or payment.channel or Payment.Channel.OTHER
    if chosen not in Payment.Channel.values:
        raise ValidationError(
            f"Choose how the money went back ({', '.join(Payment.Channel.values)})."
        )
    return chosen


def _stripe_client(order: Order) -> StripeClient:
    """The conference's Stripe client; a missing key is a refusal the clerk can read."""
    try:
        return StripeClient(order.conference)
    except StripeNotConfigured as exc:
        raise ValidationError(str(exc)) from exc


def _refund_message(order: Order, payment: Payment, row: Refund) -> str:
    """How a refund reads in the order's history."""
    if payment.method == Payment.Method.STRIPE:
        what = f"Stripe payment {payment.stripe_payment_intent_id or payment.stripe_charge_id}"
    else:
        what = f"{payment.get_method_display().lower()} payment"
    text = f"Refund of {order.format(row.amount)} on {what} ({row.get_reason_display().lower()})"
    if row.channel:
        text += f", paid back by {row.get_channel_display().lower()}"
    if row.stripe_refund_id:
        text += f", Stripe refund {row.stripe_refund_id}"
    return f"{text}. {row.note}".strip() if row.note else f"{text}."


def refund(
    payment: Payment,
    *,
    amount: Decimal,
    reason: str,
    note: str = "",
    staff_user: "AbstractBaseUser | None" = None,
    channel: str = "",
) -> Refund:
    """Give back ``amount`` of a succeeded payment: through Stripe for a card, at once for cash.

    ``channel`` (a ``Payment.Channel``) is how a manual refund was paid back;
    it defaults to the payment's own channel. Refuses with ``ValidationError``
    (nothing saved, nothing sent) what cannot be refunded; a Stripe refusal or
    outage is a ``ValidationError`` too, with the row kept as FAILED.
    """
    actor = staff_user or SYSTEM
    with transaction.atomic():
        order = lock_order(payment.order)
        locked = Payment.objects.get(pk=payment.pk)
        value = _check_refund(order, locked, amount, reason)
        fields = {"payment": locked, "amount": value, "reason": reason, "note": note.strip()}
        if locked.method != Payment.Method.STRIPE:
            row = Refund.objects.create(
                **fields,
                status=Refund.Status.SUCCEEDED,
                channel=_manual_channel(locked, channel),
                created_by=staff_user,
            )
            _refund_succeeded(order, locked, row, actor=actor)
            _copy_payment(payment, locked)
            return row
        client = _stripe_client(order)
        row = Refund.objects.create(**fields, status=Refund.Status.PENDING, created_by=staff_user)
    answer = _ask_stripe(client, order, locked, row, actor=actor)
    result = apply_refund_answer(row, answer, actor=actor)
    _copy_payment(payment, Payment.objects.get(pk=payment.pk))
    return result


def _ask_stripe(
    client: StripeClient,
    order: Order,
    payment: Payment,
    row: Refund,
    *,
    actor: "AbstractBaseUser | str",
) -> StripeRefund:
    """Ask Stripe for the refund (outside any transaction); on failure mark the row FAILED."""
    try:
        return client.create_refund(
            payment_intent_id=payment.stripe_payment_intent_id,
            charge_id=payment.stripe_charge_id,
            amount=row.amount,
            metadata={
                "refund_id": str(row.pk),
                "order_id": str(order.pk),
                "order_reference": order.reference,
                "conference": order.conference.slug,
                "reason": row.reason,
            },
            # Tied to the row: stripe-python's own retries of this call refund once.
            idempotency_key=f"refund-{row.pk}",
        )
    except PaymentProviderError as exc:
        unreachable = isinstance(exc, StripeUnreachable)
        why = UNREACHABLE_NOTE if unreachable else f"{exc} Nothing was refunded."
        _fail_started_refund(row, why, actor=actor)
        if unreachable:
            raise ValidationError(f"{UNREACHABLE_NOTE} Try again in a few minutes.") from exc
        raise ValidationError(why) from exc


def _fail_started_refund(row: Refund, why: str, *, actor: "AbstractBaseUser | str") -> None:
    """Mark a refund Stripe did not make as FAILED (unless a webhook settled it meanwhile)."""
    with transaction.atomic():
        order = lock_order(row.payment.order)
        payment = Payment.objects.get(pk=row.payment_id)
        locked = Refund.objects.get(pk=row.pk)
        _settle_refund(order, payment, locked, Refund.Status.FAILED, actor=actor, note=why)


def apply_refund_answer(
    row: Refund, answer: StripeRefund, *, actor: "AbstractBaseUser | str" = STRIPE
) -> Refund:
    """Apply what Stripe answered about a refund started here, under the order's lock."""
    with transaction.atomic():
        order = lock_order(row.payment.order)
        payment = Payment.objects.get(pk=row.payment_id)
        locked = Refund.objects.get(pk=row.pk)
        _settle_refund(
            order, payment, locked, _outcome(answer), actor=actor, stripe_refund_id=answer.id
        )
    return locked


def _copy_payment(payment: Payment, fresh: Payment) -> None:
    """Copy a payment's refunded amount and status back to the caller's instance."""
    if payment is not fresh:
        payment.refunded_amount = fresh.refunded_amount
        payment.status = fresh.status


# --- Moving a refund row (shared by the clerk's path and the webhooks) ----------


def _sync_refunded_amount(payment: Payment) -> Decimal:
    """Set a locked payment's refunded amount to its SUCCEEDED refunds; return the increase."""
    succeeded = payment.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(s=Sum("amount"))
    total = succeeded["s"] or ZERO
    increase = total - payment.refunded_amount
    if increase:
        payment.refunded_amount = total
        if total >= payment.amount and payment.status == Payment.Status.SUCCEEDED:
            payment.status = Payment.Status.REFUNDED
        payment.save(update_fields=["refunded_amount", "status", "updated_at"])
    return increase


def _move_refund(
    refund: Refund, outcome: str, *, stripe_refund_id: str = "", note: str = ""
) -> bool:
    """Give a locked refund row Stripe's id and move it to ``outcome`` if it may; True if moved."""
    fields = []
    if stripe_refund_id and not refund.stripe_refund_id:
        refund.stripe_refund_id = stripe_refund_id
        fields.append("stripe_refund_id")
    moved = outcome in REFUND_TRANSITIONS[refund.status]
    if moved:
        refund.status = outcome
        fields.append("status")
        if note:
            refund.note = f"{refund.note}\n{note}".strip()
            fields.append("note")
    elif outcome != refund.status:
        logger.info(
            "Ignoring out-of-order refund update",
            extra={"refund": refund.pk, "status": refund.status, "outcome": outcome},
        )
    if fields:
        refund.save(update_fields=[*fields, "updated_at"])
    return moved


def _refund_succeeded(
    order: Order, payment: Payment, row: Refund, *, actor: "AbstractBaseUser | str"
) -> None:
    """A locked payment's refund has succeeded: count it, settle the order, write its history."""
    _sync_refunded_amount(payment)
    settle_order(
        order,
        actor=actor,
        action=OrderHistoryEntry.Action.REFUND,
        message=_refund_message(order, payment, row),
        amount=row.amount,
    )


def _settle_refund(
    order: Order,
    payment: Payment,
    row: Refund,
    outcome: str,
    *,
    actor: "AbstractBaseUser | str",
    stripe_refund_id: str = "",
    note: str = "",
) -> None:
    """Move a locked refund row and, if it moved, settle the order and write its history."""
    if not _move_refund(row, outcome, stripe_refund_id=stripe_refund_id, note=note):
        return
    if outcome == Refund.Status.SUCCEEDED:
        _refund_succeeded(order, payment, row, actor=actor)
    else:
        settle_order(
            order,
            actor=actor,
            action=OrderHistoryEntry.Action.OTHER,
            message=f"{_refund_message(order, payment, row)} The refund {row.status}.",
        )


# --- What Stripe reports ------------------------------------------------------


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
    if row is None and _outcome(refund) == Refund.Status.SUCCEEDED:
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
    recorded = _record_succeeded(order, payment, taken)
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
        _settle_refund(
            order, payment, row, _outcome(refund), actor=actor, stripe_refund_id=refund.id
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
            _move_refund(row, _outcome(refund), stripe_refund_id=refund.id)
        return
    counted = payment.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(s=Sum("amount"))
    gap = min(charge.amount_refunded, payment.amount) - (counted["s"] or ZERO)
    pending = payment.refunds.filter(status=Refund.Status.PENDING).order_by("created_at", "id")
    for row in pending:
        if ZERO < row.amount <= gap:
            _move_refund(row, Refund.Status.SUCCEEDED)
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
        given_back = _sync_refunded_amount(payment)
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
        )
    logger.info(
        "Stripe refund applied",
        extra={"order": order.reference, "charge": charge.id, "refunded": str(refunded)},
    )
    return payment
