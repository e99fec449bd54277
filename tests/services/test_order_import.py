"""Order import rules: one sentence per refused cell, file limits, lookups and batch saving."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from backoffice.models import Conference, Order, OrderLineItem
from backoffice.services import order_import
from backoffice.services.order_import import OrderImport

pytestmark = pytest.mark.django_db
GOOD_ROW = {
    "Conference": "pycon-test",
    "Attendee": "Marie Curie",
    "Email": "marie@example.com",
    "Status": "",
    "Subtotal": "120.00",
    "Discount": "20.00",
    "Total": "100.00",
}


def refusal(conference: Conference, row_number: int = 12, **cells: object) -> dict[str, list]:
    """The errors a row with these cells changed gets, keyed by column."""
    order = Order()
    with pytest.raises(ValidationError) as caught:
        OrderImport().fill_order(order, {**GOOD_ROW, **cells}, row_number=row_number)
    return caught.value.message_dict


@pytest.mark.parametrize(
    ("cells", "column", "sentence"),
    [
        (
            {"Total": "12,50"},
            "Total",
            "Row 12, column Total: “12,50” is not an amount; write it like 12.50.",
        ),
        (
            {"Subtotal": "1,234.00"},
            "Subtotal",
            "Row 12, column Subtotal: “1,234.00” is not an amount; write it like 12.50.",
        ),
        (
            {"Subtotal": "NaN"},
            "Subtotal",
            "Row 12, column Subtotal: “NaN” is not an amount; write it like 12.50.",
        ),
        (
            {"Subtotal": "1e3"},
            "Subtotal",
            "Row 12, column Subtotal: “1e3” is not an amount; write it like 12.50.",
        ),
        (
            {"Subtotal": "１２"},
            "Subtotal",
            "Row 12, column Subtotal: “１２” is not an amount; write it like 12.50.",
        ),
        (
            {"Discount": "-5.00"},
            "Discount",
            "Row 12, column Discount: “-5.00” is negative; amounts cannot be negative.",
        ),
        (
            {"Subtotal": "120.005"},
            "Subtotal",
            "Row 12, column Subtotal: “120.005” has more decimal places than USD allows; "
            "write it like 12.50.",
        ),
        (
            {"Subtotal": "12345678901.00"},
            "Subtotal",
            "Row 12, column Subtotal: “12345678901.00” is too large; the largest amount is "
            "9999999999.99.",
        ),
        (
            {"Subtotal": ""},
            "Subtotal",
            "Row 12, column Subtotal: An amount is required; write it like 12.50.",
        ),
        (
            {"Email": "not-an-email"},
            "Email",
            "Row 12, column Email: “not-an-email” is not a valid e-mail address.",
        ),
        ({"Email": " "}, "Email", "Row 12, column Email: An e-mail address is required."),
        (
            {"Conference": "nope"},
            "Conference",
            "Row 12, column Conference: No conference has the slug or name “nope”.",
        ),
        (
            {"Conference": ""},
            "Conference",
            "Row 12, column Conference: A conference is required: write its slug or its name.",
        ),
        (
            {"Status": "paid"},
            "Status",
            "Row 12, column Status: “paid” cannot be imported as a status; use one of: "
            "Pending, Cancelled. Record money already collected as payments after the import.",
        ),
        (
            {"Status": "shipped"},
            "Status",
            "Row 12, column Status: “shipped” cannot be imported as a status; use one of: "
            "Pending, Cancelled. Record money already collected as payments after the import.",
        ),
        (
            {"Attendee": '=HYPERLINK("http://evil.example","x")'},
            "Attendee",
            'Row 12, column Attendee: “=HYPERLINK("http://evil.example","x")” looks like a '
            "spreadsheet formula; type the text without the leading “=”.",
        ),
        (
            {"Email": "@SUM(A1)"},
            "Email",
            "Row 12, column Email: “@SUM(A1)” looks like a spreadsheet formula; type the text "
            "without the leading “@”.",
        ),
        (
            {"Attendee": "Ada\x00Lovelace"},
            "Attendee",
            "Row 12, column Attendee: “Ada\x00Lovelace” holds control characters; type plain text.",
        ),
        (
            {"Total": "99.00"},
            "Total",
            "Row 12, column Total: “99.00” is not the subtotal 120.00 minus the discount 20.00, "
            "which is 100.00.",
        ),
    ],
)
def test_fill_order_refuses_a_bad_cell_with_one_sentence(conference, cells, column, sentence):
    assert refusal(conference, **cells) == {column: [sentence]}


def test_fill_order_respects_the_currency_of_a_whole_amount_conference(jpy_conference):
    errors = refusal(jpy_conference, Conference="pycon-jp", Subtotal="1250.50", Total="1250.50")
    assert errors["Subtotal"] == [
        "Row 12, column Subtotal: “1250.50” has more decimal places than JPY allows; "
        "write it like 1250."
    ]


def test_fill_order_reports_every_bad_cell_of_a_row(conference):
    errors = refusal(conference, Email="x", Subtotal="abc", Status="paid")
    assert set(errors) == {"Email", "Subtotal", "Status"}


def test_fill_order_reads_spreadsheet_numbers_and_labels(conference, attendee):
    order = Order()
    row = {**GOOD_ROW, "Email": "ATTENDEE@example.com", "Status": "Cancelled", "Subtotal": 120,
           "Discount": None, "Total": 120.0}  # fmt: skip
    OrderImport().fill_order(order, row, row_number=1)
    assert (order.subtotal, order.discount_amount, order.total) == (120, 0, 120)
    assert str(order.total) == "120.00"
    assert order.status == Order.Status.CANCELLED
    assert order.conference == conference
    assert order.user == attendee  # matched by e-mail, case-insensitively
    assert not Order.objects.exists()


def test_fill_order_finds_a_conference_by_name_unless_two_share_it(conference):
    order = Order()
    OrderImport().fill_order(order, {**GOOD_ROW, "Conference": "PyCon Test"}, row_number=1)
    assert order.conference == conference
    Conference.objects.create(name="PyCon Test", slug="pycon-test-2", currency="USD")
    errors = refusal(conference, Conference="PyCon Test")
    assert errors == {
        "Conference": [
            "Row 12, column Conference: More than one conference is named “PyCon Test”; "
            "use its slug."
        ]
    }


def test_prefetch_attendees_looks_up_a_file_in_one_query(
    conference, attendee, django_assert_num_queries
):
    lookups = OrderImport()
    emails = ["Attendee@Example.com", "new@example.com", "bad", None, "=x@example.com"]
    with django_assert_num_queries(1):
        lookups.prefetch_attendees(emails)
    with django_assert_num_queries(0):
        for number, email in enumerate(["attendee@example.com", "new@example.com"], 1):
            lookups.fill_order(Order(), {**GOOD_ROW, "Email": email}, row_number=number)
    assert lookups.attendees["attendee@example.com"] == attendee


def test_save_orders_creates_attendees_references_and_line_items(conference, attendee):
    lookups = OrderImport()
    orders = []
    for number, email in enumerate(["new@example.com", "NEW@example.com", "attendee@example.com"]):
        order = Order()
        lookups.fill_order(order, {**GOOD_ROW, "Email": email}, row_number=number + 1)
        orders.append(order)
    get_user_model().objects.create_user(username="new@example.com", email="other@example.com")
    lookups.save_orders(orders)
    saved = list(Order.objects.order_by("pk"))
    assert len(saved) == 3 and len({order.reference for order in saved}) == 3
    assert all(order.reference.startswith("ORD-") for order in saved)
    new_user = saved[0].user
    assert saved[1].user == new_user and saved[2].user == attendee
    assert new_user.username == "new@example.com#2"  # the plain username was taken
    assert new_user.email == "new@example.com" and not new_user.has_usable_password()
    assert (new_user.first_name, new_user.last_name) == ("Marie", "Curie")
    items = OrderLineItem.objects.filter(order__in=saved)
    assert [(item.description, item.line_total) for item in items] == [
        (order_import.IMPORTED_LINE_ITEM, Decimal("120.00"))
    ] * 3


@pytest.mark.parametrize(
    ("size", "limit", "sentence"),
    [
        (
            int(7.2 * 1024 * 1024),
            5 * 1024 * 1024,
            "This file is 7.2 MB; the limit is 5 MB. Split it into smaller files.",
        ),
        (5 * 1024 * 1024 + 1, 5 * 1024 * 1024, "This file is 5.1 MB; the limit is 5 MB."),
        (2049, 2048, "This file is 3 KB; the limit is 2 KB."),
    ],
)
def test_check_file_size_names_the_limit(settings, size, limit, sentence):
    settings.BACKOFFICE_IMPORT_MAX_BYTES = limit
    with pytest.raises(ValidationError) as caught:
        order_import.check_file_size(size)
    assert caught.value.messages[0].startswith(sentence)


def test_check_file_size_accepts_a_file_at_the_limit(settings):
    settings.BACKOFFICE_IMPORT_MAX_BYTES = 1000
    order_import.check_file_size(1000)


def test_check_columns_names_the_missing_ones():
    headers = order_import.canonical_headers([" conference ", "ATTENDEE", "Subtotal", "Notes"])
    assert headers == ["Conference", "Attendee", "Subtotal", "Notes"]
    with pytest.raises(ValidationError) as caught:
        order_import.check_columns(headers)
    assert caught.value.messages == [
        "This file has no Email or Total column. Its first row must name the columns: "
        "Conference, Attendee, Email, Status, Subtotal, Discount, Total "
        "(Conference, Email, Subtotal, Total are required)."
    ]
    order_import.check_columns(["Conference", "Email", "Subtotal", "Total"])
