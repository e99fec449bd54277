"""Payment links that no longer work: which conference an old link was for, and whom to ask.

A regenerated link's token is kept only as a SHA-256 digest, so a lookup can name the
conference (and its contact e-mail) on the "link no longer valid" page without the old
token ever reaching an order again.
"""

import hashlib

from backoffice.models import Conference, Order, RetiredPaymentLink


def token_digest(token: str) -> str:
    """The SHA-256 hex digest stored for a retired token."""
    return hashlib.sha256(token.encode()).hexdigest()


def retire_payment_token(order: Order) -> None:
    """Remember the order's current token as retired; call it before giving a new one."""
    RetiredPaymentLink.objects.create(order=order, token_digest=token_digest(order.payment_token))


def conference_of_payment_link(token: str) -> Conference | None:
    """The conference of a retired payment link, or None for a token never issued."""
    if not token:
        return None
    link = (
        RetiredPaymentLink.objects.select_related("order__conference")
        .filter(token_digest=token_digest(token))
        .first()
    )
    return link.order.conference if link else None
