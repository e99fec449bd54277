"""Streaming CSV: same bytes as the library's export, lazily produced; payment selection."""

import csv
import datetime
import io
from decimal import Decimal

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from import_export.formats import base_formats

from backoffice.exports import OrderResource, PaymentResource
from backoffice.models import Dispute, Order, Payment, Refund
from backoffice.services import exports
from backoffice.services.dashboard import revenue_by_conference_and_method
from backoffice.services.exports import (
    BOM,
    local_day_range,
    payments_for_export,
    stream_csv,
)
from backoffice.services.payment import apply_stripe_dispute
from backoffice.stripe_client import parse_dispute
from tests.ledger_factories import make_payment, make_refund
from tests.stripe_fixtures import dispute_object

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
    """Payments and refunds whose text cells exercise quoting, escaping and encodings.

    Rows are inserted directly (statuses the services never mix on one order);
    refunds too, with make_refund: PaymentService.refund comes with issue10-core.
    """
    attendee.first_name = "Zoë"
    attendee.save()
    # Recorders named every way user_name and its SQL twin must agree on.
    User = get_user_model()  # noqa: N806
    recorders = [
        None,
        staff_user,
        User.objects.create_user(username="dana", first_name="Dana", last_name="Desk"),
        User.objects.create_user(username="first", first_name="Zoë ", last_name=""),
        User.objects.create_user(username="last", first_name="", last_name=" =Formula"),
        User.objects.create_user(username="spaces", first_name=" ", last_name=" "),
    ]
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
            created_by=recorders[index % len(recorders)],
            stripe_payment_intent_id=f"pi_{index}" if index % 3 == 0 else "",
            stripe_charge_id=text[:5],
            created_at=base + datetime.timedelta(hours=index),
        )
    jpy = make_payment(orders[-1], "5000", channel=Payment.Channel.CHEQUE, created_at=base)
    usd = make_payment(orders[0], "90.00", channel=Payment.Channel.CASH, created_at=base)
    for index, text in enumerate(TRICKY_TEXT):
        make_refund(
            jpy if index % 2 else usd,
            "100" if index % 2 else "1.25",
            status=list(Refund.Status)[index % 4],
            reason=list(Refund.Reason)[index % 5],
            channel=list(Payment.Channel)[index % 5] if index % 3 else "",
            note=text,
            stripe_refund_id=f"re_{index}{text[:3]}" if index % 3 == 0 else "",
            created_by=recorders[(index + 1) % len(recorders)],
            # Pairs share a moment: the refund id breaks the tie on both paths.
            created_at=base + datetime.timedelta(minutes=index // 2),
        )
    # Lost disputes follow the refunds (by when they were lost, then id); open ones are
    # not money out and have no row. Inserted directly: the reasons are hostile text.
    for index, text in enumerate(TRICKY_TEXT[:6]):
        Dispute.objects.create(
            payment=usd,
            stripe_dispute_id=f"dp_{index}{text[:3]}",
            amount=Decimal("1.50"),
            status=Dispute.Status.LOST if index % 3 else Dispute.Status.UNDER_REVIEW,
            reason=text,
            created_at=base,
            closed_at=base + datetime.timedelta(minutes=index // 2),
        )
    return orders


def test_stream_starts_with_bom_and_header(tricky_ledger):
    chunks = stream_csv(PaymentResource(), Payment.objects.all())
    first = next(chunks)
    assert first.startswith(BOM + b"Payment ID,Created at,Time zone,Order reference,")
    assert first.endswith(
        b"Channel,Refund ID,Refund reason,Stripe refund ID,Stripe dispute ID,Dispute reason\r\n"
    )


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
def test_streamed_payments_equal_the_library_export_byte_for_byte(tricky_ledger, zone):
    with override_settings(TIME_ZONE=zone):
        queryset = Payment.objects.order_by("-created_at", "-id")
        streamed = b"".join(stream_csv(PaymentResource(), queryset, chunk_rows=5))
        expected = library_csv(PaymentResource(), queryset)
    assert streamed.count(b"\r\n") >= 2 * len(TRICKY_TEXT) + 3
    assert b",-1.25,USD," in streamed and b",-100,JPY," in streamed
    assert streamed.count(b",Dispute lost,-1.50,USD,") == 4
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


@pytest.mark.postgres
def test_the_stream_puts_the_session_settings_back(make_order):
    """The export runs with the site's zone and without JIT; the caller's session keeps its own."""
    if connection.vendor != "postgresql":
        pytest.skip("session settings of the COPY path (PostgreSQL)")
    make_payment(make_order("10.00"), "10.00")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('TimeZone'), current_setting('jit')")
        before = cursor.fetchone()
        b"".join(stream_csv(PaymentResource(), Payment.objects.all()))
        cursor.execute("SELECT current_setting('TimeZone'), current_setting('jit')")
        assert cursor.fetchone() == before


@pytest.mark.postgres
def test_a_failing_copy_raises_its_own_error_and_the_settings_come_back(make_order):
    """A COPY that fails shows why (not "transaction is aborted"); the rollback restores."""
    if connection.vendor != "postgresql":
        pytest.skip("session settings of the COPY path (PostgreSQL)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('TimeZone'), current_setting('jit')")
        before = cursor.fetchone()
        rows = exports.copy_rows(Payment.objects.all(), "COPY (SELECT 1 / 0) TO STDOUT", ())
        with pytest.raises(psycopg.errors.DivisionByZero):
            list(rows)
        cursor.execute("SELECT current_setting('TimeZone'), current_setting('jit')")
        assert cursor.fetchone() == before


def amounts_collected(content: bytes) -> Decimal:
    """Sum of the Amount column over rows whose Status is Succeeded, Refunded or Dispute lost."""
    rows = csv.DictReader(io.StringIO(content[len(BOM) :].decode(), newline=""))
    counted = ("Succeeded", "Refunded", "Dispute lost")
    return sum(
        (Decimal(row["Amount"]) for row in rows if row["Status"] in counted), Decimal("0.00")
    )


def test_export_amounts_sum_to_the_dashboards_net_collected(
    make_order, jpy_conference, staff_user, tmp_path
):
    """A conference's export, all three paths, sums to the dashboard's net collected.

    Refunds are built with make_refund (PaymentService.refund comes with
    issue10-core), which keeps refunded_amount equal to the succeeded refunds.
    """
    order = make_order("400.00")
    card = make_payment(
        order, "100.00", method=Payment.Method.STRIPE, stripe_payment_intent_id="pi_f"
    )
    make_refund(card, "100.00", stripe_refund_id="re_full")  # refunded in full: REFUNDED
    cash = make_payment(order, "150.00", channel=Payment.Channel.CASH, created_by=staff_user)
    make_refund(cash, "20.00", channel=Payment.Channel.CASH, created_by=staff_user)
    make_refund(cash, "5.00", reason=Refund.Reason.DUPLICATE)
    make_refund(cash, "7.00", status=Refund.Status.FAILED)  # no money moved
    make_refund(cash, "3.00", status=Refund.Status.PENDING)  # not yet
    make_payment(order, "50.00", channel=Payment.Channel.BANK_TRANSFER)
    make_payment(order, "80.00", method=Payment.Method.STRIPE, status=Payment.Status.FAILED)
    # Disputed card payments: one lost in part (money out like a refund), one won (not).
    for name, status in (("lost", "lost"), ("won", "won")):
        make_payment(
            order,
            "60.00",
            method=Payment.Method.STRIPE,
            stripe_payment_intent_id=f"pi_{name}",
            stripe_charge_id=f"ch_{name}",
        )
        dispute = dispute_object(f"pi_{name}", f"ch_{name}", 2501, status=status)
        apply_stripe_dispute(order.conference, parse_dispute(dispute))
    # Another conference's money stays out of this conference's export.
    make_refund(make_payment(make_order("5000", conference=jpy_conference), "5000"), "1000")

    net = sum(
        (row.net for row in revenue_by_conference_and_method() if row.conference == "PyCon Test"),
        Decimal("0.00"),
    )
    assert net == Decimal("269.99")  # 100 - 100 + 150 - 25 + 50 + 60 - 25.01 + 60
    queryset = payments_for_export(conference_slug="pycon-test")
    streamed = b"".join(stream_csv(PaymentResource(), queryset, chunk_rows=2))
    target = tmp_path / "payments.csv"
    call_command("export_payments", "--conference", "pycon-test", "--output", str(target))
    assert streamed == library_csv(PaymentResource(), queryset) == target.read_bytes()
    assert amounts_collected(streamed) == net
    # Whole export: 6 payment rows, 5 refund rows and 1 lost dispute, the failed attempt included.
    assert streamed.count(b"\r\n") == 1 + 6 + 5 + 1


@pytest.mark.parametrize(
    ("conference", "since", "until", "expected"),
    [
        ("PyCon 2026", "2026-10-01", "2026-10-31", "payments-pycon-2026-2026-10-01-to-2026-10-31"),
        ("", "2026-10-01", "2026-10-31", "payments-2026-10-01-to-2026-10-31"),
        ("pycon-2026", "2026-10-01", None, "payments-pycon-2026-from-2026-10-01"),
        ("", None, "2026-10-31", "payments-until-2026-10-31"),
        ("", None, None, "payments-2026-11-29"),
        ("пайкон", None, None, "payments-2026-11-29"),  # nothing of it fits a file name
    ],
)
def test_export_file_name_names_the_list_conference_and_days(conference, since, until, expected):
    name = exports.export_file_name(
        list_name="Payments",
        extension="csv",
        conference=conference,
        since=datetime.date.fromisoformat(since) if since else None,
        until=datetime.date.fromisoformat(until) if until else None,
        today=datetime.date(2026, 11, 29),
    )
    assert name == f"{expected}.csv"
