"""Exports list and downloads: large exports queued, own exports listed, downloads checked."""

import io

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone

from backoffice.models import ExportFile, Payment
from backoffice.services.export_jobs import request_export
from tests.ledger_factories import make_payment, make_staff
from tests.worker import run_queued_tasks

pytestmark = pytest.mark.django_db
EXPORTS_URL = reverse("admin:backoffice_exportfile_changelist")
EXPORT_URL = reverse("admin:backoffice_payment_export")
CSV, XLSX = "0", "1"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def download_url(export: ExportFile) -> str:
    """The Download action's URL of an export."""
    return reverse("admin:backoffice_exportfile_download", args=[export.pk])


def post_export(client, file_format: str, query: str = "", **extra: str):
    """Submit the payments export form with two columns ticked."""
    data = {
        "format": file_format,
        "resource": "0",
        "paymentresource_amount": "on",
        "paymentresource_note": "on",
        **extra,
    }
    return client.post(f"{EXPORT_URL}{query}", data)


@pytest.fixture
def finance_user(db):
    """A staff member who may view and export payments."""
    return make_staff("finance", "backoffice.view_payment", "backoffice.export_payment")


@pytest.fixture
def finance(client, finance_user, media_root):
    """The finance user, logged in."""
    client.force_login(finance_user)
    return client


@pytest.fixture
def three_manual_payments(make_order):
    """Three manual payments and one by card."""
    order = make_order("100.00")
    make_payment(order, "10.00", method=Payment.Method.STRIPE)
    return [make_payment(order, f"{index}.00", note=f"=n{index}") for index in (1, 2, 3)]


def test_a_large_xlsx_export_is_queued_not_served(finance, three_manual_payments, settings):
    settings.BACKOFFICE_XLSX_IN_REQUEST_MAX_ROWS = 2

    response = post_export(finance, XLSX, "?method__exact=manual")

    assert response.status_code == 302
    assert response["Location"] == EXPORTS_URL
    assert "Content-Disposition" not in response
    export = ExportFile.objects.get()
    assert export.requested_by.username == "finance"
    assert export.status == ExportFile.Status.QUEUED
    assert export.file_format == ExportFile.Format.XLSX
    assert export.filters == {"method__exact": ["manual"]}
    assert export.fields == ["amount", "note"]
    assert export.filters_description == "Method: Manual"
    page = finance.get(EXPORTS_URL).content.decode()
    assert "Your export is being prepared." in page
    assert "Method: Manual" in page
    assert "Queued" in page
    assert download_url(export) not in page

    assert run_queued_tasks() == 1

    page = finance.get(EXPORTS_URL).content.decode()
    assert "Ready" in page
    assert download_url(export) in page
    export.refresh_from_db()
    assert export.row_count == 3


def test_a_small_xlsx_export_is_still_served_in_the_request(finance, three_manual_payments):
    response = post_export(finance, XLSX)
    assert response.status_code == 200
    assert response["Content-Type"] == XLSX_TYPE
    assert not ExportFile.objects.exists()


def test_a_csv_asked_for_as_a_file_is_queued(finance, three_manual_payments):
    response = post_export(finance, CSV, "?q=ORD-NOTHING", prepare_file="on")
    assert response.status_code == 302
    export = ExportFile.objects.get()
    assert export.file_format == ExportFile.Format.CSV
    assert export.filters_description == "Search: “ORD-NOTHING”"
    run_queued_tasks()
    export.refresh_from_db()
    assert (export.status, export.row_count) == (ExportFile.Status.READY, 0)


def test_a_ready_file_downloads_with_its_name_and_type(finance, three_manual_payments, settings):
    settings.BACKOFFICE_XLSX_IN_REQUEST_MAX_ROWS = 0
    post_export(finance, XLSX, "?method__exact=manual")
    run_queued_tasks()
    export = ExportFile.objects.get()

    response = finance.get(download_url(export))

    assert response.status_code == 200
    assert response["Content-Type"] == XLSX_TYPE
    day = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="payments-{day}.xlsx"'
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0] == ["Amount", "Note"]
    assert sorted(rows[1:]) == [[1, "=n1"], [2, "=n2"], [3, "=n3"]]
    assert {row[1].data_type for row in sheet.iter_rows(min_row=2)} == {"s"}


@pytest.fixture
def two_exports(finance_user, three_manual_payments, media_root):
    """A ready payments export by the finance user, and an orders export by an order clerk."""
    payments = request_export(
        user=finance_user, list_name="backoffice.payment", filters={}, file_format="csv"
    )
    clerk = make_staff("clerk", "backoffice.view_order", "backoffice.export_order")
    orders = request_export(
        user=clerk,
        list_name="backoffice.order",
        filters={},
        file_format="csv",
        description="Orders of the clerk",
    )
    run_queued_tasks()
    payments.refresh_from_db()
    orders.refresh_from_db()
    return payments, orders, clerk


def test_the_list_shows_own_exports_and_those_of_lists_one_exports(client, two_exports):
    payments, orders, clerk = two_exports
    client.force_login(clerk)
    page = client.get(EXPORTS_URL).content.decode()
    assert download_url(orders) in page
    assert "Orders of the clerk" in page
    assert download_url(payments) not in page
    boss = make_staff(
        "boss",
        "backoffice.view_payment",
        "backoffice.export_payment",
        "backoffice.view_order",
        "backoffice.export_order",
    )
    client.force_login(boss)
    page = client.get(EXPORTS_URL).content.decode()
    assert download_url(orders) in page and download_url(payments) in page


def test_someone_who_may_not_export_the_list_cannot_download(client, two_exports):
    payments, orders, clerk = two_exports
    client.force_login(clerk)
    assert client.get(download_url(payments)).status_code == 404
    assert client.get(download_url(orders)).status_code == 200
    viewer = make_staff("viewer", "backoffice.view_payment")
    client.force_login(viewer)
    assert client.get(EXPORTS_URL).status_code == 403
    assert client.get(download_url(payments)).status_code == 403


def test_the_owner_downloads_their_export_after_losing_the_permission(client, two_exports):
    payments, orders, clerk = two_exports
    clerk.user_permissions.clear()
    client.force_login(clerk)
    assert client.get(download_url(orders)).status_code == 200
    assert client.get(download_url(payments)).status_code == 404


def test_the_list_names_who_asked_as_the_admin_does_everywhere(client, two_exports):
    payments, orders, clerk = two_exports
    clerk.first_name, clerk.last_name = "Cleo", "Clerk"
    clerk.save()
    # Someone else looks (the page's header names whoever is logged in).
    client.force_login(make_staff("boss", "backoffice.view_order", "backoffice.export_order"))
    page = client.get(EXPORTS_URL).content.decode()
    assert "Cleo Clerk" in page
