"""Finance in a real browser: download the payments ledger as CSV and check it against the DB."""

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from backoffice.models import Payment
from backoffice.services.payment import PaymentService
from tests.e2e.conftest import describe_violations, serious_axe_violations

pytestmark = pytest.mark.e2e

PAYMENTS_URL = "/admin/backoffice/payment/"


def test_finance_downloads_the_filtered_payments_csv_matching_the_database(
    page: Page, login, finance_user, front_desk_user, make_order, tmp_path, screenshot
) -> None:
    first = make_order("120.00", billing_name="Grace Hopper")
    PaymentService.record_manual(
        first, amount=Decimal("50.00"), reference="CASH-0042", staff_user=front_desk_user
    )
    PaymentService.record_manual(
        first,
        amount=Decimal("70.00"),
        reference="WIRE-7781",
        note="Bank transfer, 3 days late",
        staff_user=front_desk_user,
    )
    second = make_order("35.50", billing_name="Alan Turing")
    PaymentService.record_manual(second, amount=Decimal("10.25"), staff_user=front_desk_user)
    PaymentService.record_comp(make_order("0.00"), staff_user=front_desk_user)

    login(finance_user)
    # The list filtered to manual payments: the export must contain exactly what it shows.
    page.goto(f"{PAYMENTS_URL}?method__exact={Payment.Method.MANUAL}")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    page.get_by_role("link", name="Export").click()
    # The page says what it exports: the list, its filter in words and the row count.
    expect(page.get_by_role("heading", name="Export payments")).to_be_visible()
    expect(page.locator("#export-filters")).to_have_text("Method: Manual")
    expect(page.locator("#export-rows")).to_have_text(
        "3 payments, each followed by its refunds and lost disputes as rows of their own"
    )
    violations = serious_axe_violations(page)
    assert not violations, describe_violations(violations)
    screenshot(page, "export-page")
    page.get_by_label("Format").select_option(label="CSV")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export").click()
    download = download_info.value
    assert download.suggested_filename == f"payments-{timezone.localdate().isoformat()}.csv"
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "CSV must start with a UTF-8 byte-order mark for Excel"
    exported = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))

    expected = Payment.objects.filter(method=Payment.Method.MANUAL).select_related(
        "order__conference", "created_by"
    )
    assert sorted(int(row["Payment ID"]) for row in exported) == sorted(p.pk for p in expected)
    by_id = {int(row["Payment ID"]): row for row in exported}
    for payment in expected:
        row = by_id[payment.pk]
        assert row["Order reference"] == payment.order.reference
        assert row["Conference"] == payment.order.conference.name
        assert row["Method"] == payment.get_method_display()
        assert row["Status"] == payment.get_status_display()
        assert Decimal(row["Amount"]) == payment.amount
        assert row["Currency"] == "USD"
        assert row["Reference"] == payment.reference
        assert row["Note"] == payment.note
        assert row["Recorded by"] == "Dana Desk"  # as the admin names her, not "dana"
        created = datetime.fromisoformat(row["Created at"])
        assert created.utcoffset() is not None, "timestamps carry their UTC offset"
        assert abs(created - payment.created_at) < timedelta(seconds=1)

    # The next export starts from the format chosen last.
    page.goto(f"{PAYMENTS_URL}export/")
    expect(page.get_by_label("Format")).to_have_value("0")
