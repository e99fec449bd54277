"""export_payments: same CSV as the admin, filters, and clear errors for bad options."""

import csv
import datetime
import io

import pytest
from django.core.management import CommandError, call_command
from django.http import StreamingHttpResponse
from django.test import override_settings
from django.urls import reverse

from backoffice.models import Payment
from tests.ledger_factories import make_payment, make_refund, make_staff

pytestmark = pytest.mark.django_db
UTC = datetime.UTC


@pytest.fixture
def ledger(make_order, jpy_conference, staff_user):
    """Payments across two conferences, methods, statuses and the October boundaries."""
    usd = make_order("300.00", billing_name="=Eve", billing_email="eve@example.com")
    jpy = make_order("5000", conference=jpy_conference)
    rows = {
        "before": make_payment(usd, created_at=datetime.datetime(2026, 9, 30, 21, 59, tzinfo=UTC)),
        "first": make_payment(
            usd, "20.00", note="a,\"b\"\nc", created_by=staff_user,
            created_at=datetime.datetime(2026, 9, 30, 22, 0, tzinfo=UTC),
        ),
        "stripe": make_payment(
            usd, "30.00", method=Payment.Method.STRIPE, status=Payment.Status.REFUNDED,
            stripe_payment_intent_id="pi_1", stripe_charge_id="ch_1",
            created_at=datetime.datetime(2026, 10, 15, 12, 0, tzinfo=UTC),
        ),
        "yen": make_payment(
            jpy, "5000", method=Payment.Method.STRIPE, status=Payment.Status.FAILED,
            stripe_payment_intent_id="pi_2",
            created_at=datetime.datetime(2026, 10, 31, 22, 59, tzinfo=UTC),
        ),
        "after": make_payment(usd, created_at=datetime.datetime(2026, 10, 31, 23, 0, tzinfo=UTC)),
    }  # fmt: skip
    # Refund rows (make_refund: PaymentService.refund comes with issue10-core). A refund
    # follows its payment into an export whatever its own date.
    rows["stripe_refund"] = make_refund(
        rows["stripe"], "30.00", stripe_refund_id="re_1",
        created_at=datetime.datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    )  # fmt: skip
    rows["first_refund"] = make_refund(
        rows["first"], "5.00", note="=refund", created_by=staff_user,
        created_at=datetime.datetime(2026, 10, 1, 9, 0, tzinfo=UTC),
    )  # fmt: skip
    return rows


def run(tmp_path, *args: str) -> bytes:
    """Run the command into a file and return its bytes."""
    target = tmp_path / "payments.csv"
    call_command("export_payments", *args, "--output", str(target))
    return target.read_bytes()


def csv_rows(content: bytes) -> list[dict[str, str]]:
    """The rows of an exported CSV (after its BOM) by column name."""
    return list(csv.DictReader(io.StringIO(content[3:].decode(), newline="")))


def ids(content: bytes) -> list[int]:
    """Payment ids of the payment rows in an exported CSV."""
    return [int(row["Payment ID"]) for row in csv_rows(content) if not row["Refund ID"]]


def refund_ids(content: bytes) -> list[int]:
    """Refund ids of the refund rows in an exported CSV."""
    return [int(row["Refund ID"]) for row in csv_rows(content) if row["Refund ID"]]


@override_settings(TIME_ZONE="Europe/Paris")
def test_writes_the_same_bytes_as_the_admin_export(ledger, client, tmp_path, settings):
    client.force_login(make_staff("fin", "backoffice.view_payment", "backoffice.export_payment"))
    query = "?created_at_from=2026-10-01&created_at_to=2026-10-31"
    fields = {f"paymentresource_{name}": "on" for name in [
        "id", "created_at", "time_zone", "order_reference", "conference", "attendee_name",
        "attendee_email", "method", "status", "amount", "currency", "reference", "note",
        "recorded_by", "stripe_payment_intent_id", "stripe_charge_id", "channel", "refund_id",
        "refund_reason", "stripe_refund_id", "stripe_dispute_id", "dispute_reason"]}  # fmt: skip
    export_url = reverse("admin:backoffice_payment_export") + query
    in_memory = client.post(export_url, {"format": "0", "resource": "0", **fields})
    settings.BACKOFFICE_STREAMING_EXPORT_THRESHOLD = 0
    streamed = client.post(export_url, {"format": "0", "resource": "0", **fields})
    assert isinstance(streamed, StreamingHttpResponse)
    command = run(tmp_path, "--since", "2026-10-01", "--until", "2026-10-31")
    assert command.startswith(b"\xef\xbb\xbfPayment ID,Created at,")
    assert command == in_memory.content == b"".join(streamed.streaming_content)
    assert ids(command) == [ledger["yen"].pk, ledger["stripe"].pk, ledger["first"].pk]
    assert refund_ids(command) == [ledger["stripe_refund"].pk, ledger["first_refund"].pk]
    assert b"'=Eve" in command and b"'=refund" in command and b",-30.00,USD," in command


@override_settings(TIME_ZONE="Europe/Paris")
def test_filters(ledger, tmp_path):
    assert ids(run(tmp_path, "--conference", "pycon-jp")) == [ledger["yen"].pk]
    assert ids(run(tmp_path, "--method", "stripe", "--status", "refunded")) == [ledger["stripe"].pk]
    assert ids(run(tmp_path, "--status", "Failed")) == [ledger["yen"].pk]
    assert ids(run(tmp_path, "--until", "2026-09-30")) == [ledger["before"].pk]  # 23:59 Paris
    assert ids(run(tmp_path, "--since", "2026-11-01")) == [ledger["after"].pk]
    assert len(ids(run(tmp_path))) == 5
    # Refunds follow their payment's filters (status and method are the payment's).
    assert refund_ids(run(tmp_path, "--status", "refunded")) == [ledger["stripe_refund"].pk]
    assert refund_ids(run(tmp_path, "--method", "manual")) == [ledger["first_refund"].pk]


def test_writes_to_standard_output_by_default(ledger):
    out = io.StringIO()
    call_command("export_payments", "--conference", "pycon-jp", stdout=out)
    text = out.getvalue()
    assert text.startswith("\ufeffPayment ID,")
    assert text.count("\r\n") == 2  # header and the one JPY payment (no refunds)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--conference", "nope"], "Unknown conference “nope”; known slugs: pycon-jp, pycon-test"),
        (["--since", "2026-13-01"], "--since must be a date as YYYY-MM-DD"),
        (["--until", "31/10/2026"], "--until must be a date as YYYY-MM-DD"),
        (["--since", "2026-11-01", "--until", "2026-10-01"], "is after --until"),
        (["--method", "cash"], "Unknown method “cash”; choose one of: stripe, comp, manual."),
        (["--status", "done"], "choose one of: pending, processing, succeeded, failed, canceled"),
    ],
)
def test_bad_options_are_clear_errors(ledger, tmp_path, args, message):
    with pytest.raises(CommandError) as error:
        call_command("export_payments", *args, "--output", str(tmp_path / "x.csv"))
    assert message in str(error.value)
    assert not (tmp_path / "x.csv").exists()
