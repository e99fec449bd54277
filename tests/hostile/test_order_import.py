"""Hostile import files, property-based: random rows through the resource and the admin view.

Properties: never an exception (a 500 in the admin), never a stored change from a file
with an invalid row, every refusal a sentence naming its row and column, and a file
of valid rows imports exactly its orders.
"""

import csv
import io
from decimal import Decimal

import pytest
import tablib
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from backoffice.exports import OrderResource
from backoffice.models import Order, OrderLineItem
from backoffice.services.order_import import COLUMNS
from tests.ledger_factories import make_staff

pytestmark = pytest.mark.django_db
IMPORT_URL = reverse("admin:backoffice_order_import")
PROCESS_URL = reverse("admin:backoffice_order_process_import")
BOUNDED = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- Rows -------------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=10**6, places=2)


@st.composite
def valid_rows(draw: st.DrawFn) -> dict[str, object]:
    """A row the import must accept, with the values it must store."""
    subtotal = draw(amounts)
    discount = draw(st.decimals(min_value=0, max_value=subtotal, places=2))
    return {
        "Conference": draw(st.sampled_from(["pycon-test", "PyCon Test", " pycon-test "])),
        "Attendee": draw(st.from_regex(r"[A-Za-zÀ-ÿ]{0,12}( [A-Za-zÀ-ÿ]{1,12})?", fullmatch=True)),
        "Email": draw(st.from_regex(r"[a-z][a-z0-9]{0,6}@[a-z]{1,8}\.(com|org)", fullmatch=True)),
        "Status": draw(st.sampled_from(["", "pending", "Pending", "cancelled", "CANCELLED"])),
        "Subtotal": str(subtotal),
        "Discount": draw(st.sampled_from([str(discount)] + ([""] if discount == 0 else []))),
        "Total": str(subtotal - discount),
    }


hostile_text = st.one_of(
    st.text(max_size=16),
    st.sampled_from([
        "", " ", "12,50", "-1", "-0", "1e9", "NaN", "Infinity", "0.001", "99999999999",
        "１２", "=1+1", "@SUM(A1)", "+1", "\t1", "paid", "refunded", "Cancelled", "pycon-test",
        "PyCon Test", "a@b.co", "x@", "@", "\x00", "a\x00@b.co", "é" * 300,
    ]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**15), max_value=10**15).map(str),
)  # fmt: skip
# XLSX cells arrive as numbers, booleans and empties too.
hostile_cell = st.one_of(
    hostile_text,
    st.none(),
    st.booleans(),
    st.floats(),
    st.integers(min_value=-(10**20), max_value=10**20),
)


@st.composite
def hostile_rows(draw: st.DrawFn, cells: st.SearchStrategy = hostile_text) -> dict[str, object]:
    """A valid row with some cells replaced by hostile ones."""
    row = draw(valid_rows())
    for column in draw(st.sets(st.sampled_from(COLUMNS), min_size=1)):
        row[column] = draw(cells)
    return row


@st.composite
def files(draw: st.DrawFn, cells: st.SearchStrategy = hostile_text) -> tuple[list, list, list]:
    """(header, rows as lists, the rows if all were built valid else []).

    Columns are shuffled, some dropped, some unknown ones added.
    """
    columns = list(COLUMNS)
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    if draw(st.integers(0, 4)) == 0:
        columns = draw(st.lists(st.sampled_from(COLUMNS), unique=True))
    extras = draw(st.lists(st.sampled_from(["Paid", "Notes", "Reference", ""]), max_size=2))
    tagged = draw(
        st.lists(
            st.one_of(
                valid_rows().map(lambda row: (row, True)),
                hostile_rows(cells).map(lambda row: (row, False)),
            ),
            min_size=1,
            max_size=5,
        )
    )
    body = [[row.get(c, "") for c in columns] + ["x"] * len(extras) for row, _ in tagged]
    all_valid = all(valid for _, valid in tagged) and set(COLUMNS) <= set(columns)
    return columns + extras, body, [row for row, _ in tagged] if all_valid else []


def counts() -> tuple[int, int, int]:
    """Orders, users and line items stored."""
    return Order.objects.count(), get_user_model().objects.count(), OrderLineItem.objects.count()


def assert_orders_match(new_orders: list[Order], rows: list[dict[str, object]]) -> None:
    """The orders stored are the file's rows, in order."""
    assert len(new_orders) == len(rows)
    for order, row in zip(new_orders, rows, strict=True):
        assert order.conference.slug == "pycon-test"
        assert order.billing_email == str(row["Email"]).strip()
        assert order.user.email.lower() == order.billing_email.lower()
        assert order.billing_name == str(row["Attendee"]).strip()
        assert order.total == Decimal(str(row["Total"]))
        assert order.subtotal == Decimal(str(row["Subtotal"]))
        expected = "cancelled" if str(row["Status"]).lower() == "cancelled" else "pending"
        assert order.status == expected
        assert [item.line_total for item in order.line_items.all()] == [order.subtotal]


def assert_refusals_are_sentences(result) -> None:  # noqa: ANN001
    """Every refused row names its row and column; no row fails with an exception."""
    assert not result.row_errors()
    for invalid in result.invalid_rows:
        for column, messages in invalid.error_dict.items():
            for message in messages:
                assert message.startswith(f"Row {invalid.number}, column {column}: "), message


# --- Through the resource ---------------------------------------------------------------


@BOUNDED
@given(file=files(hostile_cell))
def test_resource_import_of_random_rows(conference, file):
    header, body, rows = file
    dataset = tablib.Dataset(*body, headers=header)
    before = counts()
    last_pk = Order.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    result = OrderResource().import_data(dataset, dry_run=False, use_transactions=True)
    assert_refusals_are_sentences(result)
    new_orders = list(Order.objects.filter(pk__gt=last_pk).order_by("pk"))
    refused = result.has_errors() or result.has_validation_errors()
    event("refused" if refused else "imported")
    if refused:
        assert counts() == before  # nothing stored from a file with an invalid row
    else:
        assert len(new_orders) == len(body)
    if rows:  # every row valid, every column present
        assert not result.has_errors() and not result.has_validation_errors()
        assert_orders_match(new_orders, rows)


# --- Through the admin ------------------------------------------------------------------


@pytest.fixture
def importer(db) -> Client:
    """A client logged in as staff who may view and import orders."""
    client = Client()
    client.force_login(make_staff("importer", "backoffice.view_order", "backoffice.import_order"))
    return client


def csv_bytes(header: list, body: list) -> bytes:
    """The rows as a UTF-8 CSV file with a byte-order mark, as Excel writes it."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(body)
    return buffer.getvalue().encode("utf-8-sig")


uploads = st.one_of(
    files().map(lambda file: (csv_bytes(*file[:2]), "0", file)),
    st.tuples(st.binary(max_size=200), st.sampled_from(["0", "1"]), st.just(None)),
)


@BOUNDED
@given(upload=uploads)
def test_admin_import_of_random_files(importer, conference, upload):
    data, file_format, file = upload
    before = counts()
    last_pk = Order.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    preview = importer.post(
        IMPORT_URL,
        {"resource": "0", "format": file_format,
         "import_file": SimpleUploadedFile("orders", data, "application/octet-stream")},
    )  # fmt: skip
    assert preview.status_code == 200
    assert counts() == before  # the preview is a dry run
    result = preview.context.get("result")
    if result is not None:
        assert_refusals_are_sentences(result)
    confirm = preview.context.get("confirm_form")
    event("confirmed" if confirm is not None else "refused")
    if confirm is not None:
        done = importer.post(PROCESS_URL, {**confirm.initial, "resource": "0"})
        assert done.status_code == 302
        new_orders = list(Order.objects.filter(pk__gt=last_pk).order_by("pk"))
        assert len(new_orders) == result.totals["new"] > 0
    else:
        assert counts() == before
    if file is not None and file[2]:  # every row valid, every column present
        assert confirm is not None
        assert_orders_match(new_orders, file[2])
