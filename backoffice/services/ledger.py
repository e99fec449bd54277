"""Selectors over the ledger: finding orders, payments, refunds and disputes by what finance pastes.

Also the orders a scheduled re-sync from Stripe checks (``orders_to_resync``).
"""

import re
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q, QuerySet
from django.utils import timezone

from backoffice.models import Conference, Dispute, Order, Payment, Refund

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
    """Primary keys of the orders billed to, or placed by, this e-mail (any case).

    A union of two indexed lookups (the trigram indexes on UPPER(e-mail) also
    serve equality): an OR across the join would scan every order.
    """
    users = get_user_model().objects.order_by().filter(email__iexact=email).values("pk")
    billed = Order.objects.order_by().filter(billing_email__iexact=email).values("pk")
    return billed.union(Order.objects.order_by().filter(user__in=users).values("pk"))


def _pasted(term: str) -> str | None:
    """The pasted term without surrounding space; None when it is empty or several words."""
    term = term.strip()
    return None if not term or " " in term else term


def _by_order(queryset: QuerySet, term: str, order_path: str) -> QuerySet | None:
    """Rows of an order named by its reference or a whole e-mail address, or None.

    ``order_path`` leads from the queryset's rows to their order ("" for orders,
    "order__" for payments, "payment__order__" for refunds and disputes).
    """
    if ORDER_REFERENCE.fullmatch(term.upper()):
        return queryset.filter(**{f"{order_path}reference": term.upper()})
    if "@" in term and _is_email(term):
        return queryset.filter(**{f"{order_path}pk__in": _orders_with_email(term)})
    return None


def search_orders(queryset: QuerySet[Order], term: str) -> QuerySet[Order] | None:
    """Orders matching a pasted identifier through an index, or None for free text.

    An order reference, an e-mail address (billing or account), or the Stripe
    payment intent or charge id of one of the order's payments is matched
    exactly; anything else is left to the substring search (None).
    """
    if (term := _pasted(term)) is None:
        return None
    if term.startswith("pi_"):
        paid = Payment.objects.filter(stripe_payment_intent_id=term).values("order_id")
        return queryset.filter(pk__in=paid)
    if term.startswith(("ch_", "py_")):
        paid = Payment.objects.filter(stripe_charge_id=term).values("order_id")
        return queryset.filter(pk__in=paid)
    return _by_order(queryset, term, "")


def search_payments(queryset: QuerySet[Payment], term: str) -> QuerySet[Payment] | None:
    """Payments matching a pasted identifier through an index, or None for free text.

    An order reference, a Stripe payment intent or charge id, an e-mail address
    or a payment reference is matched exactly (case-insensitively for e-mail and
    reference), which stays fast at millions of rows; anything else is left to
    the admin's substring search (None).
    """
    if (term := _pasted(term)) is None:
        return None
    if term.startswith("pi_"):
        return queryset.filter(stripe_payment_intent_id=term)
    if term.startswith(("ch_", "py_")):
        return queryset.filter(stripe_charge_id=term)
    found = _by_order(queryset, term, "order__")
    if found is not None:
        return found
    by_reference = queryset.filter(reference__iexact=term)
    if by_reference.exists():
        return by_reference
    return None


def search_refunds(queryset: QuerySet[Refund], term: str) -> QuerySet[Refund] | None:
    """Refunds matching a pasted order reference, Stripe refund id or e-mail, or None.

    Like ``search_payments``: exact, indexed lookups; None leaves free text to
    the admin's substring search.
    """
    if (term := _pasted(term)) is None:
        return None
    if term.startswith(("re_", "pyr_")):
        return queryset.filter(stripe_refund_id=term)
    return _by_order(queryset, term, "payment__order__")


def search_disputes(queryset: QuerySet[Dispute], term: str) -> QuerySet[Dispute] | None:
    """Disputes matching a pasted order reference, Stripe dispute, intent or charge id, or e-mail.

    Like ``search_payments``: exact, indexed lookups; None leaves free text to
    the admin's substring search.
    """
    if (term := _pasted(term)) is None:
        return None
    if term.startswith(("dp_", "du_")):
        return queryset.filter(stripe_dispute_id=term)
    if term.startswith("pi_"):
        return queryset.filter(payment__stripe_payment_intent_id=term)
    if term.startswith(("ch_", "py_")):
        return queryset.filter(payment__stripe_charge_id=term)
    return _by_order(queryset, term, "payment__order__")


# A declined card attempt stays worth re-checking this long: the Payment Element
# lets the attendee retry on the same PaymentIntent.
RECENTLY_FAILED = timedelta(days=3)


def orders_to_resync(
    *,
    conference: Conference | None = None,
    since: date | None = None,
    stale_minutes: int | None = None,
) -> QuerySet[Order]:
    """The orders a re-sync from Stripe should check, oldest first.

    Every order with a Stripe payment still pending or processing, or declined
    in the last ``RECENTLY_FAILED`` (the attendee may have paid on the same
    intent with another card, and that webhook may be the one that was lost),
    unchanged for more than ``stale_minutes`` when given; plus, with ``since``,
    every order with a Stripe payment created on or after that day (site time zone).
    """
    stripe = Payment.objects.filter(method=Payment.Method.STRIPE).exclude(
        stripe_payment_intent_id=""
    )
    still_open = stripe.filter(
        Q(status__in=(Payment.Status.PENDING, Payment.Status.PROCESSING))
        | Q(status=Payment.Status.FAILED, updated_at__gte=timezone.now() - RECENTLY_FAILED)
    )
    if stale_minutes is not None:
        cutoff = timezone.now() - timedelta(minutes=stale_minutes)
        still_open = still_open.filter(updated_at__lte=cutoff)
    wanted = Q(pk__in=still_open.values("order_id"))
    if since is not None:
        start = timezone.make_aware(datetime.combine(since, time.min))
        wanted |= Q(pk__in=stripe.filter(created_at__gte=start).values("order_id"))
    orders = Order.objects.filter(wanted)
    if conference is not None:
        orders = orders.filter(conference=conference)
    return orders.select_related("conference", "user").order_by("pk")
