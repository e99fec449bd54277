"""End to end: a real worker sends the receipt through Django's SMTP backend to an SMTP server."""

import email
import email.policy
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from backoffice.models import Conference, OrderEmail, OrderHistoryEntry
from backoffice.services.notifications import resend
from backoffice.services.payment import PaymentService
from backoffice.services.worker_liveness import recover_stuck_tasks, stuck_after
from tests.deploy_env import REPO_DIR, production_env, shared_database_url
from tests.smtp_server import running_smtp_server
from tests.worker import run_db_worker


@pytest.fixture(scope="module")
def smtp_server():
    """A real SMTP server on a free port of 127.0.0.1, for the whole module."""
    with running_smtp_server() as (inbox, port):
        yield inbox, port


@pytest.fixture
def inbox(smtp_server, settings):
    """The server's inbox, emptied, with Django's SMTP backend pointed at it."""
    inbox, port = smtp_server
    inbox.envelopes.clear()
    inbox.refuse = False
    inbox.stall = False
    inbox.reached.clear()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
        }
    }
    settings.DEFAULT_FROM_EMAIL = "registration@example.org"
    settings.BACKOFFICE_SITE_URL = "https://pay.example.org"
    settings.BACKOFFICE_TASK_RETRY_DELAY_SECONDS = 0
    return inbox


@pytest.fixture
def organised(conference: Conference) -> Conference:
    """The conference with organiser details and a reply-to address."""
    conference.organiser_name = "Python Events Ltd"
    conference.contact_email = "help@example.org"
    conference.reply_to_email = "desk@example.org"
    conference.save()
    return conference


@pytest.mark.django_db(transaction=True)
def test_worker_sends_the_receipt_of_a_manual_payment_over_smtp(
    inbox, organised, make_order, staff_user
):
    order = make_order("100.00")
    PaymentService.record_manual(
        order, amount=Decimal("100.00"), reference="WIRE-42", staff_user=staff_user
    )
    assert inbox.envelopes == []

    run_db_worker()

    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == ["ada@example.com"]
    assert envelope.mail_from == "registration@example.org"
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["To"] == "ada@example.com"
    assert message["From"] == "Python Events Ltd <registration@example.org>"
    assert message["Reply-To"] == "desk@example.org"
    assert message["Subject"] == f"PyCon Test: receipt for order {order.reference}"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f"order {order.reference} for PyCon Test is paid" in text
    assert "Total: 100.00 USD" in text and "100.00 USD, reference WIRE-42" in text
    assert f"https://pay.example.org/pay/{order.payment_token}/" in text
    assert "WIRE-42" in html and "<table" in html
    record = OrderEmail.objects.get(order=order)
    assert (record.kind, record.status, record.attempts) == (
        OrderEmail.Kind.RECEIPT,
        OrderEmail.Status.SENT,
        1,
    )


@pytest.mark.django_db(transaction=True)
def test_a_server_answering_451_is_retried_then_the_failure_is_shown(
    inbox, settings, organised, make_order
):
    settings.BACKOFFICE_TASK_MAX_ATTEMPTS = 2
    inbox.refuse = True
    order = make_order("0.00")
    PaymentService.record_comp(order)

    run_db_worker()

    assert inbox.envelopes == []
    record = OrderEmail.objects.get(order=order)
    assert (record.status, record.attempts) == (OrderEmail.Status.FAILED, 2)
    assert "451" in record.error
    order.refresh_from_db()
    assert order.needs_attention
    assert "send_email_task failed after 2 attempts" in order.attention_reason
    assert OrderHistoryEntry.objects.filter(
        order=order, actor_label="worker", message__contains="451"
    ).exists()

    # The server is back: staff resend it and the next worker run delivers it.
    inbox.refuse = False
    resend(record, staff_user=None)
    run_db_worker()

    assert [e.rcpt_tos for e in inbox.envelopes] == [["ada@example.com"]]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_while_sending_leaves_the_receipt_to_be_sent_after_all(
    smtp_server, inbox, organised, make_order, staff_user
):
    """A real ``run_worker`` process SIGKILLed mid-send: the task is put back and sent once."""
    if connection.vendor != "postgresql":
        pytest.skip("a worker process needs the test database on a server (PostgreSQL)")
    _, port = smtp_server
    inbox.stall = True
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("100.00"), staff_user=staff_user)
    env = production_env(
        DATABASE_URL=shared_database_url(),
        DJANGO_EMAIL_URL=f"smtp://127.0.0.1:{port}",
        DEFAULT_FROM_EMAIL="registration@example.org",
        BACKOFFICE_ENCRYPTION_KEYS=",".join(settings.BACKOFFICE_ENCRYPTION_KEYS),
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--no-reload", "--interval", "0.2"],
        cwd=REPO_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert inbox.reached.wait(timeout=60), "the worker never reached the SMTP server"
    finally:
        worker.kill()  # SIGKILL: no chance to mark anything
        worker.wait(timeout=30)
    inbox.stall = False
    record = OrderEmail.objects.get(order=order, kind=OrderEmail.Kind.RECEIPT)
    assert record.status != OrderEmail.Status.SENT
    [stuck] = DBTaskResult.objects.running()
    assert stuck.task_path.endswith("send_email_task")

    # Later, the scheduled recovery finds the dead worker's task and puts it back.
    recovered = recover_stuck_tasks(now=timezone.now() + stuck_after() + timedelta(minutes=1))
    assert recovered == [str(stuck.id)]
    run_db_worker()

    record.refresh_from_db()
    assert record.status == OrderEmail.Status.SENT
    assert [e.rcpt_tos for e in inbox.envelopes] == [["ada@example.com"]]
