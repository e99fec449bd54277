"""Stripe webhook events: store each verified event once, then apply it to the ledger.

The signature is checked by the view (through ``backoffice.stripe_client``)
before anything here runs. An event is applied and marked processed in one
transaction. An event whose content cannot be applied (a malformed field, or
money taken for an order we cannot place) raises ``StripeEventNotApplied``:
the readable reason is kept on the stored event, which stays unprocessed so
staff can reprocess it. Any other failure (a bug, a lost database) is kept
the same way and raises ``StripeEventFailed``.
"""

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, InterfaceError, connection, transaction
from django.db.models import Q, QuerySet, Subquery, Value
from django.db.models.constants import OnConflict
from django.db.models.functions import Coalesce
from django.utils import timezone

from backoffice.database_outage import database_unavailable
from backoffice.models import Conference, Order, Payment, StripeEvent
from backoffice.services.payment import (
    PaymentOfAnotherConference,
    UnmatchedPaymentError,
    apply_charge_refund,
    apply_payment_intent,
    apply_stripe_dispute,
    apply_stripe_refund,
)
from backoffice.stripe_client import (
    InvalidWebhook,
    MalformedStripeEvent,
    event_object,
    parse_charge,
    parse_dispute,
    parse_payment_intent,
    parse_refund,
    verify_webhook,
)

logger = logging.getLogger(__name__)


class StripeEventBusy(Exception):
    """The database was busy or unreachable; nothing changed, Stripe should retry.

    A lock or statement ran out of time, a serialization failure or deadlock
    rolled the transaction back, or the connection was lost.
    """

    def __init__(self, event: StripeEvent | None) -> None:
        name = event.stripe_event_id if event is not None else "(not stored)"
        super().__init__(f"Stripe event {name}: the database was busy.")
        self.event = event


def _time_limits() -> list[str]:
    """The webhook's lock-wait and statement time limits, as PostgreSQL settings values."""
    return [
        f"{int(settings.STRIPE_WEBHOOK_LOCK_TIMEOUT_MS)}ms",
        f"{int(settings.STRIPE_WEBHOOK_STATEMENT_TIMEOUT_MS)}ms",
    ]


# Both limits in one statement; is_local true: until the transaction ends.
_SET_LIMITS = (
    "SELECT set_config('lock_timeout', %s, {local}), set_config('statement_timeout', %s, {local})"
)


def _limit_lock_waits() -> None:
    """Bound this transaction's lock waits and statements by the settings (PostgreSQL)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_SET_LIMITS.format(local="true"), _time_limits())


@contextmanager
def webhook_lock_waits() -> Iterator[None]:
    """Bound every lock wait and statement in the block (PostgreSQL), then restore the defaults.

    Wraps a whole webhook request (the view): its first queries (the conference,
    is this event stored?, storing it) run outside any transaction and must
    already give up on a locked table, or every worker waits until gunicorn
    kills it. A wait or statement that runs out raises ``OperationalError``
    (SQLSTATE 55P03 or 57014), answered 503 with Retry-After (``StripeEventBusy``
    inside ``_apply``, the database-outage middleware before it).
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(_SET_LIMITS.format(local="false"), _time_limits())
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
                cursor.execute("RESET statement_timeout")
        except DatabaseError:
            # A broken connection: never hand it to the next request with our limits.
            if not connection.in_atomic_block:
                connection.close()


class StripeEventFailed(Exception):
    """Applying a stored event raised; the error is saved on the event."""

    def __init__(self, event: StripeEvent, error: str) -> None:
        super().__init__(f"Stripe event {event.stripe_event_id} ({event.type}) failed: {error}")
        self.event = event
        self.error = error


class StripeEventNotApplied(StripeEventFailed):
    """The stored event's content cannot be applied; the readable reason is saved on it.

    Sending the same event again fails the same way: only staff (fixing the
    data, then reprocessing) can change the outcome.
    """


# What makes an event's content inapplicable, as opposed to a failure of ours.
CONTENT_ERRORS = (MalformedStripeEvent, UnmatchedPaymentError)


def _intent_outcome(status: str) -> Callable[[Conference, Any], object]:
    """A handler that applies a PaymentIntent event as the given payment status."""

    def handle(conference: Conference, obj: Any) -> object:
        return apply_payment_intent(conference, parse_payment_intent(obj), status)

    return handle


def _charge_refunded(conference: Conference, obj: Any) -> object:
    """The handler of ``charge.refunded``."""
    return apply_charge_refund(conference, parse_charge(obj))


def _refund_reported(conference: Conference, obj: Any) -> object:
    """The handler of ``refund.created``, ``refund.updated`` and ``charge.refund.updated``."""
    return apply_stripe_refund(conference, parse_refund(obj))


def _dispute_reported(conference: Conference, obj: Any) -> object:
    """The handler of every ``charge.dispute.*`` event: the dispute object as it is now."""
    return apply_stripe_dispute(conference, parse_dispute(obj))


# The allow-list: every other event type is stored and acknowledged, nothing more.
# Each handler gets the event's unchecked ``data.object`` and parses it first.
HANDLERS: dict[str, Callable[[Conference, Any], object]] = {
    "payment_intent.succeeded": _intent_outcome(Payment.Status.SUCCEEDED),
    "payment_intent.processing": _intent_outcome(Payment.Status.PROCESSING),
    "payment_intent.payment_failed": _intent_outcome(Payment.Status.FAILED),
    "payment_intent.canceled": _intent_outcome(Payment.Status.CANCELED),
    "charge.refunded": _charge_refunded,
    "charge.refund.updated": _refund_reported,
    "refund.created": _refund_reported,
    "refund.updated": _refund_reported,
    "charge.dispute.created": _dispute_reported,
    "charge.dispute.updated": _dispute_reported,
    "charge.dispute.closed": _dispute_reported,
    "charge.dispute.funds_withdrawn": _dispute_reported,
    "charge.dispute.funds_reinstated": _dispute_reported,
}


def _stripe_id(value: Any) -> str:
    """A Stripe id from a field that holds it as a string or as an expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def order_of_event(conference: Conference, payload: Any) -> int | None:
    """The id of this conference's order the event's object is about, if any (one query)."""
    orders = _orders_of_event(conference, payload)
    return None if orders is None else orders.values_list("pk", flat=True).first()


def _order_of_event_subquery(conference: Conference, payload: Any) -> Subquery | None:
    """``order_of_event`` as a subquery, to run inside the statement storing the event."""
    orders = _orders_of_event(conference, payload)
    return None if orders is None else Subquery(orders.order_by().values("pk")[:1])


def _orders_of_event(conference: Conference, payload: Any) -> "QuerySet[Order] | None":
    """The (at most one) order of this conference the event is about; None: it names none.

    Found the way the handlers find it: the payment with the object's
    PaymentIntent (or charge) id, else the order named in its metadata. The
    payload is unchecked: anything unexpected links no order.
    """
    data = payload.get("data") if isinstance(payload, Mapping) else None
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        return None
    kind = obj.get("object")
    intent_id = _stripe_id(obj.get("id") if kind == "payment_intent" else obj.get("payment_intent"))
    charge_id = _stripe_id(obj.get("id") if kind == "charge" else obj.get("charge"))
    metadata = obj.get("metadata")
    named = metadata.get("order_id") if isinstance(metadata, Mapping) else None
    is_pk = isinstance(named, str) and named.isascii() and named.isdigit() and len(named) <= 18
    payments = Q(stripe_payment_intent_id=intent_id) if intent_id else Q()
    if charge_id:
        payments |= Q(stripe_charge_id=charge_id)
    # The order holding the payment wins over the metadata, as in the handlers;
    # an uncorrelated scalar subquery keeps it to index lookups.
    candidates: list[Any] = []
    if payments:
        candidates.append(
            Subquery(Payment.objects.filter(payments).order_by().values("order_id")[:1])
        )
    if is_pk:
        candidates.append(Value(int(named)))
    if not candidates:
        return None
    target = Coalesce(*candidates) if len(candidates) > 1 else candidates[0]
    return Order.objects.filter(conference=conference, pk=target)


def _stored_event(conference: Conference, event: dict[str, Any]) -> StripeEvent:
    """The conference's stored copy of the event, stored now unless it was already."""
    event_id = event["id"]
    events = StripeEvent.objects.filter(conference=conference)
    stored = events.filter(stripe_event_id=event_id).first()
    if stored is None:
        try:
            with transaction.atomic():
                stored = StripeEvent.objects.create(
                    stripe_event_id=event_id,
                    conference=conference,
                    order_id=order_of_event(conference, event),
                    type=event["type"],
                    livemode=bool(event.get("livemode", False)),
                    payload=event,
                )
        except IntegrityError:
            stored = events.get(stripe_event_id=event_id)  # a parallel delivery
    return stored


def receive_stripe_event(*, conference: Conference, event: dict[str, Any]) -> StripeEvent:
    """Store a verified event once per conference and apply it unless it was already processed.

    A duplicate delivery of a processed event changes nothing. Conferences that
    share a Stripe account each receive (and store) every event of the account;
    one about another conference's payment is processed as a no-op. Raises
    ``StripeEventNotApplied`` when its content cannot be applied and
    ``StripeEventFailed`` when the handler fails otherwise (the error is stored).
    """
    stored = _stored_event(conference, event)
    if stored.processed_at is not None:
        logger.info("Duplicate Stripe event ignored", extra={"event": stored.stripe_event_id})
        return stored
    _apply(stored, force=False)
    return stored


def apply_stripe_event(event: StripeEvent) -> None:
    """Apply a stored event (again), whether or not it was processed before."""
    _apply(event, force=True)


def reprocess_stripe_event(event: StripeEvent) -> None:
    """Staff action: apply a stored event again; a failure becomes a ``ValidationError``."""
    if event.conference_id is None:
        raise ValidationError(f"{event} has no conference, so it cannot be applied.")
    if event.order_id is None:
        # Stored before events were linked to orders (or before its order existed).
        event.order_id = order_of_event(event.conference, event.payload)
        if event.order_id is not None:
            StripeEvent.objects.filter(pk=event.pk).update(order_id=event.order_id)
    try:
        _apply(event, force=True)
    except StripeEventBusy as exc:
        raise ValidationError(f"{event}: its order is being changed right now; try again.") from exc
    except StripeEventFailed as exc:  # including StripeEventNotApplied
        raise ValidationError(f"{event} failed again: {exc.error}") from exc


def _failure(event: StripeEvent, exc: Exception) -> Exception:
    """What to raise for an event whose transaction failed with ``exc``, its error stored."""
    if isinstance(exc, CONTENT_ERRORS):
        # Nothing was written (the transaction rolled back); staff see why on the event.
        error = str(exc)
        StripeEvent.objects.filter(pk=event.pk).update(last_error=error)
        logger.warning(
            "Stripe event not applied", extra={"event": event.stripe_event_id, "error": error}
        )
        return StripeEventNotApplied(event, error)
    if database_unavailable(exc):
        # Not a failure of the event: a lock held too long, a serialization failure,
        # a lost connection. The transaction rolled back; Stripe retries.
        logger.warning(
            "Stripe event not applied: database busy",
            extra={"event": event.pk, "error": type(exc.__cause__).__name__},
        )
        return StripeEventBusy(event)
    # Recorded, then re-raised: a bug or an outage must be visible to staff,
    # and answered with a 500 so Stripe retries once it is over. Nothing is swallowed.
    error = f"{type(exc).__name__}: {exc}"
    StripeEvent.objects.filter(pk=event.pk).update(last_error=error)
    logger.exception("Stripe event failed", extra={"event": event.stripe_event_id})
    return StripeEventFailed(event, error)


def _apply(event: StripeEvent, *, force: bool) -> None:
    """Run the event's handler and mark it processed, atomically; store any error."""
    try:
        with transaction.atomic():
            _limit_lock_waits()
            locked = (
                StripeEvent.objects.select_for_update(of=("self",))
                .select_related("conference")
                .get(pk=event.pk)
            )
            if locked.processed_at is not None and not force:
                return  # a parallel delivery finished it first
            handler = HANDLERS.get(locked.type)
            note = ""
            if handler is not None:
                try:
                    handler(locked.conference, event_object(locked.payload))
                except PaymentOfAnotherConference as exc:
                    # Nothing was written: the handler checks ownership before any change.
                    note = f"Not for this conference: {exc}"
            locked.processed_at = timezone.now()
            locked.last_error = ""
            locked.note = note
            locked.save(update_fields=["processed_at", "last_error", "note"])
    except Exception as exc:
        raise _failure(event, exc) from exc
    event.refresh_from_db(fields=["processed_at", "last_error", "note"])
    logger.info(
        "Stripe event processed",
        extra={
            "event": event.stripe_event_id,
            "type": event.type,
            "conference": event.conference_id,
        },
    )


class UnknownWebhookConference(Exception):
    """The webhook URL names no conference, or one without a webhook secret."""


def receive_stripe_webhook(
    *, conference_slug: str, payload: bytes, signature: str | None
) -> StripeEvent:
    """Verify a webhook's body, then store and apply its event once; the webhook view's one call.

    A new event takes one transaction and eight round trips on PostgreSQL: the
    time limits with the conference, the event stored already processed (and
    linked to its order), then its handler's own (for a card payment: the order
    and payment locked, the payment, the order's payments, the order with the
    dashboard's totals in one statement, the order-paid task and the history
    entry). Anything else (a duplicate, a retried failure, an event
    whose handler raises) rolls that transaction back and goes the way of
    ``receive_stripe_event``, which stores and reports it.

    Raises ``UnknownWebhookConference`` and ``InvalidWebhook`` (nothing
    stored), ``StripeEventBusy`` (nothing changed), and what
    ``receive_stripe_event`` raises; returns the stored event.
    """
    conference: Conference | None = None
    event: dict[str, Any] | None = None
    try:
        with transaction.atomic():
            conference = _conference_bounded(conference_slug)
            if conference is None or not conference.stripe_webhook_secret:
                raise UnknownWebhookConference(conference_slug)
            event = verify_webhook(payload, signature, conference.stripe_webhook_secret)
            stored = _store_processed(conference, event)
            if stored is not None:
                handler = HANDLERS.get(stored.type)
                if handler is not None:
                    handler(conference, event_object(event))
                _log_processed(stored)
                return stored
    except (UnknownWebhookConference, InvalidWebhook):
        raise
    except Exception as exc:
        if database_unavailable(exc):
            logger.warning(
                "Stripe event not applied: database busy",
                extra={"conference": conference_slug, "error": type(exc.__cause__).__name__},
            )
            raise StripeEventBusy(_stored_if_possible(conference, event)) from exc
        if conference is None or event is None:
            raise
        if not isinstance(exc, PaymentOfAnotherConference):
            # Nothing was written: store the event with why it was not applied.
            with webhook_lock_waits():
                stored = _stored_event(conference, event)
            raise _failure(stored, exc) from exc
        # Another conference's payment: the general path stores it processed, with a note.
    # A duplicate, a stored event retried, or another conference's payment.
    with webhook_lock_waits():
        return receive_stripe_event(conference=conference, event=event)


def _stored_if_possible(
    conference: Conference | None, event: dict[str, Any] | None
) -> StripeEvent | None:
    """Store a verified event unprocessed (staff see it waiting); None if the database can't."""
    if conference is None or event is None:
        return None
    try:
        with webhook_lock_waits():
            return _stored_event(conference, event)
    except (DatabaseError, InterfaceError):
        return None


def _conference_bounded(slug: str) -> Conference | None:
    """The conference named by a webhook URL, read once this transaction's waits are bounded.

    On PostgreSQL the two ``set_config`` calls and the conference's SELECT go
    in one round trip; the limits end with the transaction.
    """
    conferences = Conference.objects.filter(slug=slug)
    if connection.vendor != "postgresql":
        return conferences.first()
    fields = Conference._meta.concrete_fields
    sql, params = conferences.values_list(
        *(field.attname for field in fields)
    ).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"{_SET_LIMITS.format(local='true')}; {sql}", [*_time_limits(), *params])
        cursor.nextset()
        row = cursor.fetchone()
    if row is None:
        return None
    values = [
        field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
        for field, value in zip(fields, row, strict=True)
    ]
    return Conference.from_db(connection.alias, [field.attname for field in fields], values)


def _store_processed(conference: Conference, event: dict[str, Any]) -> StripeEvent | None:
    """Store a new event as processed (this transaction applies it); None if it is stored already.

    One INSERT, with its order found inside it; a parallel delivery of the same
    event waits on the unique constraint until this transaction ends.
    """
    stored = StripeEvent(
        stripe_event_id=event["id"],
        conference=conference,
        type=event["type"],
        livemode=bool(event.get("livemode", False)),
        payload=event,
        processed_at=timezone.now(),
    )
    order = _order_of_event_subquery(conference, event)
    if order is not None:
        stored.order_id = order
    fields = [field for field in StripeEvent._meta.concrete_fields if not field.primary_key]
    rows = StripeEvent.objects._insert(
        [stored],
        fields=fields,
        returning_fields=[StripeEvent._meta.pk],
        on_conflict=OnConflict.IGNORE,
    )
    if not rows or rows[0] is None:
        return None
    (stored.pk,) = rows[0]
    stored._state.adding = False
    if order is not None:
        # Found inside the INSERT: read (deferred) only if someone asks.
        del stored.__dict__["order_id"]
    return stored


def _log_processed(event: StripeEvent) -> None:
    """The one log line of a processed event."""
    logger.info(
        "Stripe event processed",
        extra={
            "event": event.stripe_event_id,
            "type": event.type,
            "conference": event.conference_id,
        },
    )
