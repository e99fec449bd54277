"""The order's history: one append-only entry per change of its money or status."""

from decimal import Decimal

from django.contrib.auth.base_user import AbstractBaseUser

from backoffice.models import STRIPE_ACTOR, Order, OrderHistoryEntry

# Who acted when no staff user did (``actor`` given as text).
STRIPE = STRIPE_ACTOR
CHECKOUT = "checkout"
# What Stripe reported, found by a re-sync (the admin's button or ``sync_stripe``), not a webhook.
RESYNC = "Stripe (re-sync)"
# A desk write made without a staff user (e.g. from a shell).
SYSTEM = "system"
# The background worker (``manage.py db_worker``), e.g. recording a task that failed.
WORKER = "worker"


def record_history(
    order: Order,
    *,
    actor: AbstractBaseUser | str | None,
    action: OrderHistoryEntry.Action,
    message: str = "",
    amount: Decimal | None = None,
    status_before: str = "",
    status_after: str = "",
) -> OrderHistoryEntry:
    """Append one entry to the order's history; call in the transaction making the change.

    ``actor`` is the staff user who acted, or a label such as ``STRIPE``,
    ``CHECKOUT`` or a management command's name when no user did.
    """
    user = actor if isinstance(actor, AbstractBaseUser) else None
    label = "" if user is not None else (actor or "")
    return OrderHistoryEntry.objects.create(
        order=order,
        actor=user,
        actor_label=label[:100],
        action=action,
        amount=amount,
        status_before=status_before,
        status_after=status_after or order.status,
        message=message,
    )
