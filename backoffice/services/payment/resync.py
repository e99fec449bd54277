"""Re-sync from Stripe: bring an order's ledger in line with what Stripe holds.

For every PaymentIntent the ledger knows for an order, Stripe is asked for
the intent, its refunds and its disputes, and each is applied through the very
functions the webhooks use (``apply_payment_intent``, ``apply_stripe_refund``,
``apply_stripe_dispute``), so a
missed webhook and a re-sync leave the same ledger. Each change writes its
own history entry there, by ``RESYNC``; running it again changes nothing.

Everything is fetched from Stripe first and applied afterwards in one
transaction under the order's lock: when Stripe cannot be reached nothing is
written, and no row lock is held while waiting on the network.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from backoffice.models import Order, OrderHistoryEntry, Payment
from backoffice.services.history import RESYNC
from backoffice.services.payment.dispute_sync import apply_stripe_dispute
from backoffice.services.payment.ledger import (
    OrderAction,
    allowed_actions,
    lock_order,
    sync_caller_copy,
)
from backoffice.services.payment.refund_sync import apply_stripe_refund
from backoffice.services.payment.stripe_sync import (
    UnmatchedPaymentError,
    apply_payment_intent,
    outcome_of,
)
from backoffice.stripe_client import (
    PaymentIntentMissing,
    PaymentProviderError,
    StripeClient,
    StripeDispute,
    StripeNotConfigured,
    StripePaymentIntent,
    StripeRefund,
    StripeUnreachable,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AtStripe:
    """What Stripe holds for one of the order's PaymentIntents (``intent`` None: unknown there)."""

    intent_id: str
    intent: StripePaymentIntent | None
    refunds: tuple[StripeRefund, ...] = ()
    disputes: tuple[StripeDispute, ...] = ()


@dataclass(frozen=True)
class SyncReport:
    """What a re-sync found for one order: the changes it applied, and what it could not check."""

    order: Order
    changes: tuple[str, ...] = ()
    payments_changed: int = 0
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the re-sync changed the ledger."""
        return bool(self.changes) or self.payments_changed > 0

    def summary(self) -> str:
        """One sentence for staff: what changed, or that all was in order."""
        text = "; ".join(self.changes) if self.changed else "all in order"
        return " ".join([f"{self.order.reference}: {text}.", *self.notes])


def _client(order: Order) -> StripeClient:
    """The conference's Stripe client; a missing key is a refusal staff can read."""
    try:
        return StripeClient(order.conference)
    except StripeNotConfigured as exc:
        raise ValidationError(str(exc)) from exc


# Stripe statuses of an intent still waiting for the attendee (a card, a confirmation,
# 3-D Secure): nothing was taken on it.
AWAITING_ATTENDEE = ("requires_payment_method", "requires_confirmation", "requires_action")


def _abandoned(intent: StripePaymentIntent, opened_at: datetime) -> bool:
    """Whether an attempt still waits for the attendee past the abandoned-attempt hours."""
    hours = settings.BACKOFFICE_ABANDONED_ATTEMPT_HOURS
    return (
        hours > 0
        and intent.status in AWAITING_ATTENDEE
        and opened_at < timezone.now() - timedelta(hours=hours)
    )


def _close_abandoned(client: StripeClient, intent: StripePaymentIntent) -> StripePaymentIntent:
    """Cancel an abandoned attempt at Stripe; the intent as Stripe then holds it.

    The pay link starts a new attempt when the attendee comes back. If Stripe
    refuses (the attendee paid at this very moment), the intent is read again
    and applied as it is.
    """
    try:
        return client.cancel_payment_intent(intent.id)
    except StripeUnreachable:
        raise
    except PaymentProviderError:
        return client.retrieve_payment_intent(intent.id)


def _fetch(client: StripeClient, intent_id: str, opened_at: datetime) -> AtStripe:
    """Ask Stripe for one intent and what hangs on it; raises ``PaymentProviderError``.

    An attempt the attendee abandoned long ago is cancelled at Stripe on the
    way, so re-syncs (and the Needs attention list) stop carrying it forever.
    """
    try:
        intent = client.retrieve_payment_intent(intent_id)
    except PaymentIntentMissing:
        return AtStripe(intent_id=intent_id, intent=None)
    if _abandoned(intent, opened_at):
        intent = _close_abandoned(client, intent)
    if not intent.charge_id:
        # A refund or a dispute needs a charge: an intent that never charged has
        # none (and localstripe cannot list refunds for it).
        return AtStripe(intent_id=intent_id, intent=intent)
    return AtStripe(
        intent_id=intent_id,
        intent=intent,
        refunds=tuple(client.list_refunds(intent_id)),
        disputes=tuple(client.list_disputes(intent_id)),
    )


def _apply(order: Order, found: AtStripe) -> None:
    """Apply what Stripe holds for one intent, as its webhooks would have (payment first)."""
    conference = order.conference
    if found.intent is not None:
        outcome = outcome_of(found.intent)
        if outcome:
            apply_payment_intent(conference, found.intent, outcome, actor=RESYNC)
    for refund in found.refunds:
        apply_stripe_refund(conference, refund, actor=RESYNC)
    for dispute in found.disputes:
        apply_stripe_dispute(conference, dispute, actor=RESYNC)


def _ledger_state(order: Order) -> dict[int, tuple]:
    """Each payment of the order with its status, amounts and refunds, to compare."""
    payments = Payment.objects.filter(order=order).prefetch_related("refunds", "disputes")
    return {
        payment.pk: (
            payment.status,
            payment.amount,
            payment.refunded_amount,
            sorted((r.pk, r.status, r.amount) for r in payment.refunds.all()),
            sorted((d.pk, d.status, d.amount) for d in payment.disputes.all()),
        )
        for payment in payments
    }


def _describe(entry: OrderHistoryEntry) -> str:
    """A history entry written by the re-sync, as one clause of the report."""
    text = f"{entry.get_action_display()}: {entry.message.rstrip('.')}"
    if entry.status_before and entry.status_before != entry.status_after:
        text += f" (order {entry.get_status_before_display().lower()} → "
        text += f"{entry.get_status_after_display().lower()})"
    return text


def _mark_checked(order: Order, found: list[AtStripe]) -> None:
    """Stamp the intents Stripe answered for: a stale attempt just checked is not a worry."""
    answered = [item.intent_id for item in found if item.intent is not None]
    Payment.objects.filter(order=order, stripe_payment_intent_id__in=answered).update(
        stripe_checked_at=timezone.now()
    )


def _intents(order: Order) -> list[tuple[str, datetime]]:
    """Each Stripe PaymentIntent the ledger knows for the order, with when it was opened."""
    return list(
        Payment.objects.filter(order=order, method=Payment.Method.STRIPE)
        .exclude(stripe_payment_intent_id="")
        .order_by("created_at", "id")
        .values_list("stripe_payment_intent_id", "created_at")
    )


def sync_from_stripe(order: Order) -> SyncReport:
    """Fetch every PaymentIntent the ledger knows for the order from Stripe and apply it.

    Raises ``ValidationError`` when the order has no Stripe payment, its
    conference has no Stripe key, or what Stripe holds cannot be applied
    (nothing is changed then), and ``PaymentProviderError`` (``StripeUnreachable``
    for a network failure) when Stripe cannot be asked: nothing is written.
    A PaymentIntent Stripe no longer knows is named in the report's notes.
    """
    allowed_actions(order)[OrderAction.SYNC_STRIPE].check()
    client = _client(order)
    found = [_fetch(client, intent_id, opened_at) for intent_id, opened_at in _intents(order)]
    notes = tuple(
        f"Stripe no longer knows payment {item.intent_id} (were the keys changed?)."
        for item in found
        if item.intent is None
    )
    try:
        with transaction.atomic():
            locked = lock_order(order)
            last_entry = locked.history.aggregate(last=Max("id"))["last"] or 0
            before = _ledger_state(locked)
            for item in found:
                _apply(locked, item)
            after = _ledger_state(locked)
            _mark_checked(locked, found)
            entries = locked.history.filter(id__gt=last_entry).order_by("id")
            changes = tuple(_describe(entry) for entry in entries)
    except UnmatchedPaymentError as exc:
        raise ValidationError(f"{order.reference}: {exc} Nothing was changed.") from exc
    sync_caller_copy(order, Order.objects.get(pk=order.pk))
    report = SyncReport(
        order=order,
        changes=changes,
        payments_changed=sum(1 for pk, state in after.items() if before.get(pk) != state),
        notes=notes,
    )
    logger.info(
        "Re-synced from Stripe",
        extra={"order": order.reference, "changes": len(changes), "notes": len(notes)},
    )
    return report
