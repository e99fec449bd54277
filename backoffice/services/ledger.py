"""Selectors over the payments ledger: finding payments by what finance pastes into search."""

import re

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q, QuerySet

from backoffice.models import Order, Payment

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
        users = get_user_model().objects.filter(email__iexact=term).values("pk")
        orders = Order.objects.filter(Q(billing_email__iexact=term) | Q(user__in=users)).values(
            "pk"
        )
        return queryset.filter(order__in=orders)
    by_reference = queryset.filter(reference__iexact=term)
    if by_reference.exists():
        return by_reference
    return None
