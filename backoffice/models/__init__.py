"""Data model: conferences, orders, their line items, payments and Stripe records.

One module per part of the data (``orders``, ``payments``, ``totals``…); every name
is importable from ``backoffice.models`` as before, and migrations refer to it there.
"""

from backoffice.models.actors import STRIPE_ACTOR, actor_name, user_name
from backoffice.models.background import ExportFile, ScheduledJob, WorkerHeartbeat
from backoffice.models.conference import Conference
from backoffice.models.emails import OrderEmail
from backoffice.models.orders import (
    REFERENCE_ALPHABET,
    REFERENCE_LENGTH,
    Order,
    OrderHistoryEntry,
    OrderLineItem,
    OrderQuerySet,
    RetiredPaymentLink,
    generate_order_reference,
    generate_payment_token,
)
from backoffice.models.payments import (
    MONEY,
    MONEY_HELD_STATUSES,
    MONEY_OUT,
    NET_OF_REFUNDS,
    ZERO,
    Dispute,
    Payment,
    Refund,
)
from backoffice.models.stripe_records import StripeCustomer, StripeEvent
from backoffice.models.totals import TOTAL, LedgerTotal, OrderTotal

__all__ = [
    "MONEY",
    "MONEY_HELD_STATUSES",
    "MONEY_OUT",
    "NET_OF_REFUNDS",
    "REFERENCE_ALPHABET",
    "REFERENCE_LENGTH",
    "STRIPE_ACTOR",
    "TOTAL",
    "ZERO",
    "Conference",
    "Dispute",
    "ExportFile",
    "LedgerTotal",
    "Order",
    "OrderEmail",
    "OrderHistoryEntry",
    "OrderLineItem",
    "OrderQuerySet",
    "OrderTotal",
    "Payment",
    "Refund",
    "RetiredPaymentLink",
    "ScheduledJob",
    "StripeCustomer",
    "StripeEvent",
    "WorkerHeartbeat",
    "actor_name",
    "generate_order_reference",
    "generate_payment_token",
    "user_name",
]
