"""The ledger's shared rule and reads: locking an order, money received, amounts.

Every write locks the order row (``select_for_update``) and re-reads its
status inside the transaction before checking anything, so two clerks (or a
clerk and a webhook) acting on one order at once are serialised.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce

from backoffice.models import (
    MONEY_HELD_STATUSES,
    NET_OF_REFUNDS,
    ZERO,
    Dispute,
    Order,
    OrderHistoryEntry,
    Payment,
    Refund,
)
from backoffice.models import MONEY_OUT as MONEY_OUT_EXPRESSION
from backoffice.money import has_valid_precision, quantum
from backoffice.services.history import SYSTEM, WORKER, record_history
from backoffice.services.ledger_totals import count_order, order_payments, save_counted
from backoffice.services.order_paid import STILL_SOLD_STATUSES, send_order_paid_task
from backoffice.stripe_client import LEDGER_AMOUNT_LIMIT

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from backoffice.services.background import TaskFailure

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
    """Money received on the order net of refunds and lost disputes, read from the ledger.

    The sum of ``amount - refunded_amount - lost_dispute_amount`` over SUCCEEDED
    and REFUNDED payments (a REFUNDED payment nets to zero); see
    ``backoffice.models.NET_OF_REFUNDS``.
    """
    return (
        Payment.objects.filter(order=order, status__in=MONEY_HELD_STATUSES).aggregate(
            s=Sum(NET_OF_REFUNDS)
        )["s"]
        or ZERO
    )


# The former name, kept for callers written before refunds were netted out.
succeeded_total = net_received


# What an order holds, read from its ledger in one query.
@dataclass(frozen=True)
class Money:
    """An order's money: received before refunds (gross), net of refunds, and if any was taken."""

    gross: Decimal
    net: Decimal
    taken: bool


# Actions that bring money in: the ones that can overpay an order.
MONEY_IN = frozenset(
    {
        OrderHistoryEntry.Action.COMP,
        OrderHistoryEntry.Action.MANUAL_PAYMENT,
        OrderHistoryEntry.Action.CARD_PAYMENT,
    }
)
# Actions that give money back: the ones that can clear an overpayment.
MONEY_OUT = frozenset({OrderHistoryEntry.Action.REFUND, OrderHistoryEntry.Action.DISPUTE_LOST})
# The prefix of every attention reason about an overpayment (cleared once it is given back).
OVERPAID = "Overpaid"
# The prefix of every attention reason about an open dispute (recomputed by each dispute write).
DISPUTED = "Disputed"
# A payment refunded and also lost to a dispute: the attendee got the money back twice.
GIVEN_BACK_TWICE = "Given back twice"
# A dispute in one of these is over: it no longer flags its order.
CLOSED_DISPUTE_STATUSES = frozenset(
    {
        Dispute.Status.WON,
        Dispute.Status.LOST,
        Dispute.Status.WARNING_CLOSED,
        Dispute.Status.PREVENTED,
    }
)


def money_from(payments: Iterable[Payment]) -> Money:
    """An order's money from its SUCCEEDED and REFUNDED payments (see ``NET_OF_REFUNDS``)."""
    held = [payment for payment in payments if payment.status in MONEY_HELD_STATUSES]
    return Money(
        gross=sum((payment.amount for payment in held), ZERO),
        net=sum((p.amount - (p.refunded_amount + p.lost_dispute_amount) for p in held), ZERO),
        taken=bool(held),
    )


def status_from_money(current: str, total: Decimal, money: Money) -> str:
    """The status an order's money gives it; a cancelled order stays cancelled.

    PENDING until payments (a comp counts) reached the total; after that the
    money still held decides: at least the total PAID, nothing REFUNDED,
    anything in between PARTIALLY_REFUNDED.
    """
    if current == Order.Status.CANCELLED:
        return Order.Status.CANCELLED
    if not money.taken or money.gross < total:
        return Order.Status.PENDING
    if money.net >= total:
        return Order.Status.PAID
    if money.net <= ZERO:
        return Order.Status.REFUNDED
    return Order.Status.PARTIALLY_REFUNDED


def dispute_text(order: Order, dispute: Dispute) -> str:
    """How a dispute reads in the order's history and attention reasons (names its payment)."""
    payment = dispute.payment
    reason = f" ({dispute.reason.replace('_', ' ')})" if dispute.reason else ""
    return (
        f"Stripe dispute {dispute.stripe_dispute_id} of {order.format(dispute.amount)} on "
        f"Stripe payment {payment.stripe_payment_intent_id or payment.stripe_charge_id}{reason}"
    )


def _open_dispute_reasons(order: Order) -> list[str]:
    """One attention reason per open dispute on the order's payments, oldest first."""
    disputes = (
        Dispute.objects.filter(payment__order=order)
        .exclude(status__in=CLOSED_DISPUTE_STATUSES)
        .select_related("payment")
        .order_by("created_at", "id")
    )
    return [
        f"{DISPUTED}: {dispute_text(order, dispute)}: "
        f"{dispute.get_status_display().lower()}; answer it in Stripe's dashboard."
        for dispute in disputes
    ]


def describe_payment(payment: Payment) -> str:
    """How a payment reads in staff text, e.g. 'Stripe payment pi_1 of 100.00 USD'."""
    amount = payment.order.format(payment.amount)
    if payment.method == Payment.Method.STRIPE:
        return f"Stripe payment {payment.stripe_payment_intent_id} of {amount}"
    if payment.method == Payment.Method.COMP:
        return "complimentary payment"
    how = payment.get_channel_display().lower() if payment.channel else "manual"
    text = f"manual payment of {amount} ({how}"
    return f"{text}, reference {payment.reference})" if payment.reference else f"{text})"


def _held_payments(order: Order) -> str:
    """Every payment the order still holds money from, oldest first, for an attention reason."""
    payments = (
        Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED)
        .exclude(method=Payment.Method.COMP)
        .select_related("order__conference")
        .order_by("created_at", "id")
    )
    return ", ".join(describe_payment(payment) for payment in payments)


def _given_back_twice(order: Order) -> list[str]:
    """One reason per payment whose refunds and lost disputes took back more than it brought."""
    payments = Payment.objects.filter(
        order=order, refunded_amount__gt=ZERO, lost_dispute_amount__gt=ZERO
    ).filter(amount__lt=MONEY_OUT_EXPRESSION)
    return [
        f"{GIVEN_BACK_TWICE}: {describe_payment(payment)} was refunded "
        f"{order.format(payment.refunded_amount)} and lost a dispute of "
        f"{order.format(payment.lost_dispute_amount)}; contest the dispute in Stripe's "
        "dashboard or ask the attendee for the money back."
        for payment in payments.select_related("order__conference").order_by("created_at", "id")
    ]


def _attention_reasons(
    order: Order, *, before: str, money: Money, action: str, message: str
) -> list[str]:
    """The order's attention reasons after this change: one added, or overpaid ones cleared.

    An overpayment's reason names every payment the order holds (a card payment
    and the desk's cash for the same order, say), so staff see which to give back.
    Only money given back (a refund, a lost dispute) clears overpaid ones, and
    flags a payment given back twice (refunded, then lost to a dispute). A
    dispute write replaces the dispute reasons with one per dispute still open
    (so a won or lost dispute no longer flags the order).
    """
    money_in, money_out = action in MONEY_IN, action in MONEY_OUT
    reasons = [line for line in order.attention_reason.splitlines() if line.strip()]
    if action in (OrderHistoryEntry.Action.DISPUTE, OrderHistoryEntry.Action.DISPUTE_LOST):
        kept = [line for line in reasons if not line.startswith(DISPUTED)]
        for line in _open_dispute_reasons(order):
            if line not in reasons:
                logger.warning(
                    "Order needs attention", extra={"order": order.reference, "reason": line}
                )
            kept.append(line)
        reasons = kept
    new = ""
    if money_in and before != Order.Status.PENDING:
        new = (
            f"{OVERPAID}: {message} succeeded while the order was "
            f"{Order.Status(before).label.lower()}. Received: {_held_payments(order)}. "
            "Refund it or reconcile."
        )
    elif money_in and money.net > order.total:
        new = (
            f"{OVERPAID} by {order.format(money.net - order.total)}: {message} arrived "
            f"after other payments. Received: {_held_payments(order)}. Refund the difference."
        )
    elif money_out and order.status != Order.Status.CANCELLED and money.net <= order.total:
        reasons = [line for line in reasons if not line.startswith(OVERPAID)]
    added = [new] if new else []
    if money_out:
        added += _given_back_twice(order)
    for line in added:
        if line not in reasons:
            reasons.append(line)
            logger.warning(
                "Order needs attention", extra={"order": order.reference, "reason": line}
            )
    return reasons


def settle_order(
    order: Order,
    *,
    actor: "AbstractBaseUser | str | None",
    action: OrderHistoryEntry.Action,
    message: str = "",
    amount: Decimal | None = None,
    refunded_with_payment: Decimal = ZERO,
) -> OrderHistoryEntry:
    """Derive everything that follows from a locked order's money; call at the end of a write.

    ``refunded_with_payment``: what this write gave back of a payment it also
    took (a refund Stripe reported before the payment's success); it counts
    towards paying a pending order, unlike money given back before this write.

    The one place that sets ``Order.status`` (from ``status_from_money``; the
    action ``CANCEL`` makes it CANCELLED, which the money then never undoes), the
    attention flag (an overpayment, money on a cancelled order; cleared when
    an overpayment was given back), clears the hold once paid or cancelled, enqueues
    ``order_paid`` for the worker (sent once per order, and only if it is still
    sold then: see ``backoffice.services.order_paid``), adds the write's change
    to the dashboard's maintained totals (``services.ledger_totals``), and
    appends one entry to the order's history.
    """
    before = order.status
    payments = order_payments(order)  # one read for the money rule and the totals
    money = money_from(payments)
    if before == Order.Status.PENDING:
        # A pending order was never paid in full: money already given back (a
        # part payment refunded) does not count towards paying it, only what it holds.
        money = replace(money, gross=money.net + refunded_with_payment)
    # A cancel is the one status not derived from money; the rule keeps it from then on.
    cancelling = action == OrderHistoryEntry.Action.CANCEL
    current = Order.Status.CANCELLED if cancelling else before
    order.status = status_from_money(current, order.total, money)
    old_reasons = [line for line in order.attention_reason.splitlines() if line.strip()]
    reasons = _attention_reasons(order, before=before, money=money, action=action, message=message)
    if reasons != old_reasons:
        order.attention_reason = "\n".join(reasons)
        order.needs_attention = bool(reasons)
    if order.status in (Order.Status.PAID, Order.Status.CANCELLED):
        order.hold_expires_at = None
    entry = record_history(
        order,
        actor=actor,
        action=action,
        message=message,
        amount=amount,
        status_before=before,
        status_after=order.status,
    )
    # The dashboard's totals change in this transaction, under this lock, or not at all
    # (on PostgreSQL in the same statement as the order's own UPDATE). Last: every write
    # of a conference and day adds to the same totals row, locked from here to the commit.
    save_counted(
        order,
        fields=["status", "needs_attention", "attention_reason", "hold_expires_at", "updated_at"],
        change=count_order(order, payments),
    )
    if order.status in STILL_SOLD_STATUSES and order.paid_notified_at is None:
        # In this transaction: the task commits with the payment or vanishes with it.
        # After the order's row is written, so a backend that runs tasks at once (Django's
        # ImmediateBackend) reads the new status too.
        send_order_paid_task.enqueue(order_id=order.pk)
    return entry


def sync_caller_copy(original: Order, locked: Order) -> None:
    """Copy the fresh state back to the instance the caller passed in."""
    if original is not locked:
        original.status = locked.status
        original.needs_attention = locked.needs_attention
        original.attention_reason = locked.attention_reason
        original.hold_expires_at = locked.hold_expires_at
        original.updated_at = locked.updated_at
        original.__dict__.pop("paid_sum", None)
        original.__dict__.pop("balance_sum", None)


# The ledger stores 12 digits with 2 decimal places: amounts below 10,000,000,000.
AMOUNT_LIMIT = LEDGER_AMOUNT_LIMIT


def parse_amount(amount: Any, currency: str, *, what: str = "payment") -> Decimal:
    """Validate a money amount for the currency and return it as a Decimal.

    ``what`` names the amount in the refusal for zero or less ("payment", "refund").
    """
    if isinstance(amount, float | bool):
        raise ValidationError("Enter the amount as an exact decimal number, e.g. 50.00.")
    try:
        value = Decimal(str(amount).strip()) if not isinstance(amount, Decimal) else amount
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationError("Enter a valid amount, e.g. 50.00.") from None
    if not value.is_finite():
        raise ValidationError("Enter a valid amount, e.g. 50.00.")
    if value <= ZERO:
        raise ValidationError(f"The {what} amount must be greater than zero.")
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


class OrderAction(StrEnum):
    """What staff can do to an order, named by the service verb that does it."""

    RECORD_COMP = "record_comp"
    RECORD_MANUAL = "record_manual"
    REGENERATE_PAYMENT_LINK = "regenerate_payment_link"
    SEND_PAYMENT_LINK = "send_payment_link"
    RESOLVE_ATTENTION = "resolve_attention"
    CANCEL = "cancel_order"
    REFUND = "refund"
    SYNC_STRIPE = "sync_from_stripe"


@dataclass(frozen=True)
class Allowed:
    """Whether an action applies to an order now, and if not, why (a sentence for staff)."""

    allowed: bool
    reason: str = ""

    def check(self) -> None:
        """Raise the reason as a ``ValidationError`` when the action does not apply."""
        if not self.allowed:
            raise ValidationError(self.reason)


def _unless_pending(order: Order, why: str) -> Allowed:
    """Refused with ``why`` unless the order is pending."""
    if order.status == Order.Status.PENDING:
        return Allowed(True)
    return Allowed(False, f"{order.reference} is {order.get_status_display().lower()}; {why}")


def _comp_allowed(order: Order) -> Allowed:
    """A comp needs a pending order with a total of zero."""
    pending = _unless_pending(order, "only pending orders can be comped.")
    if pending.allowed and order.total > ZERO:
        return Allowed(
            False,
            f"{order.reference} has a total of {order.format(order.total)}; "
            "only zero-total orders can be comped.",
        )
    return pending


def _manual_allowed(order: Order) -> Allowed:
    """A manual payment needs a pending order with a balance due."""
    pending = _unless_pending(order, "manual payments can only be recorded for pending orders.")
    if pending.allowed and order.balance_due <= ZERO:
        return Allowed(
            False, f"{order.reference} has no balance due; use “Mark comp” for zero-total orders."
        )
    return pending


def _send_link_allowed(order: Order) -> Allowed:
    """E-mailing the pay link needs a pending order with a balance due and an address to send to."""
    pending = _unless_pending(order, "only a pending order's payment link can be e-mailed.")
    if not pending.allowed:
        return pending
    if order.balance_due <= ZERO:
        return Allowed(False, f"{order.reference} has no balance due; there is nothing to pay.")
    if not order.email_recipient:
        return Allowed(
            False, f"{order.reference} has no e-mail address; add a billing e-mail first."
        )
    return pending


def _cancel_allowed(order: Order) -> Allowed:
    """A cancel needs a pending order that holds no money and has no card payment in flight."""
    if order.status == Order.Status.CANCELLED:
        return Allowed(False, f"{order.reference} is already cancelled.")
    if order.status != Order.Status.PENDING:
        return Allowed(
            False,
            f"{order.reference} is {order.get_status_display().lower()}; only a pending order "
            "with no money received can be cancelled (refund its payments instead).",
        )
    held = net_received(order)
    if held > ZERO:
        return Allowed(False, f"{order.reference} holds {order.format(held)}; refund it first.")
    processing = (
        Payment.objects.filter(
            order=order, method=Payment.Method.STRIPE, status=Payment.Status.PROCESSING
        ).aggregate(s=Sum("amount"))["s"]
        or ZERO
    )
    if processing > ZERO:
        return Allowed(
            False,
            f"{order.reference} has a card payment of {order.format(processing)} being "
            "processed; wait until it succeeds, then refund it first.",
        )
    return Allowed(True)


# Refunds that hold part of a payment: given back, or on their way back.
HOLDING_REFUND_STATUSES = (Refund.Status.SUCCEEDED, Refund.Status.PENDING)


def refundable_rest(payment: Payment) -> Decimal:
    """What is left to refund on a payment: its amount less its refunds and lost disputes.

    Its succeeded and pending refunds, and what a lost dispute already took back.
    """
    held = payment.refunds.filter(status__in=HOLDING_REFUND_STATUSES).aggregate(s=Sum("amount"))
    return payment.amount - (held["s"] or ZERO) - payment.lost_dispute_amount


# The note on a card refund row whose request got no answer: Stripe may have made it.
UNANSWERED_NOTE = (
    "Stripe did not answer; it may have refunded. Kept pending until Stripe says; "
    "refunding this payment again re-sends the same request."
)


def refundable_payments(order: Order) -> list[tuple[Payment, Decimal]]:
    """The order's payments that can be refunded now, oldest first, each with its rest.

    A refund Stripe did not answer is offered again (refunding its payment
    re-sends it first with its own key, see ``refunds.refund``), so a whole
    payment's unanswered refund can still be retried from the order page.
    """
    held = Sum(
        "refunds__amount",
        filter=Q(refunds__status__in=HOLDING_REFUND_STATUSES)
        & ~Q(refunds__note__contains=UNANSWERED_NOTE),
    )
    payments = (
        Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED)
        .exclude(method=Payment.Method.COMP)
        .annotate(rest=F("amount") - Coalesce(held, ZERO) - F("lost_dispute_amount"))
        .filter(rest__gt=ZERO)
        .order_by("created_at", "id")
    )
    return [(payment, payment.rest) for payment in payments]


def _refund_allowed(order: Order) -> Allowed:
    """A refund needs a succeeded, non-comp payment with something left to refund."""
    if refundable_payments(order):
        return Allowed(True)
    return Allowed(False, f"{order.reference} has no payment with anything left to refund.")


def stripe_intent_ids(order: Order) -> list[str]:
    """The ids of every Stripe PaymentIntent the ledger knows for the order, oldest first."""
    return list(
        Payment.objects.filter(order=order, method=Payment.Method.STRIPE)
        .exclude(stripe_payment_intent_id="")
        .order_by("created_at", "id")
        .values_list("stripe_payment_intent_id", flat=True)
    )


def _sync_allowed(order: Order) -> Allowed:
    """A re-sync from Stripe needs a Stripe payment on the order (any status)."""
    if stripe_intent_ids(order):
        return Allowed(True)
    return Allowed(False, f"{order.reference} has no Stripe payment to re-sync.")


def allowed_actions(order: Order) -> dict[OrderAction, Allowed]:
    """Which of staff's actions apply to the order now, and why not for the others.

    The admin shows its buttons from this; the services check the same answer
    again on the locked order, so a button shown a moment too long still
    refuses with the same sentence.
    """
    return {
        OrderAction.RECORD_COMP: _comp_allowed(order),
        OrderAction.RECORD_MANUAL: _manual_allowed(order),
        OrderAction.REGENERATE_PAYMENT_LINK: _unless_pending(
            order, "only a pending order's payment link can be replaced."
        ),
        OrderAction.SEND_PAYMENT_LINK: _send_link_allowed(order),
        OrderAction.RESOLVE_ATTENTION: (
            Allowed(True)
            if order.needs_attention
            else Allowed(False, f"{order.reference} does not need attention.")
        ),
        OrderAction.CANCEL: _cancel_allowed(order),
        OrderAction.REFUND: _refund_allowed(order),
        OrderAction.SYNC_STRIPE: _sync_allowed(order),
    }


def resolve_attention(
    order: Order, *, note: str, staff_user: "AbstractBaseUser | None"
) -> OrderHistoryEntry:
    """Clear a flagged order's attention flag, with the clerk's note in its history.

    The flag stays cleared until the money changes again in a way that raises
    it (a new overpayment, money on a cancelled order): ``_attention_reasons``
    starts from the reasons the order holds, so later writes do not restore
    the ones resolved here.
    """
    text = note.strip()
    if not text:
        raise ValidationError("Say what was done about it: a note is required.")
    with transaction.atomic():
        locked = lock_order(order)
        allowed_actions(locked)[OrderAction.RESOLVE_ATTENTION].check()
        resolved = "; ".join(line for line in locked.attention_reason.splitlines() if line.strip())
        locked.needs_attention = False
        locked.attention_reason = ""
        locked.save(update_fields=["needs_attention", "attention_reason", "updated_at"])
        entry = record_history(
            locked,
            actor=staff_user or SYSTEM,
            action=OrderHistoryEntry.Action.ATTENTION_RESOLVED,
            message=f"{text} (flagged: {resolved})" if resolved else text,
            status_before=locked.status,
            status_after=locked.status,
        )
    sync_caller_copy(order, locked)
    logger.info(
        "Attention resolved",
        extra={"order": locked.reference, "staff_user": getattr(staff_user, "pk", None)},
    )
    return entry


def record_task_failure(failure: "TaskFailure") -> OrderHistoryEntry | None:
    """Show an order task that gave up: an entry on the order's history, and the order flagged.

    The ``on_give_up`` hook of every background task about one order (one
    with an ``order_id`` argument); the flag stays until staff resolve it
    (``resolve_attention``), like the money rule's flags.
    """
    reason = (
        f"Background task {failure.task_name} failed after {failure.attempts} "
        f"attempt{'s' if failure.attempts != 1 else ''}: {failure.summary}"
    )
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(of=("self",))
            .filter(pk=failure.arguments["order_id"])
            .first()
        )
        if order is None:
            logger.warning("A failed task's order no longer exists", extra=failure.arguments)
            return None
        reasons = [line for line in order.attention_reason.splitlines() if line.strip()]
        order.attention_reason = "\n".join([*reasons, reason])
        order.needs_attention = True
        order.save(update_fields=["needs_attention", "attention_reason", "updated_at"])
        entry = record_history(
            order,
            actor=WORKER,
            action=OrderHistoryEntry.Action.OTHER,
            message=reason,
            status_before=order.status,
        )
    logger.warning("Order needs attention", extra={"order": order.reference, "reason": reason})
    return entry
