"""Property-based: any text typed as a manual payment amount is refused cleanly or kept exact.

Through ``PaymentService.record_manual`` and through the admin's "Record
manual payment" dialog as logged-in desk staff: never a 500, nothing stored
from a refused amount, and after an accepted one the ledger holds: payments
never exceed the total, the order is PAID exactly when nothing is due, and
amounts have the currency's precision. Each example is rolled back.
"""

from decimal import Decimal, InvalidOperation

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from backoffice.admin.forms import new_form_key
from backoffice.models import Order, Payment
from backoffice.money import has_valid_precision
from backoffice.services.payment import PaymentService, net_received
from tests.hostile.invariants import assert_ledger_invariants, ledger_rows, rolled_back
from tests.ledger_factories import make_staff

pytestmark = pytest.mark.django_db

PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

AMOUNTS = st.one_of(
    st.text(max_size=16),
    st.text(alphabet="0123456789.,-+eE _", max_size=14),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats().map(repr),
    st.builds("{}.{:02d}".format, st.integers(0, 120), st.integers(0, 99)),
    st.sampled_from(
        [
            "1e3",
            "1E-2",
            "1e-2",
            "0E+3",
            "١٢",
            "１２",
            "۱۲.۵۰",
            "-0",
            "-0.00",
            "0",
            "NaN",
            "-NaN",
            "sNaN",
            "Infinity",
            "-Infinity",
            " 12 ",
            "\t40.00\n",
            "1,000",
            "12,50",
            "1_000",
            "12\u0000",
            "9" * 40,
            "1e999999999",
            "1e-999999999",
            "100.00",
            "99.99",
            "0.01",
            "5000",
        ]
    ),
)


@pytest.fixture
def orders(make_order, jpy_conference) -> list[Order]:
    """A pending USD order of 100.00 and a pending JPY order of 5000."""
    return [make_order("100.00"), make_order("5000", conference=jpy_conference)]


def acceptable(text: str, order: Order) -> Decimal | None:
    """The amount a clerk meant when it may be recorded on the order, else None (the oracle)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0 or value > order.total - net_received(order):
        return None
    return value if has_valid_precision(value, order.currency) else None


def assert_manual_ledger(order: Order) -> None:
    """The invariants, plus those of a ledger written only at the desk (no overpayment)."""
    assert_ledger_invariants()
    order.refresh_from_db()
    held = net_received(order)
    assert held <= order.total
    assert (order.status == Order.Status.PAID) == (held == order.total)


@PROPERTY_SETTINGS
@given(amounts=st.lists(AMOUNTS, min_size=1, max_size=3), which=st.sampled_from([0, 1]))
def test_record_manual_refuses_or_records_exactly(orders, amounts, which):
    order = orders[which]
    with rolled_back():
        for text in amounts:
            expected = acceptable(text, order)
            before = ledger_rows()
            try:
                payment = PaymentService.record_manual(
                    order, amount=text, channel=Payment.Channel.CASH
                )
            except ValidationError as exc:
                event("refused")
                assert expected is None, f"{text!r} was refused: {exc.messages}"
                assert all(message.strip() for message in exc.messages)
                assert ledger_rows() == before
            else:
                event("recorded")
                assert expected is not None, f"{text!r} was recorded as {payment.amount}"
                payment.refresh_from_db()
                assert (payment.amount, payment.channel) == (expected, Payment.Channel.CASH)
            assert_manual_ledger(order)


@pytest.fixture
def desk_client(client):
    """A client logged in as desk staff who may view orders and record payments."""
    client.force_login(
        make_staff("desk", "backoffice.view_order", "backoffice.record_manual_payment")
    )
    return client


def dialog_form(amount: str) -> dict[str, str]:
    """The dialog's POST data as a freshly opened form sends it: a channel and a one-time key."""
    return {
        "_form_submitted": "True",
        "amount": amount,
        "channel": "cash",
        "idempotency_key": new_form_key(),
    }


@PROPERTY_SETTINGS
@given(text=AMOUNTS, which=st.sampled_from([0, 1]))
def test_record_manual_dialog_answers_a_form_error_or_records_exactly(
    desk_client, orders, text, which
):
    order = orders[which]
    url = reverse("admin:backoffice_order_record_manual", args=[order.pk])
    with rolled_back():
        expected = acceptable(text, order)
        before = ledger_rows()

        response = desk_client.post(url, dialog_form(text))

        event(f"status {response.status_code}")
        assert response.status_code in (200, 302)
        if response.status_code == 200:
            assert ledger_rows() == before
            html = response.content.decode()
            assert 'aria-invalid="true"' in html or "errornote" in html  # an error is shown
        else:
            assert expected is not None, f"{text!r} was recorded"
            payment = order.payments.get()
            assert (payment.amount, payment.channel) == (expected, Payment.Channel.CASH)
        assert_manual_ledger(order)


def test_the_dialog_records_a_valid_amount(desk_client, orders):
    """The property's baseline: a plain valid amount is recorded (a 302 back to the order)."""
    order = orders[0]
    url = reverse("admin:backoffice_order_record_manual", args=[order.pk])

    response = desk_client.post(url, dialog_form("100.00"))

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
