"""Resources: columns, cell values, time zones, formula escaping, XLSX types, order import."""

import datetime
import io
from decimal import Decimal

import openpyxl
import pytest
import tablib
from django.contrib.auth import get_user_model
from django.test import override_settings

from backoffice.exports import (
    FORMULA_TRIGGERS,
    OrderResource,
    PaymentResource,
    escape_formula,
    local_datetime,
)
from backoffice.models import Dispute, Order, OrderLineItem, Payment, Refund
from backoffice.services.payment import apply_stripe_dispute
from backoffice.spreadsheet import TextCellXLSX
from backoffice.stripe_client import parse_dispute
from tests.ledger_factories import make_payment, make_refund
from tests.stripe_fixtures import dispute_object

pytestmark = pytest.mark.django_db

PAYMENT_HEADERS = [
    "Payment ID",
    "Created at",
    "Time zone",
    "Order reference",
    "Conference",
    "Attendee name",
    "Attendee email",
    "Method",
    "Status",
    "Amount",
    "Currency",
    "Reference",
    "Note",
    "Recorded by",
    "Stripe payment intent ID",
    "Stripe charge ID",
    # Issue 10: refunds are rows of their own; these four follow the original sixteen.
    "Channel",
    "Refund ID",
    "Refund reason",
    "Stripe refund ID",
    # Issue 11: a lost dispute is a row of its own (money out like a refund).
    "Stripe dispute ID",
    "Dispute reason",
]
ORDER_HEADERS = [
    "Reference",
    "Conference",
    "Attendee",
    "Email",
    "Status",
    "Subtotal",
    "Discount",
    "Total",
    "Paid",
    "Balance due",
    "Created at",
]
UTC = datetime.UTC


def export_rows(resource, queryset, *, native=False) -> list[dict]:
    """Export through the library and return the rows as dicts."""
    dataset = resource.export(queryset=queryset, force_native_type=native)
    return [dict(zip(dataset.headers, row, strict=True)) for row in dataset]


def test_payment_columns_are_the_ledger_columns_in_order(make_order):
    make_payment(make_order())
    dataset = PaymentResource().export(queryset=Payment.objects.all())
    assert dataset.headers == PAYMENT_HEADERS


def test_order_columns_are_the_order_columns_in_order(make_order):
    make_order()
    dataset = OrderResource().export(queryset=Order.objects.all())
    assert dataset.headers == ORDER_HEADERS


@pytest.mark.parametrize("method", list(Payment.Method))
@pytest.mark.parametrize("status", list(Payment.Status))
def test_payment_row_values_for_every_method_and_status(make_order, staff_user, method, status):
    order = make_order("120.00", billing_name="Grace Hopper", billing_email="grace@example.com")
    payment = make_payment(
        order,
        "120.00",
        method=method,
        status=status,
        reference="WIRE-1",
        note="paid at the desk",
        created_by=staff_user,
        stripe_payment_intent_id=f"pi_{method}_{status}",
        stripe_charge_id="ch_1",
        created_at=datetime.datetime(2026, 10, 1, 9, 30, 15, 123456, tzinfo=UTC),
    )
    [row] = export_rows(PaymentResource(), Payment.objects.all())
    assert row == {
        "Payment ID": str(payment.pk),
        "Created at": "2026-10-01T09:30:15+00:00",
        "Time zone": "UTC",
        "Order reference": order.reference,
        "Conference": "PyCon Test",
        "Attendee name": "Grace Hopper",
        "Attendee email": "grace@example.com",
        "Method": method.label,
        "Status": status.label,
        "Amount": "120.00",
        "Currency": "USD",
        "Reference": "WIRE-1",
        "Note": "paid at the desk",
        "Recorded by": "clerk",
        "Stripe payment intent ID": f"pi_{method}_{status}",
        "Stripe charge ID": "ch_1",
        "Channel": "",
        "Refund ID": "",
        "Refund reason": "",
        "Stripe refund ID": "",
        "Stripe dispute ID": "",
        "Dispute reason": "",
    }


def test_refund_rows_follow_their_payment_with_negative_amounts(make_order, staff_user):
    """Refunds are built with make_refund: PaymentService.refund comes with issue10-core."""
    order = make_order("120.00", billing_name="Grace Hopper", billing_email="grace@example.com")
    at = datetime.datetime
    payment = make_payment(
        order,
        "120.00",
        method=Payment.Method.MANUAL,
        channel=Payment.Channel.CASH,
        reference="DESK-9",
        created_at=at(2026, 10, 1, 9, 0, tzinfo=UTC),
    )
    later = make_payment(order, "1.00", created_at=at(2026, 10, 3, 9, 0, tzinfo=UTC))
    second = make_refund(
        payment,
        "20.00",
        reason=Refund.Reason.EVENT_CANCELLED,
        channel=Payment.Channel.BANK_TRANSFER,
        note="workshop cancelled",
        created_by=staff_user,
        created_at=at(2026, 10, 2, 8, 0, tzinfo=UTC),
    )
    first = make_refund(
        payment,
        "5.00",
        status=Refund.Status.FAILED,
        reason=Refund.Reason.DUPLICATE,
        stripe_refund_id="re_1",
        created_at=at(2026, 10, 1, 18, 0, tzinfo=UTC),
    )
    rows = export_rows(PaymentResource(), Payment.objects.order_by("-created_at", "-id"))

    # Newest payment first; each payment's refunds right after it, oldest first.
    assert [(r["Payment ID"], r["Refund ID"]) for r in rows] == [
        (str(later.pk), ""),
        (str(payment.pk), ""),
        (str(payment.pk), str(first.pk)),
        (str(payment.pk), str(second.pk)),
    ]
    assert rows[1]["Channel"] == "Cash" and rows[1]["Amount"] == "120.00"
    assert rows[3] == {
        "Payment ID": str(payment.pk),
        "Created at": "2026-10-02T08:00:00+00:00",
        "Time zone": "UTC",
        "Order reference": order.reference,
        "Conference": "PyCon Test",
        "Attendee name": "Grace Hopper",
        "Attendee email": "grace@example.com",
        "Method": "Manual",
        "Status": "Succeeded",
        "Amount": "-20.00",
        "Currency": "USD",
        "Reference": "DESK-9",
        "Note": "workshop cancelled",
        "Recorded by": "clerk",
        "Stripe payment intent ID": "",
        "Stripe charge ID": "",
        "Channel": "Bank transfer",
        "Refund ID": str(second.pk),
        "Refund reason": "Event cancelled",
        "Stripe refund ID": "",
        "Stripe dispute ID": "",
        "Dispute reason": "",
    }
    assert (rows[2]["Status"], rows[2]["Amount"], rows[2]["Refund reason"]) == (
        "Failed",
        "-5.00",
        "Duplicate",
    )
    # Made at Stripe with nobody recorded: "Stripe", as the order page says.
    assert rows[2]["Stripe refund ID"] == "re_1" and rows[2]["Recorded by"] == "Stripe"


def test_a_lost_dispute_is_a_negative_row_after_the_refunds(conference, make_order):
    """Disputes come from apply_stripe_dispute, as Stripe reports them; only a lost one is a row."""
    order = make_order("120.00", billing_name="Grace Hopper", billing_email="grace@example.com")
    payment = make_payment(
        order,
        "120.00",
        method=Payment.Method.STRIPE,
        stripe_payment_intent_id="pi_x",
        stripe_charge_id="ch_x",
    )
    refund = make_refund(payment, "20.00")
    for dispute_id, status in (("dp_open", "under_review"), ("dp_lost", "lost")):
        dispute = dispute_object("pi_x", "ch_x", 3000, status=status, dispute_id=dispute_id)
        apply_stripe_dispute(conference, parse_dispute(dispute))
    lost = Dispute.objects.get(stripe_dispute_id="dp_lost")

    rows = export_rows(PaymentResource(), Payment.objects.all())

    assert [(r["Refund ID"], r["Stripe dispute ID"]) for r in rows] == [
        ("", ""),
        (str(refund.pk), ""),
        ("", "dp_lost"),
    ]
    assert rows[2] == {
        "Payment ID": str(payment.pk),
        "Created at": local_datetime(lost.closed_at).isoformat(),
        "Time zone": "UTC",
        "Order reference": order.reference,
        "Conference": "PyCon Test",
        "Attendee name": "Grace Hopper",
        "Attendee email": "grace@example.com",
        "Method": "Stripe",
        "Status": "Dispute lost",
        "Amount": "-30.00",
        "Currency": "USD",
        "Reference": "",
        "Note": "",
        "Recorded by": "",
        "Stripe payment intent ID": "pi_x",
        "Stripe charge ID": "ch_x",
        "Channel": "",
        "Refund ID": "",
        "Refund reason": "",
        "Stripe refund ID": "",
        "Stripe dispute ID": "dp_lost",
        "Dispute reason": "fraudulent",
    }


def test_refund_amounts_are_negative_numbers_in_xlsx(make_order, jpy_conference):
    payment = make_payment(make_order("5000", conference=jpy_conference), "5000")
    make_refund(payment, "1500")
    rows = export_rows(PaymentResource(), Payment.objects.all(), native=True)
    assert [row["Amount"] for row in rows] == [Decimal("5000"), Decimal("-1500")]
    assert rows[0]["Refund ID"] is None and isinstance(rows[1]["Refund ID"], int)


def test_attendee_falls_back_to_the_account_and_blank_cells_stay_empty(make_order, attendee):
    attendee.first_name, attendee.last_name = "Ada", "King"
    attendee.save()
    make_payment(make_order(billing_name="", billing_email=""))
    [row] = export_rows(PaymentResource(), Payment.objects.all())
    assert row["Attendee name"] == "Ada King"
    assert row["Attendee email"] == "attendee@example.com"
    assert row["Recorded by"] == ""
    assert row["Stripe charge ID"] == ""


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [("Dana", "Desk", "Dana Desk"), ("Dana", "", "Dana"), ("", "Desk", "Desk"), ("", "", "desk")],
)
def test_recorded_by_is_the_name_the_admin_shows(make_order, first, last, expected):
    desk = get_user_model().objects.create_user(
        username="desk", first_name=first, last_name=last, is_staff=True
    )
    payment = make_payment(make_order(), created_by=desk)
    make_refund(payment, "10.00", created_by=desk)
    rows = export_rows(PaymentResource(), Payment.objects.all())
    assert [row["Recorded by"] for row in rows] == [expected, expected]
    assert payment.actor_name == expected


def test_recorded_by_names_stripe_for_a_card_payment_and_nobody_for_an_unknown_desk(make_order):
    make_payment(make_order(), method=Payment.Method.STRIPE, stripe_payment_intent_id="pi_1")
    make_payment(make_order(), method=Payment.Method.MANUAL)
    rows = export_rows(PaymentResource(), Payment.objects.order_by("id"))
    assert [row["Recorded by"] for row in rows] == ["Stripe", ""]


def test_amounts_use_the_currency_minor_unit(make_order, jpy_conference):
    make_payment(make_order("5000", conference=jpy_conference), "5000")
    make_payment(make_order("12.50"), "12.5")
    rows = export_rows(PaymentResource(), Payment.objects.order_by("id"))
    assert [(r["Amount"], r["Currency"]) for r in rows] == [("5000", "JPY"), ("12.50", "USD")]


@override_settings(TIME_ZONE="America/New_York")
def test_datetimes_render_in_the_site_time_zone_with_offset(make_order):
    order = make_order()
    make_payment(order, created_at=datetime.datetime(2026, 7, 1, 3, 0, tzinfo=UTC))  # EDT
    make_payment(order, created_at=datetime.datetime(2026, 12, 1, 3, 0, tzinfo=UTC))  # EST
    rows = export_rows(PaymentResource(), Payment.objects.order_by("created_at"))
    assert [r["Created at"] for r in rows] == [
        "2026-06-30T23:00:00-04:00",
        "2026-11-30T22:00:00-05:00",
    ]
    assert {r["Time zone"] for r in rows} == {"America/New_York"}


@pytest.mark.parametrize("trigger", FORMULA_TRIGGERS)
def test_escape_formula_prefixes_every_trigger(trigger):
    assert escape_formula(f"{trigger}1+1") == f"'{trigger}1+1"


@pytest.mark.parametrize("safe", ["", "Wire 42", "ORD-AB12", "1=1", "café €"])
def test_escape_formula_leaves_ordinary_text_alone(safe):
    assert escape_formula(safe) == safe


def test_every_text_column_is_escaped_in_the_export(make_order, attendee):
    order = make_order(billing_name='=HYPERLINK("http://x")', billing_email="@evil@example.com")
    make_payment(
        order,
        reference="+SUM(A1)",
        note="=1+1",
        stripe_payment_intent_id="-pi",
        stripe_charge_id="\tch",
    )
    [row] = export_rows(PaymentResource(), Payment.objects.all())
    assert row["Attendee name"] == '\'=HYPERLINK("http://x")'
    assert row["Attendee email"] == "'@evil@example.com"
    assert row["Reference"] == "'+SUM(A1)"
    assert row["Note"] == "'=1+1"
    assert row["Stripe payment intent ID"] == "'-pi"
    assert row["Stripe charge ID"] == "'\tch"


def test_xlsx_has_numeric_amounts_real_dates_and_formulas_as_plain_text_cells(make_order):
    order = make_order("75.50")
    make_payment(
        order,
        "75.50",
        note="=cmd|' /C calc'!A0",
        created_at=datetime.datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC),
    )
    dataset = PaymentResource().export(queryset=Payment.objects.all(), force_native_type=True)
    content = TextCellXLSX().export_data(dataset)
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    header = [cell.value for cell in sheet[1]]
    values = {name: cell for name, cell in zip(header, sheet[2], strict=True)}
    assert values["Amount"].data_type == "n"
    assert values["Amount"].value == pytest.approx(75.5)
    assert values["Payment ID"].data_type == "n"
    assert values["Created at"].is_date
    assert values["Created at"].value == datetime.datetime(2026, 10, 31, 23, 59, 59)
    # A text cell, never run: no quote in front (that is the CSV's defence).
    assert values["Note"].data_type == "s"
    assert values["Note"].value == "=cmd|' /C calc'!A0"


def test_xlsx_keeps_a_note_with_a_control_character_readable(make_order):
    order = make_order("10.00")
    make_payment(order, "10.00", note="Paid at\x0bthe desk")  # Word's line break, pasted
    dataset = PaymentResource().export(queryset=Payment.objects.all(), force_native_type=True)
    content = TextCellXLSX().export_data(dataset)
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    header = [cell.value for cell in sheet[1]]
    values = {name: cell.value for name, cell in zip(header, sheet[2], strict=True)}
    assert values["Note"] == "Paid at\ufffdthe desk"


def test_order_export_shows_paid_and_balance(make_order):
    order = make_order("100.00")
    order.discount_amount = Decimal("20.00")
    order.subtotal = Decimal("120.00")
    order.save()
    make_payment(order, "30.00")
    make_payment(order, "50.00", status=Payment.Status.FAILED)
    [row] = export_rows(OrderResource(), Order.objects.all())
    assert row["Reference"] == order.reference
    assert row["Status"] == "Pending"
    assert (row["Subtotal"], row["Discount"], row["Total"]) == ("120.00", "20.00", "100.00")
    assert (row["Paid"], row["Balance due"]) == ("30.00", "70.00")


# --- Import --------------------------------------------------------------------------


def import_orders(rows: list[list], *, dry_run: bool):
    """Run the order import on a dataset with the export's columns."""
    dataset = tablib.Dataset(headers=["Conference", "Attendee", "Email", "Status", "Subtotal",
                                      "Discount", "Total"])  # fmt: skip
    for row in rows:
        dataset.append(row)
    return OrderResource().import_data(dataset, dry_run=dry_run, use_transactions=True)


def test_import_dry_run_writes_nothing(conference):
    result = import_orders(
        [["pycon-test", "New Person", "new@example.com", "", "50.00", "0", "50.00"]],
        dry_run=True,
    )
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == 1
    assert Order.objects.count() == 0
    assert not get_user_model().objects.filter(email="new@example.com").exists()


def test_import_creates_orders_with_generated_references_and_attendees(conference, attendee):
    result = import_orders(
        [
            ["pycon-test", "New Person", "new@example.com", "", "50.00", "10.00", "40.00"],
            ["PyCon Test", "Ada", "ATTENDEE@example.com", "Cancelled", "0", "0", "0"],
        ],
        dry_run=False,
    )
    assert not result.has_errors() and not result.has_validation_errors()
    orders = list(Order.objects.order_by("id"))
    assert len(orders) == 2
    assert all(order.reference.startswith("ORD-") for order in orders)
    assert orders[0].reference != orders[1].reference
    assert orders[0].user.email == "new@example.com"
    assert not orders[0].user.has_usable_password()
    assert orders[0].total == Decimal("40.00") and orders[0].status == Order.Status.PENDING
    assert orders[1].user == attendee  # matched by email, case-insensitively
    assert orders[1].status == Order.Status.CANCELLED
    assert OrderLineItem.objects.get(order=orders[0]).line_total == Decimal("50.00")


def test_import_reports_bad_rows_and_writes_nothing(conference):
    result = import_orders(
        [
            ["pycon-test", "Good", "good@example.com", "", "50.00", "0", "50.00"],
            ["nope", "Bad conference", "bad@example.com", "", "50.00", "0", "50.00"],
            ["pycon-test", "Bad sum", "sum@example.com", "", "50.00", "0", "45.00"],
            ["pycon-test", "Bad email", "not-an-email", "", "50.00", "0", "50.00"],
            ["pycon-test", "Paid", "paid@example.com", "paid", "50.00", "0", "50.00"],
            ["pycon-test", "Precise", "p@example.com", "", "50.001", "0", "50.001"],
        ],
        dry_run=False,
    )
    assert result.has_validation_errors()
    invalid = {row.number: row.error_dict for row in result.invalid_rows}
    assert set(invalid) == {2, 3, 4, 5, 6}
    assert invalid[2] == {"Conference": ["Row 2, column Conference: No conference has the slug "
                                         "or name “nope”."]}  # fmt: skip
    assert invalid[3] == {"Total": ["Row 3, column Total: “45.00” is not the subtotal 50.00 "
                                    "minus the discount 0.00, which is 50.00."]}  # fmt: skip
    assert invalid[4] == {"Email": ["Row 4, column Email: “not-an-email” is not a valid e-mail "
                                    "address."]}  # fmt: skip
    assert "Row 5, column Status: “paid” cannot be imported" in invalid[5]["Status"][0]
    assert set(invalid[6]) == {"Subtotal", "Total"}
    assert invalid[6]["Subtotal"] == ["Row 6, column Subtotal: “50.001” has more decimal places "
                                      "than USD allows; write it like 12.50."]  # fmt: skip
    assert Order.objects.count() == 0
    assert not get_user_model().objects.filter(email="good@example.com").exists()
