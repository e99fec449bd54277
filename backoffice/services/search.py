"""Selectors for the admin lists' free-text search: names and e-mail fragments through indexes.

Django's own search ORs ``icontains`` over every search field, joins included,
which PostgreSQL can only answer by scanning (and, on the ledger, hash-joining
a million payments to their orders). Here each word first finds the few
matching orders through the trigram indexes on ``UPPER(column)`` (migration
0018), one indexed set per column, united; the ledger lists then take those
orders' rows through their ``order_id`` index. On SQLite the same queries
scan, which its small tables afford.

Like Django's search, every word of the term must match (in any column); a
word too short for a trigram (1-2 characters) is checked on the rows the
other words found.
"""

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils.text import smart_split, unescape_string_literal

from backoffice.models import Dispute, Order, OrderEmail, Payment, Refund, StripeEvent
from backoffice.services.ledger import ORDER_REFERENCE

# The order and user columns a word is looked for in (each has a trigram index).
ORDER_TEXT_COLUMNS = ("reference", "billing_name", "billing_email")
USER_TEXT_COLUMNS = ("email", "first_name", "last_name")
# pg_trgm splits text into three-character pieces: a shorter word cannot use the index.
TRIGRAM = 3


def search_words(term: str) -> list[str]:
    """The words of a search term, as Django's admin splits them (quotes keep phrases)."""
    words = []
    for word in smart_split(term):
        if word[0] in "\"'" and word[0] == word[-1]:
            word = unescape_string_literal(word)
        if word:
            words.append(word)
    return words


def _any_contains(columns: tuple[str, ...], word: str) -> list[Q]:
    """One case-insensitive substring condition per column."""
    return [Q(**{f"{column}__icontains": word}) for column in columns]


def _is_indexed(word: str) -> bool:
    """Whether a trigram index can narrow a search for the word (it needs 3 characters)."""
    return len(word) >= TRIGRAM


def orders_matching_word(word: str) -> QuerySet:
    """Primary keys of the orders with the word in a reference, billing or account name or e-mail.

    A union of one indexed lookup per column: an OR across columns and a join
    would make PostgreSQL scan every order instead.
    """
    users = get_user_model().objects.order_by()
    per_user_column = [
        users.filter(condition).values("pk") for condition in _any_contains(USER_TEXT_COLUMNS, word)
    ]
    user_ids = per_user_column[0].union(*per_user_column[1:])
    per_column = [
        Order.objects.order_by().filter(condition).values("pk")
        for condition in _any_contains(ORDER_TEXT_COLUMNS, word)
    ]
    by_user = Order.objects.order_by().filter(user__in=user_ids).values("pk")
    return per_column[0].union(*per_column[1:], by_user)


def order_has_word(word: str, *, order: str = "") -> Q:
    """The condition "the order has the word", for a word no index narrows (1-2 characters).

    Applied after the other words' indexed sets have narrowed the rows, it is
    checked on those few; ``order`` is the path to the order ("payment__order__").
    """
    columns = (
        *(f"{order}{column}" for column in ORDER_TEXT_COLUMNS),
        *(f"{order}user__{column}" for column in USER_TEXT_COLUMNS),
    )
    condition = Q()
    for contains in _any_contains(columns, word):
        condition |= contains
    return condition


def search_orders_text(queryset: QuerySet[Order], term: str) -> QuerySet[Order]:
    """Orders with every word of the term in a reference, name or e-mail (billing or account)."""
    for word in search_words(term):
        if _is_indexed(word):
            queryset = queryset.filter(pk__in=orders_matching_word(word))
        else:
            queryset = queryset.filter(order_has_word(word))
    return queryset


def search_payments_text(queryset: QuerySet[Payment], term: str) -> QuerySet[Payment]:
    """Payments whose order matches every word, or whose own reference contains the word."""
    for word in search_words(term):
        if _is_indexed(word):
            by_order = Payment.objects.order_by().filter(order__in=orders_matching_word(word))
            by_reference = Payment.objects.order_by().filter(reference__icontains=word)
            matching = by_order.values("pk").union(by_reference.values("pk"))
            queryset = queryset.filter(pk__in=matching)
        else:
            queryset = queryset.filter(
                order_has_word(word, order="order__") | Q(reference__icontains=word)
            )
    return queryset


def _search_by_payment_order(queryset: QuerySet, term: str, own_text: str) -> QuerySet:
    """Rows of a payment whose order matches every word, or whose ``own_text`` contains it."""
    for word in search_words(term):
        if _is_indexed(word):
            by_order = Q(payment__order__in=orders_matching_word(word))
        else:
            by_order = order_has_word(word, order="payment__order__")
        queryset = queryset.filter(by_order | Q(**{f"{own_text}__icontains": word}))
    return queryset


def search_refunds_text(queryset: QuerySet[Refund], term: str) -> QuerySet[Refund]:
    """Refunds whose order matches every word, or whose note contains the word."""
    return _search_by_payment_order(queryset, term, "note")


def search_disputes_text(queryset: QuerySet[Dispute], term: str) -> QuerySet[Dispute]:
    """Disputes whose order matches every word, or whose reason contains the word."""
    return _search_by_payment_order(queryset, term, "reason")


def search_stripe_events(
    queryset: QuerySet[StripeEvent], term: str
) -> QuerySet[StripeEvent] | None:
    """Events with a pasted Stripe event id (exact, indexed), or None for free text."""
    term = term.strip()
    if term.startswith("evt_") and " " not in term:
        return queryset.filter(stripe_event_id=term)
    return None


def search_order_emails(queryset: QuerySet[OrderEmail], term: str) -> QuerySet[OrderEmail] | None:
    """E-mails about a pasted order reference (exact, indexed), or None for free text."""
    term = term.strip()
    if ORDER_REFERENCE.fullmatch(term.upper()):
        return queryset.filter(order__reference=term.upper())
    return None
