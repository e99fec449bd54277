"""Selectors over the ledger: finding payments, refunds and disputes by what finance pastes."""

import re

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q, QuerySet

from backoffice.models import Dispute, Order, Payment, Refund

# The shape of an order reference (generated ones use REFERENCE_ALPHABET, imported
# or legacy ones may not).
ORDER_REFERENCE = re.compile(r"ORD-[A-Z0-9]{4,16}")


def _is_email(term: str) -> bool:
    """Whether the term is a whole e-mail address (not a fragment of one)."""
    try:
        validate_email(term)
    except ValidationError:
        return False
    return True


def _orders_with_email(email: str) -> QuerySet[Order]:
    """Primary keys of the orders billed to, or placed by, this e-mail (any case)."""
    users = get_user_model().objects.filter(email__iexact=email).values("pk")
    return Order.objects.filter(Q(billing_email__iexact=email) | Q(user__in=users)).values("pk")


def search_payments(queryset: QuerySet[Payment], term: str) -> QuerySet[Payment] | None:
    """Payments matching a pasted identifier through an index, or None for free text.

    An order reference, a Stripe payment intent or charge id, an e-mail address
    or a payment reference is matched exactly (case-insensitively for e-mail and
    reference), which stays fast at millions of rows; anything else is left to
    the admin's substring search (None).
    """
    term = term.strip()
    if not term or " " in term:
        return None
    if ORDER_REFERENCE.fullmatch(term.upper()):
        return queryset.filter(order__reference=term.upper())
    if term.startswith("pi_"):
        return queryset.filter(stripe_payment_intent_id=term)
    if term.startswith(("ch_", "py_")):
        return queryset.filter(stripe_charge_id=term)
    if "@" in term and _is_email(term):
        return queryset.filter(order__in=_orders_with_email(term))
    by_reference = queryset.filter(reference__iexact=term)
    if by_reference.exists():
        return by_reference
    return None


def search_refunds(queryset: QuerySet[Refund], term: str) -> QuerySet[Refund] | None:
    """Refunds matching a pasted order reference, Stripe refund id or e-mail, or None.

    Like ``search_payments``: exact, indexed lookups; None leaves free text to
    the admin's substring search.
    """
    term = term.strip()
    if not term or " " in term:
        return None
    if ORDER_REFERENCE.fullmatch(term.upper()):
        return queryset.filter(payment__order__reference=term.upper())
    if term.startswith(("re_", "pyr_")):
        return queryset.filter(stripe_refund_id=term)
    if "@" in term and _is_email(term):
        return queryset.filter(payment__order__in=_orders_with_email(term))
    return None


def search_disputes(queryset: QuerySet[Dispute], term: str) -> QuerySet[Dispute] | None:
    """Disputes matching a pasted order reference, Stripe dispute, intent or charge id, or e-mail.

    Like ``search_payments``: exact, indexed lookups; None leaves free text to
    the admin's substring search.
    """
    term = term.strip()
    if not term or " " in term:
        return None
    if ORDER_REFERENCE.fullmatch(term.upper()):
        return queryset.filter(payment__order__reference=term.upper())
    if term.startswith(("dp_", "du_")):
        return queryset.filter(stripe_dispute_id=term)
    if term.startswith("pi_"):
        return queryset.filter(payment__stripe_payment_intent_id=term)
    if term.startswith(("ch_", "py_")):
        return queryset.filter(payment__stripe_charge_id=term)
    if "@" in term and _is_email(term):
        return queryset.filter(payment__order__in=_orders_with_email(term))
    return None
