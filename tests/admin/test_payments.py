"""Payments ledger admin: read-only list, filters, search, permission-gated exports."""

import datetime
import io
from decimal import Decimal

import openpyxl
import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backoffice.models import Payment, Refund
from tests.ledger_factories import make_payment, make_refund, make_staff

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
LIST_URL = reverse("admin:backoffice_payment_changelist")
EXPORT_URL = reverse("admin:backoffice_payment_export")
CSV, XLSX = "0", "1"


@pytest.fixture
def finance(client):
    """A logged-in staff member who may view and export payments."""
    user = make_staff("finance", "backoffice.view_payment", "backoffice.export_payment")
    client.force_login(user)
    return client


def post_export(client, file_format: str, query: str = "", fields=None):
    """Submit the export form as the browser does, all columns ticked unless given."""
    names = fields or [
        "id", "created_at", "time_zone", "order_reference", "conference", "attendee_name",
        "attendee_email", "method", "status", "amount", "currency", "reference", "note",
        "recorded_by", "stripe_payment_intent_id", "stripe_charge_id", "channel", "refund_id",
        "refund_reason", "stripe_refund_id", "stripe_dispute_id", "dispute_reason",
    ]  # fmt: skip
    data = {"format": file_format, "resource": "0"}
    data.update({f"paymentresource_{name}": "on" for name in names})
    return client.post(f"{EXPORT_URL}{query}", data)


def body(response) -> bytes:
    """The response's bytes, streamed or not."""
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response.streaming_content)
    return response.content


def csv_rows(response) -> list[list[str]]:
    """Parse an exported CSV (after checking its BOM)."""
    import csv

    content = body(response)
    assert content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(content[3:].decode("utf-8"), newline="")))


def test_list_shows_the_ledger_columns(finance, make_order, staff_user):
    order = make_order("80.00")
    make_payment(order, "80.00", reference="CASH-7", created_by=staff_user)
    response = finance.get(LIST_URL)
    assert response.status_code == 200
    html = response.content.decode()
    for text in (order.reference, "ada@example.com", "PyCon Test", "Manual", "Succeeded",
                 "80.00", "USD", "CASH-7", "clerk"):  # fmt: skip
        assert text in html


def test_list_shows_dates_in_the_one_format_with_the_zone(finance, make_order, settings):
    settings.TIME_ZONE = "Europe/Paris"
    make_payment(make_order(), created_at=datetime.datetime(2026, 11, 29, 12, 30, tzinfo=UTC))
    html = finance.get(LIST_URL).content.decode()
    assert "29 Nov 2026, 13:30 CET" in html


def test_list_query_count_does_not_grow_with_rows(finance, make_order, staff_user):
    make_payment(make_order(), created_by=staff_user)
    with CaptureQueriesContext(connection) as few:
        finance.get(LIST_URL)
    for index in range(30):
        make_payment(
            make_order(billing_email=f"p{index}@example.com"),
            method=list(Payment.Method)[index % 3],
            created_by=staff_user if index % 2 else None,
        )
    with CaptureQueriesContext(connection) as many:
        response = finance.get(LIST_URL)
    assert response.content.decode().count(">p29@example.com<") == 1
    assert len(many) == len(few)


def test_nobody_can_add_change_or_delete_payments(client, make_order):
    payment = make_payment(make_order())
    client.force_login(make_staff("root", superuser=True))
    assert client.get(reverse("admin:backoffice_payment_add")).status_code == 403
    change = reverse("admin:backoffice_payment_change", args=[payment.pk])
    assert client.post(change, {"amount": "1.00"}).status_code in (302, 403)
    delete = reverse("admin:backoffice_payment_delete", args=[payment.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    payment.refresh_from_db()
    assert payment.amount == Decimal("10.00")
    assert Payment.objects.filter(pk=payment.pk).exists()


@override_settings(TIME_ZONE="Europe/Paris")
def test_date_filter_includes_whole_days_in_the_site_time_zone(finance, make_order):
    order = make_order()
    at = datetime.datetime
    inside = [
        make_payment(order, reference="first", created_at=at(2026, 9, 30, 22, 0, tzinfo=UTC)),
        make_payment(order, reference="last", created_at=at(2026, 10, 31, 22, 59, tzinfo=UTC)),
    ]
    make_payment(
        order, reference="before", created_at=datetime.datetime(2026, 9, 30, 21, 59, tzinfo=UTC)
    )
    make_payment(
        order, reference="after", created_at=datetime.datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    )
    query = "?created_at_from=2026-10-01&created_at_to=2026-10-31"
    response = finance.get(LIST_URL + query)
    assert [p.pk for p in response.context["cl"].result_list] == [p.pk for p in reversed(inside)]
    rows = csv_rows(post_export(finance, CSV, query))
    assert [row[11] for row in rows[1:]] == ["last", "first"]


def test_bad_date_in_filter_is_refused_not_ignored(finance, make_order):
    make_payment(make_order())
    response = finance.get(LIST_URL + "?created_at_from=not-a-date")
    assert response.status_code == 302
    assert "e=1" in response["Location"]


def test_filters_and_search_are_honoured_by_the_export(finance, make_order, jpy_conference):
    wanted = make_order("5000", conference=jpy_conference, billing_email="yuki@example.com")
    make_payment(wanted, "5000", method=Payment.Method.STRIPE, stripe_payment_intent_id="pi_yuki")
    make_payment(wanted, "5000", method=Payment.Method.MANUAL)
    make_payment(make_order(), method=Payment.Method.STRIPE, stripe_payment_intent_id="pi_other")
    query = f"?order__conference__id__exact={jpy_conference.pk}&method__exact=stripe"
    rows = csv_rows(post_export(finance, CSV, query))
    assert [(row[6], row[7], row[9], row[14]) for row in rows[1:]] == [
        ("yuki@example.com", "Stripe", "5000", "pi_yuki")
    ]
    searched = csv_rows(post_export(finance, CSV, "?q=yuki@example.com"))
    assert len(searched) == 3
    by_intent = csv_rows(post_export(finance, CSV, "?q=pi_other"))
    assert [row[14] for row in by_intent[1:]] == ["pi_other"]
    listed = finance.get(LIST_URL + f"?q={wanted.reference}")
    assert len(listed.context["cl"].result_list) == 2
    partial = finance.get(LIST_URL + "?q=uki@exam")  # free text: substring search
    assert len(partial.context["cl"].result_list) == 2


def test_csv_export_has_bom_header_and_escaped_cells(finance, make_order):
    make_payment(make_order(billing_name="Zoë Ça"), note="=HYPERLINK(1)")
    response = post_export(finance, CSV)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = csv_rows(response)
    assert rows[0][:3] == ["Payment ID", "Created at", "Time zone"]
    assert rows[1][5] == "Zoë Ça"
    assert rows[1][12] == "'=HYPERLINK(1)"


def test_xlsx_export_opens_with_numbers_and_dates(finance, make_order):
    make_payment(make_order("99.95", billing_name="#N/A"), "99.95", note="=HYPERLINK(1)")
    response = post_export(finance, XLSX)
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(body(response))).active
    header = [cell.value for cell in sheet[1]]
    row = dict(zip(header, sheet[2], strict=True))
    assert row["Amount"].data_type == "n" and row["Amount"].value == pytest.approx(99.95)
    assert row["Created at"].is_date
    # Text that looks like a formula (or an error) is a text cell, shown as typed.
    assert (row["Note"].value, row["Note"].data_type) == ("=HYPERLINK(1)", "s")
    assert (row["Attendee name"].value, row["Attendee name"].data_type) == ("#N/A", "s")


def test_export_needs_the_export_permission(client, make_order):
    make_payment(make_order())
    client.force_login(make_staff("viewer", "backoffice.view_payment"))
    listed = client.get(LIST_URL)
    assert listed.status_code == 200
    assert EXPORT_URL not in listed.content.decode()
    assert client.get(EXPORT_URL).status_code == 403
    refused = post_export(client, CSV)
    assert refused.status_code == 403
    assert "Content-Disposition" not in refused
    assert not body(refused).startswith(b"\xef\xbb\xbf")


def test_export_button_shown_with_permission(finance, make_order):
    make_payment(make_order())
    assert EXPORT_URL in finance.get(LIST_URL).content.decode()


def test_large_csv_export_streams_the_same_bytes(finance, make_order, settings):
    order = make_order("1000.00")
    for index in range(7):
        make_payment(order, f"{index + 1}.00", note=f"=n{index}", reference="a,b")
    in_memory = post_export(finance, CSV)
    assert not isinstance(in_memory, StreamingHttpResponse)
    settings.BACKOFFICE_STREAMING_EXPORT_THRESHOLD = 5
    streamed = post_export(finance, CSV)
    assert isinstance(streamed, StreamingHttpResponse)
    assert body(streamed) == body(in_memory)
    small = post_export(finance, CSV, "?q=nothing-matches")
    assert not isinstance(small, StreamingHttpResponse)
    xlsx = post_export(finance, XLSX)
    assert not isinstance(xlsx, StreamingHttpResponse)


@pytest.mark.parametrize("sort", ["", "?o=7", "?o=-7.2", "?o=2"])
def test_a_sorted_list_streams_payments_and_refunds_in_the_same_order(
    finance, make_order, settings, sort
):
    """Sorted by amount, status or order, each refund still follows its payment (both paths).

    Refunds are built with make_refund: PaymentService.refund comes with issue10-core.
    """
    for index in range(6):
        payment = make_payment(make_order("100.00"), f"{(index % 3) + 10}.00")
        if index % 2:
            make_refund(payment, "1.00", note=f"r{index}")
            make_refund(payment, "2.00", status=Refund.Status.PENDING)
    in_memory = post_export(finance, CSV, sort)
    settings.BACKOFFICE_STREAMING_EXPORT_THRESHOLD = 0
    streamed = post_export(finance, CSV, sort)
    assert isinstance(streamed, StreamingHttpResponse)
    assert body(streamed) == body(in_memory)
    rows = csv_rows(in_memory)[1:]  # the same bytes; a streamed body is read once
    assert len(rows) == 6 + 6
    for position, row in enumerate(rows):
        if row[17]:  # a refund row: right after its payment or its payment's other refund
            assert rows[position - 1][0] == row[0]


def test_streamed_export_honours_selected_columns(finance, make_order, settings):
    settings.BACKOFFICE_STREAMING_EXPORT_THRESHOLD = 0
    make_payment(make_order(), "12.00", note="hello")
    response = post_export(finance, CSV, fields=["note", "amount"])
    assert isinstance(response, StreamingHttpResponse)
    assert csv_rows(response) == [["Amount", "Note"], ["12.00", "hello"]]


@pytest.mark.parametrize("method", ["get", "post"])
def test_export_needs_the_view_permission_too(client, make_order, method):
    order = make_order("10.00", billing_email="secret.payer@example.com")
    make_payment(order, "10.00")
    client.force_login(make_staff("exporter", "backoffice.export_payment"))

    response = (
        client.get(EXPORT_URL) if method == "get" else post_export(client, CSV, fields=["amount"])
    )

    assert response.status_code == 403
    assert "Content-Disposition" not in response
    assert b"secret.payer@example.com" not in body(response)


def test_payments_list_shows_and_filters_the_channel(client, make_order):
    client.force_login(make_staff("ledger", "backoffice.view_payment"))
    order = make_order("100.00")
    cash = make_payment(order, "10.00", channel=Payment.Channel.CASH)
    make_payment(order, "20.00", channel=Payment.Channel.CHEQUE)
    url = reverse("admin:backoffice_payment_changelist")
    assert "Cheque" in client.get(url).content.decode()
    response = client.get(f"{url}?channel__exact=cash")
    assert [payment.pk for payment in response.context["cl"].result_list] == [cash.pk]


def test_list_links_a_card_payment_to_stripe_s_dashboard_by_the_conference_s_mode(
    finance, make_order, conference, jpy_conference
):
    jpy_conference.stripe_publishable_key = "pk_live_123"
    jpy_conference.save()
    make_payment(make_order(), method=Payment.Method.STRIPE, stripe_payment_intent_id="pi_testmode")
    make_payment(
        make_order("5000", conference=jpy_conference),
        "5000",
        method=Payment.Method.STRIPE,
        stripe_charge_id="ch_livemode",
    )

    html = finance.get(LIST_URL).content.decode()

    assert 'href="https://dashboard.stripe.com/test/payments/pi_testmode"' in html
    assert 'href="https://dashboard.stripe.com/payments/ch_livemode"' in html
    assert 'title="pi_testmode"' in html  # cut short in the column, whole in the tooltip


def test_list_shows_a_long_reference_whole_in_its_tooltip(finance, make_order):
    reference = "BANK-TRANSFER-2026-11-000123-FROM-ACME-CORPORATION"
    make_payment(make_order(), reference=reference)

    html = finance.get(LIST_URL).content.decode()

    assert f'<span class="cell-clip" title="{reference}">{reference}</span>' in html
