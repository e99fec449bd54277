"""Record manual payment in the admin: the channel the clerk chooses, and a form recorded once.

Each form carries a one-time key made when it is shown: the same form posted
again (a double click, a browser resubmit, the dialog's request sent twice)
records one payment; a form opened afresh records another.
"""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import INFO, SUCCESS, get_messages
from django.urls import reverse
from django.utils import timezone

from backoffice.models import Order, OrderHistoryEntry, Payment
from tests.admin.form_html import field_block, top_errors
from tests.admin.test_orders import CHANGELIST, NBSP, change_url, manual_form, record_manual_url

pytestmark = pytest.mark.django_db

KEY_INPUT = re.compile(r'<input type="hidden" name="idempotency_key" value="([^"]*)"')


def messages_of(response) -> list[tuple[int, str]]:
    """The (level, text) of the messages the response leaves for the next page."""
    return [(m.level, str(m)) for m in get_messages(response.wsgi_request)]


def opened_form_key(html: str) -> str:
    """The one-time key of the form a page shows."""
    [key] = KEY_INPUT.findall(html)
    return key


def select_one(order: Order) -> dict:
    """POST data choosing the list action for one order."""
    return {"action": "record_manual_selected", "_selected_action": [order.pk]}


def test_the_dialog_asks_for_the_channel_with_nothing_chosen(desk_client, make_order):
    order = make_order("100.00")

    html = desk_client.get(record_manual_url(order), headers={"HX-Request": "true"}).content
    html = html.decode()

    select = re.search(r'<select name="channel"[^>]*>(.*?)</select>', html, re.S)
    assert select is not None
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select.group(1))
    assert [(value, label) for value, _selected, label in options] == [
        ("", "Choose how it was paid…"),
        ("cash", "Cash"),
        ("bank_transfer", "Bank transfer"),
        ("cheque", "Cheque"),
        ("card_terminal", "Card terminal"),
        ("other", "Other"),
    ]
    assert [value for value, selected, _label in options if selected] == [""]


def test_each_opened_form_has_its_own_one_time_key(desk_client, make_order):
    order = make_order("100.00")

    keys = [
        opened_form_key(desk_client.get(record_manual_url(order)).content.decode())
        for _ in range(2)
    ]

    assert keys[0] != keys[1]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", key) for key in keys)


def test_a_payment_without_a_channel_is_a_readable_form_error(desk_client, make_order):
    order = make_order("100.00")

    response = desk_client.post(record_manual_url(order), manual_form("40.00", channel=""))

    html = response.content.decode()
    assert response.status_code == 200
    assert (
        "Choose how the money was paid: cash, bank transfer, cheque, card terminal or other."
        in html
    )
    assert not order.payments.exists()


def test_the_channel_is_stored(desk_client, make_order):
    order = make_order("100.00")

    desk_client.post(record_manual_url(order), manual_form("40.00", channel="cheque"))

    assert order.payments.get().channel == Payment.Channel.CHEQUE


def test_the_same_form_posted_twice_records_one_payment_and_says_so(
    desk_client, desk_user, make_order
):
    order = make_order("100.00")
    form = manual_form("40.00", "WIRE-1", channel="bank_transfer")

    first = desk_client.post(record_manual_url(order), form, follow=True)  # shows its message
    second = desk_client.post(record_manual_url(order), form, headers={"HX-Request": "true"})

    assert first.redirect_chain == [(change_url(order), 302)]
    assert second.status_code == 200
    assert second["HX-Redirect"] == change_url(order)  # the dialog closes on the order page
    assert messages_of(first) == [
        (SUCCESS, f"Recorded 40.00 USD on {order.reference}; balance due: 60.00 USD.")
    ]
    [(level, text)] = messages_of(second)
    assert level == INFO
    assert text == (
        f"40.00 USD (Bank transfer) on {order.reference} was already recorded from this form; "
        "it was not recorded twice."
    )
    payment = order.payments.get()
    assert (payment.amount, payment.created_by) == (Decimal("40.00"), desk_user)
    assert OrderHistoryEntry.objects.filter(order=order).count() == 1
    assert LogEntry.objects.filter(object_id=str(order.pk)).count() == 1


def test_the_same_form_paying_in_full_posted_twice_is_no_refusal(desk_client, make_order):
    """The second post finds the order paid: still the friendly answer, not "not pending"."""
    order = make_order("100.00")
    form = manual_form("100.00", channel="cash")

    desk_client.post(record_manual_url(order), form, follow=True)
    second = desk_client.post(record_manual_url(order), form)

    assert second.status_code == 302
    assert [level for level, _text in messages_of(second)] == [INFO]
    assert order.payments.count() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_two_freshly_opened_forms_of_the_same_amount_are_two_payments(desk_client, make_order):
    order = make_order("100.00")

    for _ in range(2):
        key = opened_form_key(desk_client.get(record_manual_url(order)).content.decode())
        response = desk_client.post(
            record_manual_url(order), manual_form("40.00", "R-1", channel="cash", key=key)
        )
        assert response.status_code == 302

    assert list(order.payments.values_list("amount", flat=True)) == [Decimal("40.00")] * 2
    order.refresh_from_db()
    assert order.balance_due == Decimal("20.00")


def test_the_form_posted_again_with_another_amount_is_refused_on_the_form(desk_client, make_order):
    order = make_order("100.00")
    key = opened_form_key(desk_client.get(record_manual_url(order)).content.decode())
    desk_client.post(record_manual_url(order), manual_form("40.00", channel="cash", key=key))

    response = desk_client.post(
        record_manual_url(order), manual_form("50.00", channel="cash", key=key)
    )

    assert response.status_code == 200
    assert (
        f"This form was already used to record 40.00 USD (Cash) on {order.reference}"
        in response.content.decode().replace(NBSP, " ")
    )
    assert order.payments.count() == 1


@pytest.mark.parametrize(
    "key",
    ["", "short", "a" * 65, "a" * 31 + "'", "a" * 31 + "=", "é" * 32, "a b" * 11],
)
def test_a_missing_or_forged_key_is_refused(desk_client, make_order, key):
    order = make_order("100.00")
    form = manual_form("40.00", channel="cash") | {"idempotency_key": key}

    response = desk_client.post(record_manual_url(order), form)

    assert response.status_code == 200
    assert "This form is incomplete or was altered" in response.content.decode()
    assert not order.payments.exists()


def test_from_the_list_the_same_form_posted_twice_records_one_payment(desk_client, make_order):
    order = make_order("80.00")
    page = desk_client.post(reverse(CHANGELIST), select_one(order))
    html = page.content.decode()
    assert '<select name="channel"' in html
    form = select_one(order) | manual_form(
        "30.00", "CASH-9", channel="cash", key=opened_form_key(html)
    )

    first = desk_client.post(reverse(CHANGELIST), form, follow=True)
    second = desk_client.post(reverse(CHANGELIST), form)

    assert first.redirect_chain == [(change_url(order), 302)]
    assert second.status_code == 302
    assert second["Location"] == change_url(order)
    assert [level for level, _text in messages_of(second)] == [INFO]
    payment = order.payments.get()
    assert (payment.amount, payment.channel) == (Decimal("30.00"), Payment.Channel.CASH)


def test_from_the_list_a_payment_without_a_channel_is_a_form_error(desk_client, make_order):
    order = make_order("80.00")

    response = desk_client.post(
        reverse(CHANGELIST), select_one(order) | manual_form("30.00", channel="")
    )

    assert response.status_code == 200
    assert "Choose how the money was paid" in response.content.decode()
    assert not order.payments.exists()


def test_from_the_list_two_fresh_forms_are_two_payments(desk_client, make_order):
    order = make_order("80.00")

    for _ in range(2):
        html = desk_client.post(reverse(CHANGELIST), select_one(order)).content.decode()
        form = manual_form("30.00", channel="cash", key=opened_form_key(html))
        assert desk_client.post(reverse(CHANGELIST), select_one(order) | form).status_code == 302

    assert order.payments.count() == 2


LAST_CHANGE = re.compile(r">Last change</label>.*?<div class=\"readonly[^\"]*\">(.*?)</div>", re.S)


def last_change_shown(client, order: Order) -> str:
    """The order page's "Last change" value, as the clerk reads it."""
    [shown] = LAST_CHANGE.findall(client.get(change_url(order)).content.decode())
    return re.sub(r"<[^>]+>", "", shown).strip()


def test_recording_a_manual_payment_moves_the_orders_last_change(desk_client, make_order):
    order = make_order("100.00")
    two_days_ago = timezone.now() - timedelta(days=2)
    Order.objects.filter(pk=order.pk).update(updated_at=two_days_ago)
    before = last_change_shown(desk_client, order)

    desk_client.post(record_manual_url(order), manual_form("40.00"))

    order.refresh_from_db()
    assert order.updated_at > two_days_ago + timedelta(days=1)
    assert last_change_shown(desk_client, order) != before


def test_an_amount_above_the_balance_is_shown_on_the_amount_field(desk_client, make_order):
    order = make_order("100.00")

    response = desk_client.post(record_manual_url(order), manual_form("500.00"))

    html = response.content.decode().replace(NBSP, " ")
    assert response.status_code == 200
    refusal = "The amount 500.00 USD is more than the balance due of 100.00 USD."
    assert refusal in field_block(html, "amount")
    assert 'aria-invalid="true"' in field_block(html, "amount")
    assert refusal not in field_block(html, "channel")
    assert top_errors(html) == []
    assert not order.payments.exists()


@pytest.mark.parametrize(
    ("amount", "refusal"),
    [
        ("0", "The payment amount must be greater than zero."),
        ("10.005", "USD amounts have at most 2 decimal places."),
    ],
)
def test_an_amount_the_service_refuses_is_shown_on_the_amount_field(
    desk_client, make_order, amount, refusal
):
    order = make_order("100.00")

    response = desk_client.post(record_manual_url(order), manual_form(amount))

    html = response.content.decode()
    assert refusal in field_block(html, "amount")
    assert top_errors(html) == []
    assert not order.payments.exists()


def test_a_refusal_about_the_whole_form_stays_above_the_fields(desk_client, make_order):
    order = make_order("100.00")
    key = opened_form_key(desk_client.get(record_manual_url(order)).content.decode())
    desk_client.post(record_manual_url(order), manual_form("40.00", key=key))

    response = desk_client.post(record_manual_url(order), manual_form("50.00", key=key))

    html = response.content.decode().replace(NBSP, " ")
    [banner] = top_errors(html)
    assert f"This form was already used to record 40.00 USD (Cash) on {order.reference}" in banner
    assert "already used" not in field_block(html, "amount")


def test_from_the_list_an_amount_above_the_balance_is_shown_on_the_amount_field(
    desk_client, make_order
):
    order = make_order("100.00")

    response = desk_client.post(reverse(CHANGELIST), select_one(order) | manual_form("500.00"))

    html = response.content.decode().replace(NBSP, " ")
    assert "is more than the balance due of 100.00 USD" in field_block(html, "amount")
    assert top_errors(html) == []
    assert not order.payments.exists()
