"""Orders admin: CSV/XLSX export of the filtered list and the previewed import, both gated."""

import csv
import io
from io import StringIO

import openpyxl
import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
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
