"""Maintained totals: every ledger write keeps them equal to a full recomputation.

The property runs random sequences of desk payments, comps, card payments,
card and desk refunds, disputes and cancellations through the real services
on a few orders, then compares the totals with ``find_differences`` (a full
recomputation from the ledger) and with sums read straight from the rows.
"""

import datetime
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backoffice.models import ZERO, LedgerTotal, Order, OrderTotal, Payment, Refund
from backoffice.services.dashboard import orders_by_status, revenue_by_conference_and_method
from backoffice.services.ledger_totals import count_new_orders, recount_order
from backoffice.services.ledger_totals_check import find_differences
from backoffice.services.payment import (
    PaymentService,
    apply_charge_refund,
    apply_payment_intent,
    apply_stripe_dispute,
)
from backoffice.stripe_client import parse_charge, parse_dispute, parse_payment_intent
from tests.hostile.invariants import rolled_back
from tests.ledger_factories import make_payment
from tests.races import outcome, run_at_once
from tests.stripe_fixtures import dispute_object, refunded_charge, succeeded_intent

pytestmark = pytest.mark.django_db
D = Decimal

ORDER = st.integers(0, 2)  # 0 and 1 owe money, 2 is a zero-total order (comps)
CARD = st.integers(0, 3)
CENTS = st.integers(1, 15000)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("manual"), ORDER, CENTS),
        st.tuples(st.just("comp"), ORDER),
        st.tuples(st.just("card"), ORDER, CARD, CENTS),
        st.tuples(st.just("card_refund"), CARD, CENTS),
        st.tuples(st.just("desk_refund"), ORDER, CENTS),
        st.tuples(
            st.just("dispute"),
            CARD,
            CENTS,
            st.sampled_from(["needs_response", "lost", "won", "under_review"]),
        ),
        st.tuples(st.just("cancel"), ORDER),
    ),
    min_size=1,
    max_size=10,
)


def _intent(card: int) -> str:
    """The intent id of card slot ``card``."""
    return f"pi_tot{card}"


def apply(orders: list[Order], step: tuple) -> None:
    """Run one step through the services; refusals are part of the game."""
    kind = step[0]
    with suppress(ValidationError):
        if kind == "manual":
            PaymentService.record_manual(orders[step[1]], amount=D(step[2]) / 100)
        elif kind == "comp":
            PaymentService.record_comp(orders[step[1]])
        elif kind == "card":
            order = orders[step[1]]
            if Payment.objects.filter(stripe_payment_intent_id=_intent(step[2])).exists():
                return  # one intent pays one order
            fields = {"amount": step[3], "amount_received": step[3]}
            intent = succeeded_intent(order, _intent(step[2]), **fields)
            apply_payment_intent(order.conference, parse_payment_intent(intent), "succeeded")
        elif kind == "card_refund":
            payment = Payment.objects.filter(stripe_payment_intent_id=_intent(step[1])).first()
            if payment is not None:
                minor = int(payment.amount * 100)
                charge_id = f"ch_tot{step[1]}"
                charge = refunded_charge(charge_id, _intent(step[1]), minor, min(step[2], minor))
                apply_charge_refund(payment.order.conference, parse_charge(charge))
        elif kind == "desk_refund":
            payment = (
                Payment.objects.filter(order=orders[step[1]], method=Payment.Method.MANUAL)
                .filter(status=Payment.Status.SUCCEEDED)
                .first()
            )
            if payment is not None:
                PaymentService.refund(
                    payment, amount=D(step[2]) / 100, reason=Refund.Reason.REQUESTED_BY_CUSTOMER
                )
        elif kind == "dispute":
            payment = Payment.objects.filter(stripe_payment_intent_id=_intent(step[1])).first()
            if payment is not None:
                minor = min(step[2], int(payment.amount * 100))
                dispute = dispute_object(
                    _intent(step[1]),
                    f"ch_tot{step[1]}",
                    minor,
                    status=step[3],
                    dispute_id=f"dp_tot{step[1]}",
                )
                apply_stripe_dispute(payment.order.conference, parse_dispute(dispute))
        else:
            PaymentService.cancel_order(orders[step[1]], reason="Changed plans", staff_user=None)


def revenue_from_rows() -> dict[str, tuple[Decimal, Decimal]]:
    """Gross and refunded per method, summed in Python from the payments themselves."""
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for payment in Payment.objects.filter(status__in=("succeeded", "refunded")):
        back = payment.amount if payment.status == "refunded" else payment.refunded_amount
        sums[payment.method][0] += payment.amount
        sums[payment.method][1] += back + payment.lost_dispute_amount
    return {method: (gross, refunded) for method, (gross, refunded) in sums.items()}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# A card payment refunded in part, then lost to a dispute, then a cancel refused.
@example(steps=[("card", 0, 0, 5000), ("card_refund", 0, 1000), ("dispute", 0, 4000, "lost")])
# A comp on the zero-total order, a desk payment refunded in full, then the order cancelled.
@example(steps=[("comp", 2), ("manual", 1, 3000), ("desk_refund", 1, 3000), ("cancel", 1)])
@given(steps=STEPS)
def test_any_sequence_of_writes_keeps_the_totals_equal_to_the_ledger(make_order, steps):
    with rolled_back():
        orders = [make_order("100.00"), make_order("45.50"), make_order("0.00")]
        for step in steps:
            apply(orders, step)
        assert find_differences() == [], steps
        lines = {
            line.method: (line.gross, line.refunded) for line in revenue_by_conference_and_method()
        }
        assert lines == revenue_from_rows(), steps
        counts = {s: n for s, n in orders_by_status().items() if n}
        statuses = Order.objects.values_list("status", flat=True)
        assert counts == {s: list(statuses).count(s) for s in set(statuses)}, steps


def test_a_payment_counts_on_its_local_day_and_method(make_order, settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    order = make_order("100.00")
    make_payment(
        order, "30.00", method=Payment.Method.STRIPE,
        created_at=datetime.datetime(2026, 11, 25, 23, 30, tzinfo=datetime.UTC),
    )  # fmt: skip
    [row] = LedgerTotal.objects.all()
    assert (row.day, row.method, row.payments, row.collected) == (
        datetime.date(2026, 11, 26), "stripe", 1, D("30.00"),
    )  # fmt: skip
    pending = OrderTotal.objects.get(status=Order.Status.PENDING)
    assert (pending.orders, pending.balance) == (1, D("70.00"))


def test_recounting_an_unchanged_order_writes_nothing(make_order, django_assert_num_queries):
    order = make_order("100.00")
    make_payment(order, "30.00")
    with django_assert_num_queries(2):  # the order and its payments, read; nothing to add
        recount_order(order)


def test_a_write_adds_its_difference_in_a_few_queries(make_order, django_assert_num_queries):
    order = make_order("100.00")
    make_payment(order, "30.00")
    Payment.objects.filter(order=order).update(refunded_amount=D("10.00"))
    # Read order and payments; then one ledger-total upsert, one order-total upsert, the
    # payment's and the order's counted state: one statement on PostgreSQL, four elsewhere.
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 6):
        recount_order(order)
    assert find_differences() == []


def test_imported_orders_count_before_they_are_inserted(conference, attendee):
    orders = [
        Order(conference=conference, user=attendee, total=D(total), status=status, reference=ref)
        for total, status, ref in [
            ("10.00", "pending", "ORD-IMP1"),
            ("5.00", "pending", "ORD-IMP2"),
            ("7.00", "cancelled", "ORD-IMP3"),
        ]
    ]
    count_new_orders(orders)
    Order.objects.bulk_create(orders)
    assert find_differences() == []
    assert OrderTotal.objects.get(status="pending").balance == D("15.00")


THREADS = 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_orders_of_one_conference_paid_at_once_all_count(make_order):
    if connection.vendor != "postgresql":
        pytest.skip("row-lock race test needs PostgreSQL (SQLite serialises all writers)")
    # No totals row exists yet: every thread races to insert the same ones.
    orders = [make_order("100.00") for _ in range(THREADS)]
    LedgerTotal.objects.all().delete()

    def clerk(order: Order) -> Callable[[], object]:
        return lambda: PaymentService.record_manual(order, amount=D("40.00"))

    outcomes = [outcome(r) for r in run_at_once([clerk(order) for order in orders])]

    assert outcomes == ["ok"] * THREADS
    [row] = LedgerTotal.objects.all()
    assert (row.payments, row.collected) == (THREADS, D("40.00") * THREADS)
    pending = OrderTotal.objects.get(status=Order.Status.PENDING)
    assert (pending.orders, pending.balance) == (THREADS, D("60.00") * THREADS)
    assert find_differences() == []
