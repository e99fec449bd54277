"""Streaming CSV: same bytes as the library's export, lazily produced; payment selection."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from import_export.formats import base_formats

from backoffice.exports import OrderResource, PaymentResource
from backoffice.models import Order, Payment
from backoffice.services import exports
from backoffice.services.exports import (
    BOM,
    local_day_range,
    payments_for_export,
    stream_csv,
)
from tests.ledger_factories import make_payment

pytestmark = pytest.mark.django_db
UTC = datetime.UTC

TRICKY_TEXT = [
    "",
    "plain",
    "=1+1",
    "+33 1 23",
    "-minus",
    "@at",
    "\tTab",
    "\rCR",
    'quote " inside',
    "comma, inside",
    "line\nbreak",
    "crlf\r\ninside",
    " leading space",
    "trailing space ",
    "café € ¥ 日本",
    "\\.",
    "semi;colon",
    "'already quoted",
]


def library_csv(resource, queryset, selected_fields=None) -> bytes:
    """The bytes import-export's admin writes for a CSV export (BOM via utf-8-sig)."""
    dataset = resource.export(queryset=queryset, export_fields=selected_fields)
    return base_formats.CSV().export_data(dataset).encode("utf-8-sig")


@pytest.fixture
def tricky_ledger(make_order, jpy_conference, staff_user, attendee):
    """Payments whose text cells exercise quoting, escaping and encodings."""
    attendee.first_name = "Zoë"
    attendee.save()
    orders = [
        make_order("100.00", billing_name=TRICKY_TEXT[i % len(TRICKY_TEXT)], billing_email="")
        for i in range(4)
    ]
    orders.append(make_order("5000", conference=jpy_conference, billing_name=""))
    base = datetime.datetime(2026, 3, 29, 0, 30, 45, 987654, tzinfo=UTC)  # DST change in Europe
    for index, text in enumerate(TRICKY_TEXT):
        order = orders[index % len(orders)]
        make_payment(
            order,
            "5000" if order.conference == jpy_conference else f"{index + 1}.0{index % 10}",
            method=list(Payment.Method)[index % 3],
            status=list(Payment.Status)[index % 6],
            reference=text,
            note=TRICKY_TEXT[-1 - index],
            created_by=staff_user if index % 2 else None,
            stripe_payment_intent_id=f"pi_{index}" if index % 3 == 0 else "",
            stripe_charge_id=text[:5],
            created_at=base + datetime.timedelta(hours=index),
        )
    return orders


def test_stream_starts_with_bom_and_header(tricky_ledger):
    chunks = stream_csv(PaymentResource(), Payment.objects.all())
    first = next(chunks)
    assert first.startswith(BOM + b"Payment ID,Created at,Time zone,Order reference,")
    assert first.endswith(b"Stripe charge ID\r\n")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
def test_streamed_payments_equal_the_library_export_byte_for_byte(tricky_ledger, zone):
    with override_settings(TIME_ZONE=zone):
        queryset = Payment.objects.order_by("-created_at", "-id")
        streamed = b"".join(stream_csv(PaymentResource(), queryset, chunk_rows=5))
        expected = library_csv(PaymentResource(), queryset)
    assert streamed.count(b"\r\n") >= len(TRICKY_TEXT) + 1
    assert streamed == expected


def test_streamed_orders_equal_the_library_export_byte_for_byte(tricky_ledger):
    order = tricky_ledger[0]
    make_payment(order, "150.00")  # overpaid: balance due shows 0.00, never negative
    order.discount_amount = Decimal("3.50")
    order.save()
    queryset = Order.objects.order_by("-created_at", "-id")
    streamed = b"".join(stream_csv(OrderResource(), queryset, chunk_rows=2))
    assert streamed == library_csv(OrderResource(), queryset)
    assert b",0.00," in streamed


@pytest.mark.parametrize(
    "selected", [["note", "amount", "id"], ["stripe_charge_id"], ["recorded_by"]]
)
def test_selected_columns_stream_like_the_library(tricky_ledger, selected):
    queryset = Payment.objects.order_by("id")
    streamed = b"".join(stream_csv(PaymentResource(), queryset, selected_fields=selected))
    assert streamed == library_csv(PaymentResource(), queryset, selected)


def test_streaming_reads_rows_lazily(make_order, monkeypatch):
    """Counting rows pulled from the database: the first chunk arrives after one chunk's worth."""
    order = make_order("1000.00")
    Payment.objects.bulk_create(
        Payment(order=order, method=Payment.Method.MANUAL, amount=Decimal("1.00"))
        for _ in range(100)
    )
    pulled = {"rows": 0}
    if connection.vendor == "postgresql":
        original = exports.copy_rows

        def counting_copy_rows(*args, **kwargs):
            for row in original(*args, **kwargs):
                pulled["rows"] += 1
                yield row

        monkeypatch.setattr(exports, "copy_rows", counting_copy_rows)
    else:
        original = PaymentResource.export_resource

        def counting_export_resource(self, *args, **kwargs):
            pulled["rows"] += 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(PaymentResource, "export_resource", counting_export_resource)

    chunks = stream_csv(PaymentResource(), Payment.objects.all(), chunk_rows=10)
    next(chunks)  # header
    first = next(chunks)
    assert first.count(b"\r\n") == 10
    assert pulled["rows"] <= 11
    rest = list(chunks)
    assert pulled["rows"] == 100
    assert len(rest) == 9


def test_local_day_range_covers_whole_days_in_the_site_zone():
    with override_settings(TIME_ZONE="Europe/Paris"):
        start, end = local_day_range(datetime.date(2026, 10, 1), datetime.date(2026, 10, 31))
    assert start == datetime.datetime(2026, 9, 30, 22, 0, tzinfo=UTC)  # CEST
    assert end == datetime.datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # CET after the change
    assert local_day_range(None, None) == (None, None)


@override_settings(TIME_ZONE="Europe/Paris")
def test_payments_for_export_filters(make_order, jpy_conference):
    usd = make_order()
    jpy = make_order("5000", conference=jpy_conference)
    first_minute = make_payment(usd, created_at=datetime.datetime(2026, 9, 30, 22, 0, tzinfo=UTC))
    last_second = make_payment(
        usd, created_at=datetime.datetime(2026, 10, 31, 22, 59, 59, tzinfo=UTC)
    )
    make_payment(usd, created_at=datetime.datetime(2026, 9, 30, 21, 59, 59, tzinfo=UTC))
    make_payment(usd, created_at=datetime.datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
    failed = make_payment(
        jpy,
        "5000",
        method=Payment.Method.STRIPE,
        status=Payment.Status.FAILED,
        created_at=datetime.datetime(2026, 10, 15, tzinfo=UTC),
    )
    october = payments_for_export(
        since=datetime.date(2026, 10, 1), until=datetime.date(2026, 10, 31)
    )
    assert list(october) == [last_second, failed, first_minute]
    assert list(payments_for_export(conference_slug="pycon-jp")) == [failed]
    assert list(payments_for_export(method="stripe", status="failed")) == [failed]
    assert list(payments_for_export(status="succeeded", conference_slug="pycon-jp")) == []


def test_abandoned_stream_leaves_the_connection_usable(make_order):
    """A client that stops downloading half-way must not break the next query."""
    order = make_order("1000.00")
    Payment.objects.bulk_create(
        Payment(order=order, method=Payment.Method.MANUAL, amount=Decimal("1.00"))
        for _ in range(50)
    )
    chunks = stream_csv(PaymentResource(), Payment.objects.all(), chunk_rows=5)
    next(chunks)
    next(chunks)
    chunks.close()
    assert Payment.objects.count() == 50
    streamed = b"".join(stream_csv(PaymentResource(), Payment.objects.all(), chunk_rows=5))
    assert streamed.count(b"\r\n") == 51
