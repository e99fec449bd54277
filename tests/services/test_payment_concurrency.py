"""PaymentService under concurrent clerks, on real PostgreSQL row locks."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from backoffice.models import Order, Payment
from backoffice.services.payment import PaymentService
from backoffice.signals import order_paid
from tests.races import outcome, run_at_once
from tests.worker import run_db_worker

THREADS = 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_manual_payments_never_overpay_or_double_pay(make_order):
    if connection.vendor != "postgresql":
        pytest.skip("row-lock race test needs PostgreSQL (SQLite serialises all writers)")
    order = make_order("100.00")
    fired = []
    lock = threading.Lock()

    def receiver(sender, order, user, **kwargs):
        with lock:
            fired.append(order.pk)

    def clerk() -> object:
        stale = Order.objects.get(pk=order.pk)
        return PaymentService.record_manual(stale, amount=Decimal("40.00"))

    order_paid.connect(receiver)
    try:
        outcomes = [outcome(r) for r in run_at_once([clerk] * THREADS)]
    finally:
        order_paid.disconnect(receiver)

    paid = Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED).aggregate(
        s=Sum("amount")
    )["s"]
    order.refresh_from_db()
    # 40 + 40 fit in 100; a third 40 would exceed it, so exactly 2 succeed.
    assert sorted(outcomes) == ["ok", "ok"] + ["refused"] * (THREADS - 2)
    assert paid == Decimal("80.00")
    assert order.status == Order.Status.PENDING
    assert fired == []

    # Now race to pay the remaining 20.00: exactly one wins, the worker sends order_paid once.
    def finisher() -> object:
        return PaymentService.record_manual(Order.objects.get(pk=order.pk), amount=Decimal("20.00"))

    order_paid.connect(receiver)
    try:
        outcomes = [outcome(r) for r in run_at_once([finisher] * THREADS)]
        run_db_worker()
    finally:
        order_paid.disconnect(receiver)

    order.refresh_from_db()
    total_paid = Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED).aggregate(
        s=Sum("amount")
    )["s"]
    assert outcomes.count("ok") == 1
    assert total_paid == Decimal("100.00")
    assert order.status == Order.Status.PAID
    assert fired == [order.pk]
