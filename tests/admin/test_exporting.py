"""The export page (title, what it exports, last format, Export button) and the files' names."""

import datetime
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.models import Conference, ExportFile, Payment
from tests.ledger_factories import make_payment, make_staff
from tests.worker import run_queued_tasks

pytestmark = pytest.mark.django_db
EXPORT_URL = reverse("admin:backoffice_payment_export")
ORDERS_EXPORT_URL = reverse("admin:backoffice_order_export")
CSV, XLSX = "0", "1"
OCTOBER = {"created_at_from": "2026-10-01", "created_at_to": "2026-10-31"}


@pytest.fixture
def finance(client, media_root):
    """A logged-in staff member who may view and export payments and orders."""
    user = make_staff(
        "finance",
        "backoffice.view_payment",
        "backoffice.export_payment",
        "backoffice.view_order",
        "backoffice.export_order",
    )
    client.force_login(user)
    return client


@pytest.fixture
def pycon_2026(db) -> Conference:
    """The conference the examples export."""
    return Conference.objects.create(name="PyCon 2026", slug="pycon-2026", currency="EUR")


@pytest.fixture
def october(make_order, pycon_2026):
    """Three October payments of PyCon 2026 (two succeeded), one of another conference."""
    when = datetime.datetime(2026, 10, 15, 12, tzinfo=datetime.UTC)
    order = make_order("300.00", conference=pycon_2026)
    make_payment(order, "100.00", created_at=when)
    make_payment(order, "100.00", created_at=when)
    make_payment(order, "100.00", status=Payment.Status.FAILED, created_at=when)
    make_payment(make_order("50.00"), "50.00", created_at=when)
    return pycon_2026


def query(pycon: Conference, **extra: str) -> str:
    """The payments list's query string: PyCon 2026, succeeded, October, and ``extra``."""
    params = {
        "order__conference__id__exact": pycon.pk,
        "status__exact": Payment.Status.SUCCEEDED,
        **OCTOBER,
        **extra,
    }
    return "?" + urlencode(params)


def post_export(client, file_format: str, query_string: str = "", **extra: str):
    """Submit the payments export form with two columns ticked."""
    data = {
        "format": file_format,
        "resource": "0",
        "paymentresource_amount": "on",
        "paymentresource_note": "on",
        **extra,
    }
    return client.post(f"{EXPORT_URL}{query_string}", data)


def attachment_name(response) -> str:
    """The file name the browser saves the download as."""
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    return disposition.split("filename=", 1)[1].strip('"')


def test_the_export_page_says_what_it_will_export(finance, october):
    page = finance.get(EXPORT_URL + query(october)).content.decode()
    assert "<h1" in page and "Export payments</h1>" in page
    summary = page[page.index('id="export-summary"') :]
    assert "Payments" in summary
    assert (
        "Conference: PyCon 2026; Status: Succeeded; Created at: 2026-10-01 to 2026-10-31" in summary
    )
    assert ">2 payments, each followed by its refunds and lost disputes as rows of their own<" in (
        summary
    )


def test_the_export_page_of_an_unfiltered_list_says_all_rows(finance, october):
    page = finance.get(ORDERS_EXPORT_URL).content.decode()
    assert "Export orders</h1>" in page
    assert ">All rows<" in page and ">2 rows<" in page


def test_the_formats_are_named_in_capitals(finance):
    page = finance.get(EXPORT_URL).content.decode()
    assert ">CSV</option>" in page and ">XLSX</option>" in page


def test_a_preset_filter_reads_as_its_label(finance, october):
    page = finance.get(ORDERS_EXPORT_URL + "?hold=none&todo=comp").content.decode()
    assert "Hold: None (pending)" in page
    assert "To do: To comp" in page


def test_an_open_date_range_reads_from_or_until(finance, october):
    since = finance.get(EXPORT_URL + "?created_at_from=2026-10-01").content.decode()
    until = finance.get(EXPORT_URL + "?created_at_to=2026-10-31").content.decode()
    assert "Created at: from 2026-10-01" in since
    assert "Created at: until 2026-10-31" in until


def test_the_button_says_export(finance, october):
    page = finance.get(EXPORT_URL).content.decode()
    form = page[page.index('id="export-summary"') :]
    button = form[form.index('type="submit"') :]
    assert button[button.index(">") + 1 : button.index("</button>")].strip() == "Export"
    assert "Submit" not in page


def test_the_last_format_chosen_is_preselected(finance, october):
    first = finance.get(EXPORT_URL).content.decode()
    assert 'value="1" selected' not in first

    post_export(finance, XLSX)
    again = finance.get(EXPORT_URL).content.decode()
    assert 'value="1" selected' in again

    post_export(finance, CSV)
    assert 'value="0" selected' in finance.get(ORDERS_EXPORT_URL).content.decode()


def test_a_file_is_named_after_the_list_the_conference_and_the_days(finance, october):
    response = post_export(finance, CSV, query(october))
    assert attachment_name(response) == "payments-pycon-2026-2026-10-01-to-2026-10-31.csv"
    xlsx = post_export(finance, XLSX, query(october))
    assert attachment_name(xlsx) == "payments-pycon-2026-2026-10-01-to-2026-10-31.xlsx"


def test_without_conference_or_days_the_name_carries_the_export_day(finance, october):
    today = timezone.localdate().isoformat()
    assert attachment_name(post_export(finance, CSV)) == f"payments-{today}.csv"
    since = post_export(finance, CSV, "?created_at_from=2026-10-01")
    assert attachment_name(since) == "payments-from-2026-10-01.csv"


def test_the_streamed_csv_is_named_like_the_in_memory_one(finance, october, settings):
    settings.BACKOFFICE_STREAMING_EXPORT_THRESHOLD = 0
    response = post_export(finance, CSV, query(october))
    assert response.streaming
    assert attachment_name(response) == "payments-pycon-2026-2026-10-01-to-2026-10-31.csv"


def test_a_background_file_downloads_under_the_same_name(finance, october):
    post_export(finance, CSV, query(october), prepare_file="on")
    run_queued_tasks()
    export = ExportFile.objects.get()
    assert export.status == ExportFile.Status.READY
    download = finance.get(reverse("admin:backoffice_exportfile_download", args=[export.pk]))
    assert attachment_name(download) == "payments-pycon-2026-2026-10-01-to-2026-10-31.csv"
    listed = finance.get(reverse("admin:backoffice_exportfile_changelist")).content.decode()
    assert "Download payments-pycon-2026-2026-10-01-to-2026-10-31.csv" in listed


def test_the_export_page_reads_a_fixed_number_of_queries(finance, make_order, october):
    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert finance.get(EXPORT_URL + query(october)).status_code == 200
        return len(queries)

    few = page_queries()
    order = make_order("1000.00", conference=october)
    for _ in range(30):
        make_payment(
            order, "10.00", created_at=datetime.datetime(2026, 10, 20, tzinfo=datetime.UTC)
        )
    assert page_queries() == few
