"""Money given back by a clerk (card and manual), and moving a refund row to its outcome.

Every refund is a ``Refund`` row; ``Payment.refunded_amount`` is the sum of a
payment's SUCCEEDED refunds, updated in the transaction that makes one
succeed, and the order's status then follows its money (``settle_order``).

A card refund is started here in three steps: a PENDING row is committed
under the order lock (so a second clerk sees the amount as taken), Stripe is
called outside any transaction with an idempotency key tied to that row, and
its answer is applied under the lock by the same code as the webhooks. If
Stripe does not answer (a connection error or a time-out, which cannot tell
"never sent" from "sent, answer lost"), the row stays PENDING, holding its
amount, so a clerk's retry cannot refund it a second time under a new key:
refunding that payment again re-sends the same request with the row's key
(Stripe answers it with the first result, or makes it now), and should Stripe
have refunded, its webhook names the row in the refund's metadata
(``refund_id``) and settles it (see ``refund_sync``, which applies what Stripe
reports through ``settle_refund`` here).
"""

import logging
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from backoffice.dates import format_moment
from backoffice.models import ZERO, Order, OrderHistoryEntry, Payment, Refund

# The module, not its names: notifications imports the ledger, loading this package.
from backoffice.services import notifications
from backoffice.services.history import STRIPE, SYSTEM
from backoffice.services.payment.ledger import (
    UNANSWERED_NOTE,
    lock_order,
    parse_amount,
    refundable_rest,
    settle_order,
)
from backoffice.stripe_client import (
    PaymentProviderError,
    StripeClient,
    StripeNotConfigured,
    StripeRefund,
    StripeUnreachable,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

# Stripe keeps an idempotency key for 24 hours; re-send an unanswered refund only well inside that.
RESEND_WINDOW = timedelta(hours=23)


# Which status a refund may move to from each. A refund never goes back to
# pending; FAILED may still become SUCCEEDED: Stripe's answer to one request
# may arrive after a refusal of a concurrent one with the same key.
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


def refund_outcome(refund: StripeRefund) -> str:
    """Our status for what Stripe says of a refund."""
    return STRIPE_REFUND_STATUSES.get(refund.status, Refund.Status.PENDING)


# --- The clerk's refund ---------------------------------------------------------


def _check_refund(order: Order, payment: Payment, amount: Any, reason: str) -> Decimal:
    """The amount as a Decimal, or a ``ValidationError`` saying why (on its field, if one)."""
    try:
        value = parse_amount(amount, order.currency, what="refund")
    except ValidationError as exc:
        raise ValidationError({"amount": exc.error_list}) from None
    if reason not in Refund.Reason.values:
        raise ValidationError(
            {"reason": f"Choose a refund reason ({', '.join(Refund.Reason.values)})."}
        )
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
            {
                "amount": f"The amount {order.format(value)} is more than the "
                f"{order.format(rest)} left to refund on this payment."
            }
        )
    return value


def _manual_channel(payment: Payment, channel: str) -> str:
    """The channel a manual refund went back through: the one given, else the payment's."""
    chosen = channel or payment.channel or Payment.Channel.OTHER
    if chosen not in Payment.Channel.values:
        raise ValidationError(
            {"channel": f"Choose how the money went back ({', '.join(Payment.Channel.values)})."}
        )
    return chosen


def _stripe_client(order: Order) -> StripeClient:
    """The conference's Stripe client; a missing key is a refusal the clerk can read."""
    try:
        return StripeClient(order.conference)
    except StripeNotConfigured as exc:
        raise ValidationError(str(exc)) from exc


def refund_message(order: Order, payment: Payment, row: Refund) -> str:
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
    (nothing saved, nothing sent) what cannot be refunded; a Stripe refusal is
    a ``ValidationError`` too, with the row kept as FAILED, and so is no answer
    from Stripe, with the row kept PENDING. A card refund that got no answer is
    re-sent first, with its own key, by the next refund of that payment; asked
    again for its amount, that row is returned (the clerk's retry).
    """
    actor = staff_user or SYSTEM
    resent = _resend_unanswered(payment, actor=actor)
    if resent is not None and _same_amount(resent, amount):
        _copy_payment(payment, Payment.objects.get(pk=payment.pk))
        return resent  # the clerk's retry of the refund that got no answer
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
    except StripeUnreachable as exc:
        # The request may have reached Stripe (a time-out after sending): the row
        # stays PENDING, holding its amount, so no new refund can repeat it.
        _keep_unanswered(row)
        raise ValidationError(
            f"Stripe did not answer, so it is not known whether {order.format(row.amount)} "
            "was refunded. The refund is kept pending until Stripe says; refund this payment "
            "again in a few minutes to re-send the same request (Stripe never makes it twice)."
        ) from exc
    except PaymentProviderError as exc:
        why = f"{exc} Nothing was refunded."
        _fail_started_refund(row, why, actor=actor)
        raise ValidationError(why) from exc


def _keep_unanswered(row: Refund) -> None:
    """Note on a refund row that its request got no answer (it stays as it is, usually PENDING)."""
    with transaction.atomic():
        lock_order(row.payment.order)
        locked = Refund.objects.get(pk=row.pk)
        if locked.status == Refund.Status.PENDING and UNANSWERED_NOTE not in locked.note:
            locked.note = f"{locked.note}\n{UNANSWERED_NOTE}".strip()
            locked.save(update_fields=["note", "updated_at"])


def _resend_unanswered(payment: Payment, *, actor: "AbstractBaseUser | str") -> Refund | None:
    """Re-send a card payment's refund that got no answer, with its own key; return it settled.

    Stripe answers a request repeated with the same idempotency key with the
    first one's result (or makes it now if it never arrived), so this refunds once.
    """
    row = (
        Refund.objects.filter(
            payment_id=payment.pk,
            payment__method=Payment.Method.STRIPE,
            status=Refund.Status.PENDING,
            stripe_refund_id="",
            note__contains=UNANSWERED_NOTE,
        )
        .select_related("payment__order__conference")
        .order_by("created_at", "id")
        .first()
    )
    if row is None:
        return None
    order = row.payment.order
    if timezone.now() - row.created_at > RESEND_WINDOW:
        # Stripe keeps an idempotency key for 24 hours: after that the same key could
        # make a second refund, so only Stripe's own record can settle this row now.
        raise ValidationError(
            f"A refund of {order.format(row.amount)} on this payment got no answer from "
            f"Stripe on {format_moment(row.created_at)}, "
            "too long ago to re-send safely (Stripe would not recognise it and could refund "
            "twice). Look the payment up in Stripe's dashboard: a refund made there reaches "
            "this order by its webhook; if there is none, ask an administrator."
        )
    answer = _ask_stripe(_stripe_client(order), order, row.payment, row, actor=actor)
    return apply_refund_answer(row, answer, actor=actor)


def _same_amount(row: Refund, amount: Any) -> bool:
    """Whether the clerk asked for the amount of ``row`` (a retry of it)."""
    try:
        return parse_amount(amount, row.payment.order.currency, what="refund") == row.amount
    except ValidationError:
        return False


def _fail_started_refund(row: Refund, why: str, *, actor: "AbstractBaseUser | str") -> None:
    """Mark a refund Stripe did not make as FAILED (unless a webhook settled it meanwhile)."""
    with transaction.atomic():
        order = lock_order(row.payment.order)
        payment = Payment.objects.get(pk=row.payment_id)
        locked = Refund.objects.get(pk=row.pk)
        settle_refund(order, payment, locked, Refund.Status.FAILED, actor=actor, note=why)


def apply_refund_answer(
    row: Refund, answer: StripeRefund, *, actor: "AbstractBaseUser | str" = STRIPE
) -> Refund:
    """Apply what Stripe answered about a refund started here, under the order's lock."""
    with transaction.atomic():
        order = lock_order(row.payment.order)
        payment = Payment.objects.get(pk=row.payment_id)
        locked = Refund.objects.get(pk=row.pk)
        settle_refund(
            order, payment, locked, refund_outcome(answer), actor=actor, stripe_refund_id=answer.id
        )
    return locked


def _copy_payment(payment: Payment, fresh: Payment) -> None:
    """Copy a payment's refunded amount and status back to the caller's instance."""
    if payment is not fresh:
        payment.refunded_amount = fresh.refunded_amount
        payment.status = fresh.status


# --- Moving a refund row (shared by the clerk's path and the webhooks) ----------


def sync_refunded_amount(payment: Payment) -> Decimal:
    """Set a locked payment's refunded amount to its SUCCEEDED refunds; return the increase.

    Every path that makes a refund succeed (the desk, Stripe's events, a
    re-sync) counts it here, so here each newly counted refund's confirmation
    to the attendee is queued (once per refund, in the same transaction).
    """
    succeeded = payment.refunds.filter(status=Refund.Status.SUCCEEDED)
    total = succeeded.aggregate(s=Sum("amount"))["s"] or ZERO
    increase = total - payment.refunded_amount
    if increase:
        payment.refunded_amount = total
        if total >= payment.amount and payment.status == Payment.Status.SUCCEEDED:
            payment.status = Payment.Status.REFUNDED
        payment.save(update_fields=["refunded_amount", "status", "updated_at"])
    if increase > ZERO:
        for row in succeeded.select_related("payment__order__conference").order_by("id"):
            notifications.send_refund_confirmation(row)
    return increase


def move_refund(
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
    sync_refunded_amount(payment)
    settle_order(
        order,
        actor=actor,
        action=OrderHistoryEntry.Action.REFUND,
        message=refund_message(order, payment, row),
        amount=row.amount,
    )


def settle_refund(
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
    if not move_refund(row, outcome, stripe_refund_id=stripe_refund_id, note=note):
        return
    if outcome == Refund.Status.SUCCEEDED:
        _refund_succeeded(order, payment, row, actor=actor)
    else:
        settle_order(
            order,
            actor=actor,
            action=OrderHistoryEntry.Action.OTHER,
            message=f"{refund_message(order, payment, row)} The refund {row.status}.",
        )
