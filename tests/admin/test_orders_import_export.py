"""Orders admin: CSV/XLSX export of the filtered list and the previewed import, both gated."""

import csv
import io
from io import StringIO

import openpyxl
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backoffice.models import Order, Payment
from tests.ledger_factories import make_payment, make_staff

pytestmark = pytest.mark.django_db
LIST_URL = reverse("admin:backoffice_order_changelist")
EXPORT_URL = reverse("admin:backoffice_order_export")
IMPORT_URL = reverse("admin:backoffice_order_import")
PROCESS_URL = reverse("admin:backoffice_order_process_import")
ORDER_FIELDS = [
    "reference", "conference", "attendee", "email", "status", "subtotal", "discount", "total",
    "paid", "balance_due", "created_at",
]  # fmt: skip
CSV_FORMAT, XLSX_FORMAT = "0", "1"


@pytest.fixture
def finance_member(client):
    """A client logged in as a member of the Finance group from create_staff_groups."""
    call_command("create_staff_groups", stdout=StringIO())
    user = make_staff("fin")
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)
    return client


def export(client, file_format: str, query: str = ""):
    """Submit the orders export form with every column ticked."""
    data = {"format": file_format, "resource": "0"}
    data.update({f"orderresource_{name}": "on" for name in ORDER_FIELDS})
    return client.post(EXPORT_URL + query, data)


def upload(client, content: str):
    """Upload a CSV to the import page (the dry-run preview step)."""
    file = SimpleUploadedFile("orders.csv", content.encode("utf-8-sig"), "text/csv")
    return client.post(IMPORT_URL, {"resource": "0", "format": "0", "import_file": file})


def test_finance_exports_the_filtered_orders_as_csv(finance_member, make_order):
    paid_in_part = make_order("100.00", billing_name="Émile")
    make_payment(paid_in_part, "40.00")
    cancelled = make_order("10.00", status=Order.Status.CANCELLED)
    response = export(finance_member, CSV_FORMAT, "?status__exact=pending")
    assert response.status_code == 200
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content[3:].decode(), newline="")))
    assert rows[0] == ["Reference", "Conference", "Attendee", "Email", "Status", "Subtotal",
                       "Discount", "Total", "Paid", "Balance due", "Created at"]  # fmt: skip
    assert [row[:10] for row in rows[1:]] == [[
        paid_in_part.reference, "PyCon Test", "Émile", "ada@example.com", "Pending",
        "100.00", "0.00", "100.00", "40.00", "60.00",
    ]]  # fmt: skip
    assert cancelled.reference not in response.content.decode()


def test_finance_exports_orders_as_xlsx_with_numbers(finance_member, make_order):
    make_payment(make_order("100.00"), "25.00")
    response = export(finance_member, XLSX_FORMAT)
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    header = [cell.value for cell in sheet[1]]
    row = dict(zip(header, sheet[2], strict=True))
    assert row["Paid"].data_type == "n" and row["Paid"].value == 25
    assert row["Balance due"].value == 75
    assert row["Created at"].is_date


def test_orders_export_and_import_refused_without_permission(viewer_client, make_order):
    make_order()
    listed = viewer_client.get(LIST_URL).content.decode()
    assert EXPORT_URL not in listed and IMPORT_URL not in listed
    refused = export(viewer_client, CSV_FORMAT)
    assert refused.status_code == 403 and "Content-Disposition" not in refused
    assert viewer_client.get(IMPORT_URL).status_code == 403
    assert (
        upload(viewer_client, "Conference,Attendee,Email,Subtotal,Discount,Total\n").status_code
        == 403
    )
    assert Order.objects.count() == 1


def test_import_previews_then_creates_orders(finance_member, conference):
    listed = finance_member.get(LIST_URL).content.decode()
    assert EXPORT_URL in listed and IMPORT_URL in listed
    content = (
        "Conference,Attendee,Email,Status,Subtotal,Discount,Total\r\n"
        "pycon-test,Marie Curie,marie@example.com,,120.00,20.00,100.00\r\n"
        "PyCon Test,Pierre Curie,pierre@example.com,Pending,50.00,0,50.00\r\n"
    )
    preview = upload(finance_member, content)
    assert preview.status_code == 200
    result = preview.context["result"]
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == 2
    assert "Marie Curie" in preview.content.decode()
    assert Order.objects.count() == 0  # the preview is a dry run

    confirm = preview.context["confirm_form"]
    done = finance_member.post(PROCESS_URL, {**confirm.initial, "resource": "0"})
    assert done.status_code == 302
    orders = {order.billing_name: order for order in Order.objects.all()}
    assert set(orders) == {"Marie Curie", "Pierre Curie"}
    marie = orders["Marie Curie"]
    assert marie.reference.startswith("ORD-")
    assert (marie.subtotal, marie.discount_amount, marie.total) == (120, 20, 100)
    assert marie.status == Order.Status.PENDING and marie.user.email == "marie@example.com"
    assert not Payment.objects.exists()


def test_import_with_bad_rows_shows_them_and_offers_no_confirm(finance_member, conference):
    content = (
        "Conference,Attendee,Email,Status,Subtotal,Discount,Total\r\n"
        "pycon-test,Good Row,good@example.com,,10.00,0,10.00\r\n"
        "unknown-conf,Bad Row,bad@example.com,,10.00,0,10.00\r\n"
        "pycon-test,Wrong Sum,sum@example.com,,10.00,0,99.00\r\n"
    )
    preview = upload(finance_member, content)
    assert preview.status_code == 200
    result = preview.context["result"]
    assert [row.number for row in result.invalid_rows] == [2, 3]
    html = preview.content.decode()
    assert "Row 2, column Conference: No conference has the slug or name “unknown-conf”." in html
    assert (
        "Row 3, column Total: “99.00” is not the subtotal 10.00 minus the discount 0.00, "
        "which is 10.00." in html
    )
    assert "confirm_form" not in preview.context or preview.context["confirm_form"] is None
    assert Order.objects.count() == 0


# --- Import limits, refusals and the shortened preview ---------------------------------

HEADER = "Conference,Attendee,Email,Status,Subtotal,Discount,Total\r\n"


def csv_rows(count: int, *, total: str = "10.00") -> str:
    """A CSV of ``count`` orders for new attendees."""
    rows = [f"pycon-test,Person {n},p{n}@example.com,,10.00,0,{total}\r\n" for n in range(count)]
    return HEADER + "".join(rows)


def xlsx_rows(count: int) -> bytes:
    """An XLSX workbook of ``count`` orders, amounts as numbers."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(HEADER.strip().split(","))
    for n in range(count):
        sheet.append(["pycon-test", f"Person {n}", f"p{n}@example.com", None, 10, 0, 10.0])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def upload_bytes(client, data: bytes, *, file_format: str = CSV_FORMAT, name: str = "o.csv"):
    """Upload raw bytes to the import page in the given format."""
    file = SimpleUploadedFile(name, data, "application/octet-stream")
    return client.post(IMPORT_URL, {"resource": "0", "format": file_format, "import_file": file})


def stored_uploads() -> int:
    """How many uploaded files wait in the import cache table."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM backoffice_import_tmp")
        return cursor.fetchone()[0]


def form_errors(response) -> list[str]:
    """The import form's errors on the file field."""
    return response.context["form"].errors.get("import_file", [])


def page_messages(response) -> list[str]:
    """The admin messages rendered on the page."""
    return [str(message) for message in response.context["messages"]]


def test_import_refuses_a_file_over_the_size_limit_unread(finance_member, conference, settings):
    settings.BACKOFFICE_IMPORT_MAX_BYTES = 1024
    content = csv_rows(40).encode()
    assert len(content) > 1024
    response = upload_bytes(finance_member, content)
    assert response.status_code == 200
    assert form_errors(response) == [
        f"This file is {-(-len(content) // 1024)} KB; the limit is 1 KB. "
        "Split it into smaller files."
    ]
    assert stored_uploads() == 0 and not Order.objects.exists()


@pytest.mark.parametrize(
    ("file_format", "build"),
    [(CSV_FORMAT, lambda n: csv_rows(n).encode()), (XLSX_FORMAT, xlsx_rows)],
)
def test_import_refuses_more_rows_than_the_limit(finance_member, conference, settings,
                                                 file_format, build):  # fmt: skip
    settings.BACKOFFICE_IMPORT_MAX_ROWS = 3
    refused = upload_bytes(finance_member, build(4), file_format=file_format)
    assert form_errors(refused) == [
        "This file has more than 3 rows of orders; the limit is 3. Split it into smaller files."
    ]
    assert "confirm_form" not in refused.context or not refused.context["confirm_form"]
    accepted = upload_bytes(finance_member, build(3), file_format=file_format)
    assert accepted.context["result"].totals["new"] == 3
    assert not Order.objects.exists()


NOT_UTF8 = (
    "This file is not UTF-8 text. Save it from your spreadsheet as “CSV UTF-8”, "
    "or upload it as XLSX."
)
UNREADABLE = (
    "This file could not be read as the format chosen. Check that the format (CSV or XLSX) "
    "matches the file and that it opens in a spreadsheet."
)
NO_ORDERS = (
    "This file has no orders: the first row must name the columns (Conference, Attendee, "
    "Email, Status, Subtotal, Discount, Total) and each following row holds one order."
)


@pytest.mark.parametrize(
    ("data", "file_format", "error"),
    [
        ((HEADER + "pycon-test,Émile,e@example.com,,1.00,0,1.00\r\n").encode("latin-1"),
         CSV_FORMAT, NOT_UTF8),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", CSV_FORMAT, NOT_UTF8),
        (b"PK\x03\x04 not really a zip", XLSX_FORMAT, UNREADABLE),
        (csv_rows(2).encode(), XLSX_FORMAT, UNREADABLE),
        (HEADER.encode(), CSV_FORMAT, NO_ORDERS),
        (b"\r\n\r\n,,,\r\n", CSV_FORMAT, NO_ORDERS),
        (b"", CSV_FORMAT, "The submitted file is empty."),
    ],
    ids=["latin-1", "binary", "bad-zip", "csv-as-xlsx", "header-only", "blank", "empty"],
)  # fmt: skip
def test_import_refuses_unreadable_files_with_a_sentence(finance_member, conference, data,
                                                          file_format, error):  # fmt: skip
    response = upload_bytes(finance_member, data, file_format=file_format)
    assert response.status_code == 200
    assert form_errors(response) == [error]
    assert not Order.objects.exists()


def test_import_refuses_a_file_missing_a_column(finance_member, conference):
    response = upload(finance_member, "Conference,Attendee,Subtotal,Total\r\npycon-test,A,1,1\r\n")
    result = response.context["result"]
    assert [str(error.error) for error in result.base_errors] == [
        "This file has no Email column. Its first row must name the columns: Conference, "
        "Attendee, Email, Status, Subtotal, Discount, Total (Conference, Email, Subtotal, "
        "Total are required)."
    ]
    assert "This file has no Email column." in response.content.decode()
    assert response.context.get("confirm_form") is None


def test_import_reports_a_bad_decimal_as_a_sentence(finance_member, conference):
    response = upload(finance_member, HEADER + "pycon-test,A,a@example.com,,12,50,0,12,50\r\n")
    html = response.content.decode()
    assert "ConversionSyntax" not in html
    response = upload(finance_member, HEADER + 'pycon-test,A,a@example.com,,"12,50",0,"12,50"\r\n')
    html = response.content.decode()
    assert "Row 1, column Subtotal: “12,50” is not an amount; write it like 12.50." in html
    assert "Row 1, column Total: “12,50” is not an amount; write it like 12.50." in html
    assert "ConversionSyntax" not in html


def test_import_preview_shows_the_first_rows_and_counts_the_rest(finance_member, conference):
    response = upload(finance_member, csv_rows(150))
    result = response.context["result"]
    assert result.totals["new"] == 150 and len(result.rows) == 100
    assert page_messages(response) == ["All 150 rows were checked; the first 100 are shown below."]
    html = response.content.decode()
    assert "p99@example.com" in html and "p100@example.com" not in html
    assert response.context["confirm_form"] is not None
    confirm = response.context["confirm_form"]
    finance_member.post(PROCESS_URL, {**confirm.initial, "resource": "0"})
    assert Order.objects.count() == 150  # the confirm imports every row, shown or not


def test_import_preview_lists_at_most_the_first_rows_with_problems(finance_member, conference):
    response = upload(finance_member, csv_rows(150, total="11.00"))
    result = response.context["result"]
    assert len(result.invalid_rows) == 100
    assert page_messages(response) == [
        "150 of 150 rows have problems; the first 100 are listed below. Correct them and "
        "upload the file again."
    ]
    assert "Row 100, column Total" in response.content.decode()
    assert "Row 101, column Total" not in response.content.decode()


def test_import_queries_do_not_grow_with_the_rows(finance_member, conference):
    def queries(rows: int) -> tuple[int, int]:
        """Queries of the preview and of the confirm step for a file of ``rows`` orders."""
        content = csv_rows(rows).replace("@example.com", f"-{rows}@example.com")
        with CaptureQueriesContext(connection) as preview_queries:
            preview = upload(finance_member, content)
        confirm = preview.context["confirm_form"]
        with CaptureQueriesContext(connection) as confirm_queries:
            finance_member.post(PROCESS_URL, {**confirm.initial, "resource": "0"})
        return len(preview_queries), len(confirm_queries)

    assert queries(5) == queries(300)
    assert Order.objects.count() == 305


def test_import_confirm_refuses_a_file_that_no_longer_passes(finance_member, conference):
    preview = upload(finance_member, csv_rows(2))
    confirm = preview.context["confirm_form"]
    conference.slug = "renamed"
    conference.save()
    done = finance_member.post(PROCESS_URL, {**confirm.initial, "resource": "0"}, follow=True)
    assert done.redirect_chain[-1][0] == IMPORT_URL
    assert page_messages(done) == [
        "Nothing was imported. The file no longer passes the checks (the data changed since "
        "the preview). Upload it again to see why."
    ]
    assert not Order.objects.exists()
    assert (
        not get_user_model().objects.filter(email__endswith="@example.com", is_staff=False).exists()
    )


def test_import_of_an_xlsx_file_creates_the_orders(finance_member, conference):
    preview = upload_bytes(finance_member, xlsx_rows(2), file_format=XLSX_FORMAT, name="o.xlsx")
    confirm = preview.context["confirm_form"]
    finance_member.post(PROCESS_URL, {**confirm.initial, "resource": "0"})
    orders = Order.objects.order_by("billing_name")
    assert [(o.billing_name, o.total, o.user.email) for o in orders] == [
        ("Person 0", 10, "p0@example.com"),
        ("Person 1", 10, "p1@example.com"),
    ]


def test_import_confirmed_twice_imports_once(finance_member, conference):
    preview = upload(finance_member, csv_rows(2))
    data = {**preview.context["confirm_form"].initial, "resource": "0"}
    finance_member.post(PROCESS_URL, data, follow=True)
    again = finance_member.post(PROCESS_URL, data, follow=True)
    assert again.redirect_chain[-1][0] == IMPORT_URL
    assert page_messages(again) == [
        "Nothing was imported. The uploaded file is no longer waiting to be imported: it was "
        "imported already (check the orders list before uploading it again) or its preview is "
        "more than a day old."
    ]
    assert Order.objects.count() == 2
