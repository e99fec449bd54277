"""Selector: the orders staff must look at, and why ("Needs attention").

One list, derived from the ledger at read time: an order is on it while any
reason builder below finds a reason, and leaves it by itself once the cause is
gone (the payment settled, the refund went through, the event was reprocessed,
the order whose hold expired was paid or cancelled). An expired hold needs no
scheduled job: read at request time, it is listed the moment the hold ends.
The one stored reason is the ledger's own flag (``Order.needs_attention``,
raised by ``settle_order`` for an overpayment and cleared by "Resolve
attention", which writes the order's history).

Each builder gives a condition (a column test or an ``EXISTS`` subquery
correlated on the order) for the list, and the reasons of a page of orders
in at most one query, so the list and its reasons column cost a fixed number
of queries whatever the number of orders.
"""

import datetime
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.conf import settings
from django.core.cache import cache
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from backoffice.dates import format_moment
from backoffice.models import Dispute, Order, Payment, Refund, StripeEvent
from backoffice.services.payment.cancellation import hold_expired
from backoffice.services.payment.ledger import CLOSED_DISPUTE_STATUSES, DISPUTED, dispute_text

# Our card attempt is still open in one of these (the same as the ledger's).
OPEN_STRIPE_STATUSES = (Payment.Status.PENDING, Payment.Status.PROCESSING)
UNSETTLED_REFUND_STATUSES = (Refund.Status.PENDING, Refund.Status.FAILED)
# An event is being applied for a moment after it arrives: not "never processed" yet.
EVENT_GRACE = datetime.timedelta(minutes=1)

Reasons = dict[int, list[str]]


@dataclass(frozen=True)
class ReasonBuilder:
    """One kind of reason: which orders have it, and its sentences for a page of orders."""

    condition: Callable[[datetime.datetime], Q | Exists]
    reasons: Callable[[Sequence[Order], datetime.datetime], Reasons]
    # The ids of the orders with this reason, read from an index of its own table:
    # the count is a UNION of these small sets, not a scan of every order.
    order_ids: Callable[[datetime.datetime], QuerySet]


def _stale_cutoff(now: datetime.datetime) -> datetime.datetime:
    """Open Stripe payments not changed since this moment are stale."""
    return now - datetime.timedelta(minutes=settings.BACKOFFICE_STALE_PAYMENT_MINUTES)


# --- Flagged by the ledger (overpaid, money on a cancelled order) ----------


def _flagged_condition(now: datetime.datetime) -> Q:
    """The ledger's flag, raised by ``settle_order``."""
    return Q(needs_attention=True)


def _flagged_reasons(orders: Sequence[Order], now: datetime.datetime) -> Reasons:
    """The flag's stored reasons, one per line (no query)."""
    found: Reasons = {}
    for order in orders:
        if order.needs_attention:
            lines = [line for line in order.attention_reason.splitlines() if line.strip()]
            # Open disputes have their own builder (they stay listed until closed).
            lines = [line for line in lines if not line.startswith(DISPUTED)]
            if lines or not order.attention_reason.strip():
                found[order.pk] = lines or ["Flagged for attention."]
    return found


# --- A Stripe payment pending or processing for too long -------------------


def _stale_payments(now: datetime.datetime) -> QuerySet[Payment]:
    """Stripe payments open past the configured minutes and not checked at Stripe since.

    An attempt the attendee abandoned stays open at Stripe for good; once a
    re-sync (the scheduled one, or staff's) has found it still waiting, it is
    not a worry until that check is itself older than the configured minutes,
    so the list shows attempts nobody could check, not every abandoned checkout.
    """
    cutoff = _stale_cutoff(now)
    return Payment.objects.filter(
        Q(stripe_checked_at__isnull=True) | Q(stripe_checked_at__lt=cutoff),
        method=Payment.Method.STRIPE,
        status__in=OPEN_STRIPE_STATUSES,
        updated_at__lt=cutoff,
    )


def _stale_condition(now: datetime.datetime) -> Exists:
    """The order has a stale Stripe payment."""
    return Exists(_stale_payments(now).filter(order=OuterRef("pk")))


def _last_checked(payment: Payment, now: datetime.datetime) -> str:
    """ ", last checked at Stripe 50 minutes ago" when a re-sync asked about it before."""
    if payment.stripe_checked_at is None:
        return ""
    minutes = int((now - payment.stripe_checked_at).total_seconds() // 60)
    return f", last checked at Stripe {minutes} minutes ago"


def _stale_reasons(orders: Sequence[Order], now: datetime.datetime) -> Reasons:
    """ "Stripe payment pi_… pending for 47 minutes" for each stale payment (one query)."""
    found: Reasons = defaultdict(list)
    payments = _stale_payments(now).filter(order__in=orders).order_by("updated_at", "id")
    for payment in payments:
        minutes = int((now - payment.updated_at).total_seconds() // 60)
        found[payment.order_id].append(
            f"Stripe payment {payment.stripe_payment_intent_id or f'#{payment.pk}'} "
            f"{payment.get_status_display().lower()} for {minutes} minutes"
            f"{_last_checked(payment, now)}; re-sync it from Stripe."
        )
    return found


# --- A refund pending or failed -------------------------------------------


def _unsettled_refunds() -> QuerySet[Refund]:
    """Refunds still pending, or failed with no later refund of the payment succeeding."""
    given_back_later = Refund.objects.filter(
        payment=OuterRef("payment"), status=Refund.Status.SUCCEEDED, pk__gt=OuterRef("pk")
    )
    return Refund.objects.filter(status__in=UNSETTLED_REFUND_STATUSES).exclude(
        Q(status=Refund.Status.FAILED) & Exists(given_back_later)
    )


def _refund_condition(now: datetime.datetime) -> Exists:
    """The order has a refund pending, or failed and not given back since."""
    return Exists(_unsettled_refunds().filter(payment__order=OuterRef("pk")))


def _refund_reasons(orders: Sequence[Order], now: datetime.datetime) -> Reasons:
    """ "Refund re_… of 30.00 USD pending" for each unsettled refund (one query)."""
    found: Reasons = defaultdict(list)
    refunds = (
        _unsettled_refunds()
        .filter(payment__order__in=orders)
        .select_related("payment__order__conference")
        .order_by("created_at", "id")
    )
    for refund in refunds:
        order = refund.payment.order
        name = f"Refund {refund.stripe_refund_id}" if refund.stripe_refund_id else "Refund"
        found[order.pk].append(
            f"{name} of {order.format(refund.amount)} {refund.get_status_display().lower()}."
        )
    return found


# --- A Stripe event about the order that failed or was never processed ------


def _unsettled_events(now: datetime.datetime) -> QuerySet[StripeEvent]:
    """Events that failed, or that nobody processed a minute after they arrived."""
    return StripeEvent.objects.filter(
        ~Q(last_error="") | Q(processed_at__isnull=True, received_at__lt=now - EVENT_GRACE)
    )


def _event_condition(now: datetime.datetime) -> Exists:
    """The order has a failed or unprocessed Stripe event (on stripe_event_unsettled_idx)."""
    return Exists(_unsettled_events(now).filter(order=OuterRef("pk")))


def _event_reasons(orders: Sequence[Order], now: datetime.datetime) -> Reasons:
    """ "Stripe event evt_… (type) failed: …" or "… not processed" per event (one query)."""
    found: Reasons = defaultdict(list)
    events = (
        _unsettled_events(now)
        .filter(order__in=orders)
        .only("order_id", "stripe_event_id", "type", "last_error")
        .order_by("received_at", "id")
    )
    for event in events:
        what = f"Stripe event {event.stripe_event_id} ({event.type})"
        if event.last_error:
            found[event.order_id].append(f"{what} failed: {event.last_error}")
        else:
            found[event.order_id].append(f"{what} not processed.")
    return found


# Every kind of reason, in the order they are listed for an order.
# --- An open dispute (a chargeback or an inquiry) ------------------------------


def _open_disputes() -> QuerySet[Dispute]:
    """Disputes not yet won, lost or closed."""
    return Dispute.objects.exclude(status__in=CLOSED_DISPUTE_STATUSES)


def _dispute_condition(now: datetime.datetime) -> Exists:
    """The order has an open dispute on one of its payments."""
    return Exists(_open_disputes().filter(payment__order=OuterRef("pk")))


def _dispute_reasons(orders: Sequence[Order], now: datetime.datetime) -> Reasons:
    """ "Disputed: Stripe dispute dp_… on Stripe payment pi_…" per open dispute (one query)."""
    found: Reasons = defaultdict(list)
    disputes = (
        _open_disputes()
        .filter(payment__order__in=orders)
        .select_related("payment__order__conference")
        .order_by("created_at", "id")
    )
    for dispute in disputes:
        order = dispute.payment.order
        found[order.pk].append(
            f"{DISPUTED}: {dispute_text(order, dispute)}: "
            f"{dispute.get_status_display().lower()}; answer it in Stripe's dashboard."
        )
    return found


# --- A pending order whose hold has expired ------------------------------------


def _hold_condition(now: datetime.datetime) -> Q:
    """The order is still pending after its hold ended (the cancellation module's rule)."""
    return hold_expired(now)


def _hold_reasons(orders: Sequence[Order], now: datetime.datetime) -> Reasons:
    """ "Hold expired on …; cancel the order or take its payment." (no query)."""
    found: Reasons = {}
    for order in orders:
        expires = order.hold_expires_at
        # hold_expired(now) on the loaded row: pending, with a hold that ended before now.
        if order.status == Order.Status.PENDING and expires is not None and expires < now:
            when = format_moment(expires)
            found[order.pk] = [f"Hold expired on {when}; cancel the order or take its payment."]
    return found


REASON_BUILDERS: list[ReasonBuilder] = [
    ReasonBuilder(
        _flagged_condition,
        _flagged_reasons,
        lambda now: Order.objects.filter(_flagged_condition(now)).values("pk"),
    ),
    ReasonBuilder(
        _stale_condition, _stale_reasons, lambda now: _stale_payments(now).values("order_id")
    ),
    ReasonBuilder(
        _refund_condition,
        _refund_reasons,
        lambda now: _unsettled_refunds().values("payment__order_id"),
    ),
    ReasonBuilder(
        _event_condition,
        _event_reasons,
        lambda now: _unsettled_events(now).filter(order__isnull=False).values("order_id"),
    ),
    ReasonBuilder(
        _dispute_condition,
        _dispute_reasons,
        lambda now: _open_disputes().values("payment__order_id"),
    ),
    ReasonBuilder(
        _hold_condition,
        _hold_reasons,
        lambda now: Order.objects.filter(_hold_condition(now)).values("pk"),
    ),
]


def needing_attention(
    queryset: QuerySet[Order] | None = None, *, now: datetime.datetime | None = None
) -> QuerySet[Order]:
    """The orders staff must look at: one query, an ``EXISTS`` per kind of derived reason."""
    now = now or timezone.now()
    orders = Order.objects.all() if queryset is None else queryset
    return orders.filter(reduce(or_, (builder.condition(now) for builder in REASON_BUILDERS)))


def attention_count(*, now: datetime.datetime | None = None) -> int:
    """How many orders need attention: one query, a UNION of each reason's order ids.

    Each part reads an index of its own (small) set, so the count does not scan
    every order the way ``needing_attention().count()`` would.
    """
    now = now or timezone.now()
    first, *rest = (builder.order_ids(now).order_by() for builder in REASON_BUILDERS)
    return first.union(*rest).count()


BADGE_CACHE_KEY = "backoffice:attention-count"


def recent_attention_count() -> int:
    """The count for the sidebar badge on every admin page, reused for a few seconds.

    The count is one query, but it reads every order that could qualify; the
    badge need not be exact to the second (``BACKOFFICE_ATTENTION_BADGE_SECONDS``,
    0 to count on every page). The list itself and the dashboard always count.
    """
    seconds = settings.BACKOFFICE_ATTENTION_BADGE_SECONDS
    if seconds <= 0:
        return attention_count()
    count = cache.get(BADGE_CACHE_KEY)
    if count is None:
        count = attention_count()
        cache.set(BADGE_CACHE_KEY, count, seconds)
    return count


def attention_reasons(
    orders: Iterable[Order], *, now: datetime.datetime | None = None
) -> dict[int, list[str]]:
    """Each order's reasons for attention, by order id; orders with none are left out.

    At most one query per kind of reason, whatever the number of orders.
    """
    now = now or timezone.now()
    page = list(orders)
    if not page:
        return {}
    found: dict[int, list[str]] = defaultdict(list)
    for builder in REASON_BUILDERS:
        for order_id, reasons in builder.reasons(page, now).items():
            found[order_id].extend(reasons)
    return dict(found)
