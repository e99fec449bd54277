"""Selectors for the front desk's work: orders to comp and orders with a balance due.

Both are pending orders. A pending order with a total of zero waits to be
marked comp (the only action it allows, see ``ledger._comp_allowed``); a
pending order with a total above zero always owes something, since the status
rule keeps an order pending only while its money is below its total.
"""

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from backoffice.models import ZERO, Order

# How many orders each list on the desk's home page shows.
DESK_LIST_LENGTH = 8

TO_COMP = Q(status=Order.Status.PENDING, total=ZERO)
BALANCE_DUE = Q(status=Order.Status.PENDING, total__gt=ZERO)


def awaits_comp(order: Order) -> bool:
    """Whether the order is pending with a total of zero: it is to be marked comp."""
    return order.status == Order.Status.PENDING and order.total == ZERO


def to_comp(orders: QuerySet[Order] | None = None) -> QuerySet[Order]:
    """The pending orders with a total of zero (of ``orders``, default all)."""
    return (Order.objects.all() if orders is None else orders).filter(TO_COMP)


def with_balance_due(orders: QuerySet[Order] | None = None) -> QuerySet[Order]:
    """The pending orders that still owe money (of ``orders``, default all)."""
    return (Order.objects.all() if orders is None else orders).filter(BALANCE_DUE)


@dataclass(frozen=True)
class WorkList:
    """The first few orders of one list of work, newest first, and how many there are."""

    count: int
    orders: list[Order]


@dataclass(frozen=True)
class DeskWork:
    """What the front desk works on."""

    to_comp: WorkList
    balance_due: WorkList


def _first(orders: QuerySet[Order], length: int) -> WorkList:
    """The newest ``length`` orders with their amounts, and the count of all of them."""
    shown = orders.with_amounts().select_related("conference", "user")
    shown = shown.order_by("-created_at", "-id")
    return WorkList(count=orders.count(), orders=list(shown[:length]))


def desk_work(*, length: int = DESK_LIST_LENGTH) -> DeskWork:
    """The desk's two lists, ``length`` orders each, in four queries."""
    return DeskWork(
        to_comp=_first(to_comp(), length), balance_due=_first(with_balance_due(), length)
    )
