"""check_ledger_totals: every difference from the ledger reported, and repaired with --fix."""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from backoffice.models import LedgerTotal, Order, OrderTotal, Payment
from backoffice.services.dashboard import finance_summary
from tests.ledger_factories import make_payment

pytestmark = pytest.mark.django_db
D = Decimal
DAY = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)


def run(*args: str) -> str:
    """The command's output."""
    out = StringIO()
    call_command("check_ledger_totals", *args, stdout=out)
    return out.getvalue()


def test_totals_kept_by_the_ledger_match(make_order):
    make_payment(make_order("100.00"), "30.00", created_at=DAY)

    assert run() == "The totals match the ledger.\n"


def test_every_difference_is_reported_and_the_command_fails(make_order, jpy_conference):
    order = make_order("100.00")
    make_payment(order, "30.00", method=Payment.Method.STRIPE, created_at=DAY)
    make_order("5000", conference=jpy_conference)
    # Rows written behind the ledger's back (a bulk load, a manual SQL fix).
    Payment.objects.create(order=order, method="manual", status="succeeded", amount=D("5.00"))
    Order.objects.filter(pk=order.pk).update(total=D("90.00"))
    OrderTotal.objects.filter(conference=jpy_conference).delete()

    with pytest.raises(CommandError, match="3 total\\(s\\) differ"):
        run()

    lines = sorted(StringIO(run_quietly()).read().splitlines())
    today = timezone.localdate().isoformat()
    assert lines == sorted(
        [
            f"PyCon Test (USD) {today} manual: stored 0 payments, 0.00 USD collected, "
            "0.00 USD refunded; computed 1 payments, 5.00 USD collected, 0.00 USD refunded",
            "PyCon Test (USD) pending orders: stored 1 orders, 70.00 USD due; "
            "computed 1 orders, 55.00 USD due",
            "PyCon JP (JPY) pending orders: stored 0 orders, 0 JPY due; "
            "computed 1 orders, 5,000 JPY due",
        ]
    )


def run_quietly() -> str:
    """The report of a failing check (the output written before the error)."""
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("check_ledger_totals", stdout=out)
    return out.getvalue()


def test_fix_rewrites_the_totals_and_later_writes_add_to_them(make_order):
    order = make_order("100.00")
    make_payment(order, "30.00", created_at=DAY)
    before = finance_summary(today=DAY.date())
    LedgerTotal.objects.update(collected=D("999.00"), payments=7)
    OrderTotal.objects.all().delete()
    Payment.objects.update(counted_collected=None)  # the counted state drifted too

    out = run("--fix")

    assert "Rewrote the totals from the ledger; 2 differed." in out
    assert run() == "The totals match the ledger.\n"
    assert finance_summary(today=DAY.date()) == before
    make_payment(order, "20.00", created_at=DAY)  # counted once, on top of the repaired rows
    assert run() == "The totals match the ledger.\n"
    assert finance_summary().outstanding[0].balance == D("50.00")
