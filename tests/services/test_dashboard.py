"""Finance dashboard selectors: the figures, and a fixed number of aggregate queries."""

import datetime
from decimal import Decimal

import pytest
from django.test import override_settings

from backoffice.models import Order, Payment, StripeEvent
from backoffice.services.dashboard import (
    daily_collected_revenue,
    failed_stripe_events,
    finance_summary,
    orders_by_status,
    outstanding_on_pending_orders,
    revenue_by_conference_and_method,
)
from backoffice.services.payment import apply_stripe_dispute
from backoffice.stripe_client import parse_dispute
from tests.ledger_factories import make_payment, make_refund
from tests.stripe_fixtures import dispute_object

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
D = Decimal


def test_revenue_is_succeeded_minus_refunded_per_conference_and_method(make_order, jpy_conference):
    usd = make_order("500.00")
    make_payment(usd, "100.00", method=Payment.Method.STRIPE)
    make_payment(usd, "80.00", method=Payment.Method.STRIPE, refunded_amount=D("30.00"))
    make_payment(usd, "60.00", method=Payment.Method.STRIPE, status=Payment.Status.REFUNDED)
    make_payment(usd, "999.00", method=Payment.Method.STRIPE, status=Payment.Status.FAILED)
    make_payment(usd, "999.00", method=Payment.Method.STRIPE, status=Payment.Status.PENDING)
    make_payment(usd, "40.00", method=Payment.Method.MANUAL)
    make_payment(usd, "0.00", method=Payment.Method.COMP)
    make_payment(make_order("5000", conference=jpy_conference), "5000", method="stripe")

    lines = {(r.conference, r.method): r for r in revenue_by_conference_and_method()}
    stripe = lines[("PyCon Test", "stripe")]
    assert (stripe.gross, stripe.refunded) == (D("240.00"), D("90.00"))
    assert stripe.net == D("150.00")
    assert lines[("PyCon Test", "manual")].net == D("40.00")
    assert lines[("PyCon Test", "comp")].net == D("0.00")
    assert lines[("PyCon JP", "stripe")].net == D("5000.00")
    assert lines[("PyCon JP", "stripe")].currency == "JPY"
    assert set(lines) == {
        ("PyCon Test", "stripe"), ("PyCon Test", "manual"), ("PyCon Test", "comp"),
        ("PyCon JP", "stripe"),
    }  # fmt: skip


def test_orders_by_status_counts_every_status(make_order):
    make_order()
    make_order()
    make_order(status=Order.Status.PAID)
    counts = orders_by_status()
    assert counts == {
        "pending": 2, "paid": 1, "cancelled": 0, "refunded": 0, "partially_refunded": 0,
    }  # fmt: skip


def test_outstanding_sums_balances_of_pending_orders_only(make_order, jpy_conference):
    part_paid = make_order("100.00")
    make_payment(part_paid, "30.00")
    make_payment(part_paid, "50.00", status=Payment.Status.FAILED)
    make_order("20.00")
    overpaid = make_order("10.00")
    make_payment(overpaid, "25.00")  # owes nothing, and does not offset the others
    make_order("500.00", status=Order.Status.CANCELLED)
    make_order("300.00", status=Order.Status.PAID)
    make_order("7000", conference=jpy_conference)

    lines = {line.conference: line for line in outstanding_on_pending_orders()}
    assert (lines["PyCon Test"].orders, lines["PyCon Test"].balance) == (3, D("90.00"))
    assert (lines["PyCon JP"].currency, lines["PyCon JP"].balance) == ("JPY", D("7000.00"))


@override_settings(TIME_ZONE="Asia/Tokyo")
def test_daily_revenue_covers_30_local_days_per_currency(make_order, jpy_conference):
    usd = make_order("1000.00")
    today = datetime.date(2026, 11, 26)
    # 2026-11-25 23:30 UTC is 08:30 on the 26th in Tokyo.
    make_payment(usd, "10.00", created_at=datetime.datetime(2026, 11, 25, 23, 30, tzinfo=UTC))
    make_payment(usd, "5.00", created_at=datetime.datetime(2026, 11, 26, 1, 0, tzinfo=UTC))
    make_payment(
        usd, "50.00", refunded_amount=D("20.00"),
        created_at=datetime.datetime(2026, 10, 27, 15, 0, tzinfo=UTC),  # Oct 28 local: first day
    )  # fmt: skip
    make_payment(usd, "70.00", created_at=datetime.datetime(2026, 10, 27, 14, 59, tzinfo=UTC))
    make_payment(
        usd, "99.00", status=Payment.Status.REFUNDED,
        created_at=datetime.datetime(2026, 11, 20, tzinfo=UTC),
    )  # fmt: skip
    make_payment(
        make_order("3000", conference=jpy_conference), "3000",
        created_at=datetime.datetime(2026, 11, 10, 3, 0, tzinfo=UTC),
    )  # fmt: skip

    daily = daily_collected_revenue(today=today)
    assert daily.days[0] == datetime.date(2026, 10, 28)
    assert daily.days[-1] == today
    assert len(daily.days) == 30
    assert list(daily.by_currency) == ["JPY", "USD"]
    usd_line = dict(zip(daily.days, daily.by_currency["USD"], strict=True))
    assert usd_line[today] == D("15.00")
    assert usd_line[datetime.date(2026, 10, 28)] == D("30.00")
    assert usd_line[datetime.date(2026, 11, 20)] == D("0")
    assert sum(daily.by_currency["USD"]) == D("45.00")
    assert dict(zip(daily.days, daily.by_currency["JPY"], strict=True))[
        datetime.date(2026, 11, 10)
    ] == D("3000.00")


def _ledger(make_order, size: int) -> None:
    for index in range(size):
        order = make_order("100.00", status=list(Order.Status)[index % 5])
        make_payment(order, "10.00", method=list(Payment.Method)[index % 3])
        make_payment(order, "5.00", status=Payment.Status.REFUNDED)


@pytest.mark.parametrize("size", [1, 25])
def test_summary_runs_four_aggregate_queries_whatever_the_size(
    make_order, django_assert_num_queries, size
):
    _ledger(make_order, size)
    with django_assert_num_queries(4):
        summary = finance_summary()
    assert sum(summary.orders_by_status.values()) == size


def test_revenue_agrees_with_the_orders_amount_paid(make_order):
    """The dashboard's net revenue is the sum of what orders show as paid (net of refunds)."""
    cash_and_card = make_order("100.00")
    make_payment(cash_and_card, "30.00")
    make_payment(cash_and_card, "100.00", method="stripe", refunded_amount=D("30.00"))
    refunded = make_order("60.00")
    make_payment(
        refunded, "60.00", method="stripe", status=Payment.Status.REFUNDED,
        refunded_amount=D("60.00"),
    )  # fmt: skip
    partly = make_order("80.00")
    make_payment(partly, "80.00", method="stripe", refunded_amount=D("0.01"))
    make_payment(partly, "80.00", method="stripe", status=Payment.Status.FAILED)

    revenue = sum(line.net for line in revenue_by_conference_and_method())
    paid = sum(order.amount_paid for order in Order.objects.with_amounts())

    assert revenue == paid == D("179.99")
    assert [o.amount_paid for o in (cash_and_card, refunded, partly)] == [
        D("100.00"),
        D("0.00"),
        D("79.99"),
    ]


def _disputed_card_payment(order: Order, name: str, minor: int, status: str) -> None:
    """A succeeded card payment of the order's total that Stripe reports disputed."""
    make_payment(
        order,
        str(order.total),
        method=Payment.Method.STRIPE,
        stripe_payment_intent_id=f"pi_{name}",
        stripe_charge_id=f"ch_{name}",
        created_at=datetime.datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
    )
    dispute = dispute_object(f"pi_{name}", f"ch_{name}", minor, status=status)
    apply_stripe_dispute(order.conference, parse_dispute(dispute))


def test_a_lost_dispute_counts_as_refunded_and_a_won_or_open_one_does_not(make_order):
    _disputed_card_payment(make_order("100.00"), "lost", 3333, "lost")
    _disputed_card_payment(make_order("100.00"), "won", 10000, "won")
    _disputed_card_payment(make_order("100.00"), "open", 10000, "needs_response")
    refunded_too = make_order("50.00")
    _disputed_card_payment(refunded_too, "both", 1000, "lost")
    payment = Payment.objects.get(stripe_payment_intent_id="pi_both")
    make_refund(payment, "15.00")

    [stripe] = revenue_by_conference_and_method()
    assert (stripe.gross, stripe.refunded) == (D("350.00"), D("58.33"))  # 33.33 + 10 + 15
    assert stripe.net == D("291.67")
    daily = daily_collected_revenue(today=datetime.date(2026, 11, 26))
    assert sum(daily.by_currency["USD"]) == D("291.67")
    paid = sum(order.amount_paid for order in Order.objects.with_amounts())
    assert paid == stripe.net


def test_failed_stripe_events_counts_those_with_an_error():
    for event_id, error in (("evt_ok", ""), ("evt_1", "data is missing"), ("evt_2", "x")):
        StripeEvent.objects.create(
            stripe_event_id=event_id, type="x.y", payload={}, last_error=error
        )

    assert failed_stripe_events() == 2
