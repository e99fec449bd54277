"""Cancelling orders that hold no money, and finding the ones whose hold has expired."""

import logging
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from backoffice.models import Order, OrderHistoryEntry

# The module, not its names: notifications imports the ledger, loading this package.
from backoffice.services import notifications
from backoffice.services.history import SYSTEM
from backoffice.services.payment.checkout import cancel_outdated_attempt
from backoffice.services.payment.ledger import (
    OrderAction,
    allowed_actions,
    latest_attempt,
    lock_order,
    settle_order,
    sync_caller_copy,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

# The card attempt's note once it was cancelled at Stripe with its order.
ATTEMPT_CANCELLED = "Cancelled: the order was cancelled."


def cancel_order(order: Order, *, reason: str, staff_user: "AbstractBaseUser | None") -> Order:
    """Cancel a PENDING order that holds no money; ``reason`` goes on its history entry.

    Refused with a ``ValidationError`` (nothing changed) when the reason is
    blank or ``allowed_actions`` refuses ``CANCEL``: the order is already
    cancelled, not pending, holds money or has a card payment being processed.
    The order's card attempt, if any, is cancelled at Stripe after commit (best
    effort: see ``cancel_outdated_attempt``), so its pay page can charge nothing.
    The attendee's confirmation is queued in the same transaction.
    """
    text = reason.strip()
    if not text:
        raise ValidationError("Give a reason for cancelling the order.")
    actor = staff_user or SYSTEM
    with transaction.atomic():
        locked = lock_order(order)
        allowed_actions(locked)[OrderAction.CANCEL].check()
        # The newest open or declined attempt: a declined intent can still be paid at Stripe.
        attempt = latest_attempt(locked)
        settle_order(locked, actor=actor, action=OrderHistoryEntry.Action.CANCEL, message=text)
        notifications.send_cancellation_confirmation(locked)
        if attempt is not None:
            attempt.order = locked
            transaction.on_commit(
                lambda: cancel_outdated_attempt(attempt, actor=actor, reason=ATTEMPT_CANCELLED)
            )
    sync_caller_copy(order, locked)
    logger.info(
        "Cancelled order",
        extra={"order": locked.reference, "staff_user": getattr(staff_user, "pk", None)},
    )
    return order


def cancelled_at(order: Order) -> datetime | None:
    """When the order was cancelled (its latest cancel in the history), if it was."""
    entry = (
        OrderHistoryEntry.objects.filter(order=order, action=OrderHistoryEntry.Action.CANCEL)
        .order_by("-created_at", "-id")
        .only("created_at")
        .first()
    )
    return entry.created_at if entry is not None else None


class HoldState(StrEnum):
    """Where a pending order's hold stands."""

    EXPIRED = "expired"
    ACTIVE = "active"
    NONE = "none"


def hold_expired(now: datetime) -> Q:
    """The order is still pending and its hold ended before ``now``."""
    return Q(status=Order.Status.PENDING, hold_expires_at__lt=now)


def with_hold(orders: QuerySet[Order], state: HoldState) -> QuerySet[Order]:
    """The pending orders among ``orders`` whose hold is expired, still active, or not set."""
    pending = orders.filter(status=Order.Status.PENDING)
    now = timezone.now()
    if state == HoldState.EXPIRED:
        return orders.filter(hold_expired(now))
    if state == HoldState.ACTIVE:
        return pending.filter(hold_expires_at__gte=now)
    return pending.filter(hold_expires_at__isnull=True)
