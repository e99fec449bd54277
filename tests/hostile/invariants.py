"""What every hostile-input property checks: ledger rows, invariants, a rolled-back example."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from django.db.models import Sum

from backoffice.models import Order, Payment, Refund
from backoffice.money import has_valid_precision
from backoffice.services.ledger_totals_check import find_differences
from backoffice.services.payment import net_received


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run one example in a savepoint that is always rolled back, so examples are independent."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def ledger_rows() -> tuple[list, list]:
    """Every payment and order field that money or status lives in, to compare before/after."""
    payments = Payment.objects.order_by("pk").values_list(
        "pk",
        "order_id",
        "status",
        "amount",
        "refunded_amount",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "note",
    )
    orders = Order.objects.order_by("pk").values_list(
        "pk", "status", "needs_attention", "attention_reason", "payment_token"
    )
    return list(payments), list(orders)


def assert_ledger_invariants() -> None:
    """What holds after any input: amounts in the currency's precision, statuses from money.

    A payment's refunded amount is the sum of its succeeded refunds.

    A pending order holds less than its total, a paid one at least its total, an
    overpaid one is flagged for staff, no Stripe payment is counted twice, and
    the dashboard's maintained totals match the ledger.
    """
    for order in Order.objects.select_related("conference"):
        held = net_received(order)
        for payment in order.payments.all():
            assert payment.amount >= 0 and 0 <= payment.refunded_amount <= payment.amount
            succeeded = payment.refunds.filter(status=Refund.Status.SUCCEEDED)
            assert payment.refunded_amount == (succeeded.aggregate(s=Sum("amount"))["s"] or 0)
            assert has_valid_precision(payment.amount, order.currency), payment.amount
        if order.status == Order.Status.PENDING:
            assert held < order.total
        if order.status == Order.Status.PAID:
            assert held >= order.total
        if held > order.total:
            assert order.needs_attention
    taken = Payment.objects.filter(
        status__in=(Payment.Status.SUCCEEDED, Payment.Status.REFUNDED)
    ).exclude(stripe_payment_intent_id="")
    intents = list(taken.values_list("stripe_payment_intent_id", flat=True))
    assert len(intents) == len(set(intents))
    # The dashboard's maintained totals equal a full recomputation from the ledger.
    assert find_differences() == []
