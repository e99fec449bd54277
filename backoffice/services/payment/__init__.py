"""Payment workflows: complimentary orders, manual payments and Stripe card payments.

One module per family of entry points: ``desk`` (the clerk's comp and manual
payments), ``refunds`` (the clerk's refunds), ``checkout`` (the attendee paying
by card, the return page, the payment link), ``cancellation`` (cancelling
orders that hold no money), ``stripe_sync``, ``refund_sync`` and
``dispute_sync`` (applying what Stripe reports), ``resync`` (asking Stripe
again for what it holds) and ``ledger`` (the shared rule and read helpers they all use).
``PaymentService`` is the front door the admin, the views and the commands call.
"""

from backoffice.services.payment import cancellation, checkout, desk, refunds, resync
from backoffice.services.payment.dispute_sync import apply_stripe_dispute
from backoffice.services.payment.ledger import (
    AMOUNT_LIMIT,
    Allowed,
    OrderAction,
    allowed_actions,
    lock_order,
    net_received,
    parse_amount,
    refundable_payments,
    resolve_attention,
    succeeded_total,
)
from backoffice.services.payment.refund_sync import apply_charge_refund, apply_stripe_refund
from backoffice.services.payment.refunds import apply_refund_answer
from backoffice.services.payment.resync import SyncReport
from backoffice.services.payment.stripe_sync import (
    PaymentOfAnotherConference,
    UnmatchedPaymentError,
    apply_payment_intent,
)
from backoffice.stripe_client import PaymentProviderError, StripeNotConfigured, StripeUnreachable

__all__ = [
    "AMOUNT_LIMIT",
    "Allowed",
    "OrderAction",
    "PaymentOfAnotherConference",
    "PaymentProviderError",
    "PaymentService",
    "StripeNotConfigured",
    "StripeUnreachable",
    "SyncReport",
    "UnmatchedPaymentError",
    "allowed_actions",
    "apply_charge_refund",
    "apply_payment_intent",
    "apply_refund_answer",
    "apply_stripe_dispute",
    "apply_stripe_refund",
    "lock_order",
    "net_received",
    "parse_amount",
    "resolve_attention",
    "refundable_payments",
    "succeeded_total",
]


class PaymentService:
    """Stateless payment operations on orders; every refusal is a ``ValidationError``.

    Each method is the workflow module's function itself (same signature).
    """

    record_comp = staticmethod(desk.record_comp)
    record_manual = staticmethod(desk.record_manual)
    record_manual_once = staticmethod(desk.record_manual_once)
    initiate_payment = staticmethod(checkout.initiate_payment)
    refresh_from_stripe = staticmethod(checkout.refresh_from_stripe)
    regenerate_payment_link = staticmethod(checkout.regenerate_payment_link)
    resolve_attention = staticmethod(resolve_attention)
    cancel_order = staticmethod(cancellation.cancel_order)
    refund = staticmethod(refunds.refund)
    sync_from_stripe = staticmethod(resync.sync_from_stripe)
