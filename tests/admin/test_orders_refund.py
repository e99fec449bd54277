"""The order page's Refund button and dialog: who sees it, what it offers, what it does."""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from backoffice.models import Order, OrderHistoryEntry, Payment, Refund
from backoffice.services.payment import PaymentService
from tests.admin.form_html import field_block, top_errors
from tests.ledger_factories import make_staff
from tests.stripe_fixtures import pay_by_card

pytestmark = pytest.mark.django_db
NBSP = "\u00a0"


def change_url(order: Order) -> str:
    return reverse("admin:backoffice_order_change", args=[order.pk])


def refund_url(order: Order) -> str:
    return reverse("admin:backoffice_order_refund", args=[order.pk])


def page(client: Client, url: str) -> str:
    """The page's HTML with non-breaking spaces made plain."""
    return client.get(url, headers={"HX-Request": "true"}).content.decode().replace(NBSP, " ")


def refund_form(payment: Payment, amount: str, **fields: str) -> dict[str, str]:
    """POST data of the refund dialog."""
    return {
        "_form_submitted": "True",
        "payment": str(payment.pk),
        "amount": amount,
        "reason": fields.pop("reason", Refund.Reason.REQUESTED_BY_CUSTOMER),
        **fields,
    }


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def cash_order(make_order, staff_user) -> Order:
    """A 100.00 order paid 60.00 in cash and 40.00 by bank transfer."""
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("60.00"), staff_user=staff_user)
    PaymentService.record_manual(order, amount=Decimal("40.00"), staff_user=staff_user)
    return order


def test_the_refund_button_shows_for_finance_on_an_order_holding_money(
    finance_client, cash_order, make_order
):
    assert refund_url(cash_order) in page(finance_client, change_url(cash_order))
    unpaid = make_order("100.00")
    assert refund_url(unpaid) not in page(finance_client, change_url(unpaid))


def test_the_desk_neither_sees_nor_may_post_a_refund(cash_order):
    desk = make_staff("desk", "backoffice.view_order", "backoffice.record_manual_payment")
    client = Client()
    client.force_login(desk)
    payment = cash_order.payments.first()

    assert refund_url(cash_order) not in page(client, change_url(cash_order))
    assert client.post(refund_url(cash_order), refund_form(payment, "10.00")).status_code == 403
    assert not Refund.objects.exists()


def test_refund_permission_without_the_view_permission_is_refused(cash_order):
    blind = make_staff("blind", "backoffice.refund_payment")
    client = Client()
    client.force_login(blind)
    payment = cash_order.payments.first()

    assert client.get(refund_url(cash_order)).status_code == 403
    assert client.post(refund_url(cash_order), refund_form(payment, "10.00")).status_code == 403
    assert not Refund.objects.exists()


def test_the_dialog_lists_refundable_payments_and_prefills_the_rest(finance_client, cash_order):
    first, second = cash_order.payments.order_by("created_at", "id")
    PaymentService.refund(first, amount="15.00", reason=Refund.Reason.OTHER)

    html = page(finance_client, refund_url(cash_order))

    assert "Manual" in html
    assert "60.00 USD (45.00 USD left to refund)" in html
    assert "40.00 USD (40.00 USD left to refund)" in html
    assert 'value="45.00"' in html  # the first payment's rest
    assert 'name="channel"' in html  # manual payments: how the money went back
    assert 'name="reason"' in html


def test_a_manual_refund_from_the_dialog(finance_client, finance_user, cash_order):
    payment = cash_order.payments.order_by("created_at", "id").first()

    response = finance_client.post(
        refund_url(cash_order),
        refund_form(payment, "20.00", channel=Payment.Channel.CASH, note="At the desk"),
    )

    assert response.status_code == 302
    assert response["Location"] == change_url(cash_order)
    assert messages_of(response) == [
        f"Refunded 20.00 USD on {cash_order.reference}; the order is now partially refunded."
    ]
    refund = Refund.objects.get()
    assert (refund.payment, refund.amount, refund.channel, refund.note) == (
        payment,
        Decimal("20.00"),
        Payment.Channel.CASH,
        "At the desk",
    )
    assert refund.created_by == finance_user
    [log] = LogEntry.objects.filter(object_id=str(cash_order.pk))
    assert log.user == finance_user
    assert log.change_message == "Refunded 20.00 USD (requested by customer)."
    entry = OrderHistoryEntry.objects.filter(order=cash_order).order_by("id").last()
    assert (entry.action, entry.actor) == (OrderHistoryEntry.Action.REFUND, finance_user)
    html = page(finance_client, change_url(cash_order))
    assert "Refund of 20.00 USD" in html  # the timeline
    assert "−20.00 USD" in html  # under the payment, in its history
    assert "Requested by customer · Cash" in html


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("60.01", "more than the 60.00 USD left to refund"),
        ("0", "The refund amount must be greater than zero."),
        ("10.001", "at most 2 decimal places"),
        ("abc", "Enter a number."),
    ],
)
def test_refusals_are_shown_on_the_form_and_nothing_is_saved(
    finance_client, cash_order, amount, error
):
    payment = cash_order.payments.order_by("created_at", "id").first()

    response = finance_client.post(refund_url(cash_order), refund_form(payment, amount))

    assert response.status_code == 200
    assert error in response.content.decode().replace(NBSP, " ")
    assert not Refund.objects.exists()
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize(
    "amount", ["60.01", "0", "10.001"], ids=["above-the-rest", "zero", "too-precise"]
)
def test_a_refused_amount_is_shown_on_the_amount_field(finance_client, cash_order, amount):
    payment = cash_order.payments.order_by("created_at", "id").first()

    response = finance_client.post(refund_url(cash_order), refund_form(payment, amount))

    html = response.content.decode().replace(NBSP, " ")
    assert 'aria-invalid="true"' in field_block(html, "amount")
    assert top_errors(html) == []
    assert not Refund.objects.exists()


def test_a_payment_of_another_order_is_refused_on_the_form(finance_client, cash_order, make_order):
    other = make_order("10.00")
    elsewhere = PaymentService.record_manual(other, amount=Decimal("10.00"))

    response = finance_client.post(refund_url(cash_order), refund_form(elsewhere, "5.00"))

    assert response.status_code == 200
    assert not Refund.objects.exists()


def test_a_card_refund_from_the_dialog_goes_through_stripe(
    finance_client, stripe_conference, make_order, localstripe
):
    order = make_order("100.00", conference=stripe_conference)
    payment = pay_by_card(order, localstripe)

    dialog = page(finance_client, refund_url(order))
    response = finance_client.post(refund_url(order), refund_form(payment, "25.00"))

    assert 'name="channel"' not in dialog  # a card refund goes back to the card
    assert response.status_code == 302
    refund = Refund.objects.get()
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.stripe_refund_id.startswith("re_")
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED
