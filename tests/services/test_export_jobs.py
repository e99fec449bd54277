"""Background exports: queued with their row, written by a real worker run, expired."""

import csv
import datetime
import io

import openpyxl
import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.db import transaction
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from backoffice.exports import PaymentResource
from backoffice.models import ExportFile, Payment
from backoffice.services.export_jobs import (
    delete_expired_exports,
    download_name,
    request_export,
)
from backoffice.services.exports import payments_for_export, stream_csv
from backoffice.services.xlsx_export import write_xlsx
from backoffice.spreadsheet import TextCellXLSX
from tests.ledger_factories import make_payment, make_refund, make_staff
from tests.worker import run_db_worker, run_queued_tasks

pytestmark = pytest.mark.django_db
PAYMENTS = "backoffice.payment"
FORMULA_LIKE = {"=cmd|calc", "=SUM(A1:A9)", "-partial"}


@pytest.fixture
def finance(db):
    """A staff member who may view and export payments."""
    return make_staff("finance", "backoffice.view_payment", "backoffice.export_payment")


@pytest.fixture
def ledger(make_order, jpy_conference):
    """Payments with what an export must render: formulas, a refund, a JPY amount, a blank."""
    first = make_payment(
        make_order("100.00", billing_name="=cmd|calc"),
        "99.95",
        note="=SUM(A1:A9)",
        created_at=datetime.datetime(2026, 10, 1, 9, 30, tzinfo=datetime.UTC),
    )
    make_refund(first, "10.50", note="-partial")
    make_payment(
        make_order("5000", conference=jpy_conference),
        "5000",
        method=Payment.Method.COMP,
        note="line one\nline two",
        created_at=datetime.datetime(2026, 10, 2, 12, 0, tzinfo=datetime.UTC),
    )
    make_payment(make_order("20.00"), "20.00", method=Payment.Method.STRIPE, reference="")
    return first


def in_request_xlsx(queryset) -> list[list]:
    """The cells of the admin's in-memory XLSX export of the queryset (the library path)."""
    dataset = PaymentResource().export(queryset=queryset, force_native_type=True)
    content = TextCellXLSX().export_data(dataset)
    return sheet_values(content)


def sheet_values(content: bytes) -> list[list]:
    """Every row of the workbook's first sheet as cell values."""
    sheet = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def stored_bytes(export: ExportFile) -> bytes:
    """The export's file as the storage holds it."""
    with default_storage.open(export.file.name, "rb") as handle:
        return handle.read()


def test_xlsx_export_is_written_by_the_worker_with_the_in_request_cells(
    finance, ledger, media_root
):
    export = request_export(
        user=finance, list_name=PAYMENTS, filters={}, file_format=ExportFile.Format.XLSX
    )
    assert export.status == ExportFile.Status.QUEUED
    assert run_queued_tasks() == 1

    export.refresh_from_db()
    assert export.status == ExportFile.Status.READY
    assert export.row_count == 4  # three payments and one refund
    assert export.finished_at is not None
    assert export.expires_at == export.finished_at + datetime.timedelta(days=7)
    content = stored_bytes(export)
    rows = sheet_values(content)
    assert rows == in_request_xlsx(payments_for_export())
    header = rows[0]
    by_note = {row[header.index("Note")]: dict(zip(header, row, strict=True)) for row in rows}
    first = by_note["=SUM(A1:A9)"]
    assert first["Attendee name"] == "=cmd|calc"
    assert first["Amount"] == pytest.approx(99.95)
    assert first["Created at"] == datetime.datetime(2026, 10, 1, 9, 30)
    refund = by_note["-partial"]
    assert refund["Amount"] == pytest.approx(-10.5)
    assert refund["Payment ID"] == ledger.pk
    assert by_note["line one\nline two"]["Amount"] == 5000
    sheet = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    amount_column = header.index("Amount") + 1
    assert sheet.cell(row=2, column=amount_column).data_type == "n"
    # Formula-like text is a text cell, as typed (the quote is the CSV's defence only).
    formula_like = [
        cell for row in sheet.iter_rows(min_row=2) for cell in row if cell.value in FORMULA_LIKE
    ]
    assert len(formula_like) == 4  # the attendee on the payment and its refund, two notes
    assert {cell.data_type for cell in formula_like} == {"s"}
    assert sheet.cell(row=2, column=header.index("Created at") + 1).is_date
    assert sheet.cell(row=1, column=1).font.bold
    assert sheet.freeze_panes == "A2"


def test_xlsx_export_keeps_the_list_filters_and_picked_columns(finance, ledger, media_root):
    export = request_export(
        user=finance,
        list_name=PAYMENTS,
        filters={"method__exact": ["manual"]},
        file_format=ExportFile.Format.XLSX,
        fields=["amount", "note"],
    )
    run_queued_tasks()
    export.refresh_from_db()
    assert sheet_values(stored_bytes(export)) == [
        ["Amount", "Note"],
        [pytest.approx(99.95), "=SUM(A1:A9)"],
        [pytest.approx(-10.5), "-partial"],
    ]
    assert export.row_count == 2


def test_rows_beyond_a_sheet_go_on_in_a_new_sheet_with_the_header(finance, ledger, media_root):
    target = io.BytesIO()
    rows = write_xlsx(
        PaymentResource(), payments_for_export(), target, title="Payments", sheet_max_rows=3
    )
    book = openpyxl.load_workbook(io.BytesIO(target.getvalue()))
    assert rows == 4
    assert book.sheetnames == ["Payments", "Payments (2)"]
    assert [len(list(sheet.iter_rows())) for sheet in book.worksheets] == [4, 2]
    assert book.worksheets[1]["A1"].value == "Payment ID"


@pytest.mark.django_db(transaction=True)
def test_csv_export_by_the_db_worker_command_matches_the_streaming_export(
    make_order, jpy_conference, media_root
):
    user = make_staff("finance", "backoffice.view_payment", "backoffice.export_payment")
    payment = make_payment(make_order("30.00"), "30.00", note='say "hi",\r\nthen =1+1')
    make_refund(payment, "3.00")
    export = request_export(
        user=user, list_name=PAYMENTS, filters={}, file_format=ExportFile.Format.CSV
    )

    run_db_worker()

    export.refresh_from_db()
    assert export.status == ExportFile.Status.READY
    content = stored_bytes(export)
    assert content == b"".join(stream_csv(PaymentResource(), payments_for_export()))
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert export.row_count == len(rows) - 1 == 2
    assert rows[1][12] == 'say "hi",\r\nthen =1+1'
    assert export.file.name.endswith(f"-{export.pk}.csv")
    assert download_name(export) == f"payments-{timezone.localdate().isoformat()}.csv"


def test_an_export_requested_in_a_rolled_back_transaction_leaves_nothing(finance, ledger):
    with pytest.raises(RuntimeError), transaction.atomic():
        request_export(
            user=finance, list_name=PAYMENTS, filters={}, file_format=ExportFile.Format.XLSX
        )
        raise RuntimeError("the request failed")
    assert not ExportFile.objects.exists()
    assert not DBTaskResult.objects.exists()


def test_a_failing_export_is_retried_then_shown_as_failed(finance, ledger, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    settings.MEDIA_ROOT = blocker
    settings.BACKOFFICE_TASK_MAX_ATTEMPTS = 2
    settings.BACKOFFICE_TASK_RETRY_DELAY_SECONDS = 0
    export = request_export(
        user=finance, list_name=PAYMENTS, filters={}, file_format=ExportFile.Format.CSV
    )

    assert run_queued_tasks() == 2

    export.refresh_from_db()
    assert export.status == ExportFile.Status.FAILED
    assert export.error.startswith("The file could not be written (2 attempts): ")
    assert not export.file
    results = DBTaskResult.objects.order_by("enqueued_at")
    assert [result.status for result in results] == [TaskResultStatus.FAILED] * 2


def test_an_export_by_someone_no_longer_allowed_fails_without_retrying(finance, ledger, media_root):
    export = request_export(
        user=finance, list_name=PAYMENTS, filters={}, file_format=ExportFile.Format.XLSX
    )
    finance.user_permissions.clear()

    assert run_queued_tasks() == 1

    export.refresh_from_db()
    assert export.status == ExportFile.Status.FAILED
    assert "may no longer export" in export.error
    assert not export.file


def test_request_export_refuses_someone_without_the_export_permission(ledger):
    viewer = make_staff("viewer", "backoffice.view_payment")
    with pytest.raises(PermissionDenied):
        request_export(
            user=viewer, list_name=PAYMENTS, filters={}, file_format=ExportFile.Format.CSV
        )
    assert not ExportFile.objects.exists()


def test_expired_exports_are_deleted_with_their_files(finance, ledger, media_root):
    old, fresh = (
        request_export(
            user=finance, list_name=PAYMENTS, filters={}, file_format=ExportFile.Format.CSV
        )
        for _ in range(2)
    )
    run_queued_tasks()
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert default_storage.exists(old.file.name)
    ExportFile.objects.filter(pk=old.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    assert delete_expired_exports() == 1

    assert not ExportFile.objects.filter(pk=old.pk).exists()
    assert not default_storage.exists(old.file.name)
    assert default_storage.exists(fresh.file.name)
    later = fresh.expires_at + datetime.timedelta(seconds=1)
    assert delete_expired_exports(now=later) == 1
    assert not default_storage.exists(fresh.file.name)
    assert Payment.objects.count() == 3  # the ledger itself is untouched
