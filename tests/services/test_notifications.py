"""E-mails to attendees: what each says, who gets it, and that the worker sends it once."""

import socket
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from backoffice.dates import format_day
from backoffice.models import Order, OrderEmail, OrderHistoryEntry, Payment, Refund
from backoffice.services import notifications
from backoffice.services.order_paid import send_due_order_paid
from backoffice.services.payment import PaymentService, apply_payment_intent
from backoffice.stripe_client import parse_payment_intent
from tests.stripe_fixtures import succeeded_intent

pytestmark = pytest.mark.django_db

SITE = "https://pay.example.org"


@pytest.fixture(autouse=True)
def mail_settings(settings, conference):
    """A public site address, a sender address and a conference with organiser details."""
    settings.BACKOFFICE_SITE_URL = SITE
    settings.DEFAULT_FROM_EMAIL = "registration@example.org"
    conference.organiser_name = "Python Events Ltd"
    conference.organiser_address = "1 Main Street\nSpringfield"
    conference.contact_email = "help@example.org"
    conference.reply_to_email = "desk@example.org"
    conference.save()


def html_part(message) -> str:
    """The HTML alternative of a sent message."""
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return content


def sent_kinds(order: Order) -> list[str]:
    """The kinds of the order's e-mails, oldest first."""
    return list(order.emails.order_by("queued_at", "id").values_list("kind", flat=True))


def test_payment_link_is_queued_then_sent_by_the_worker(
    make_order, staff_user, run_tasks, mailoutbox
):
    order = make_order("100.00")

    record = notifications.send_payment_link(order, staff_user=staff_user)

    assert record.status == OrderEmail.Status.QUEUED
    assert mailoutbox == []
    assert run_tasks() == 1
    record.refresh_from_db()
    assert record.status == OrderEmail.Status.SENT
    assert record.sent_at is not None
    assert (record.attempts, record.created_by) == (1, staff_user)
    [message] = mailoutbox
    assert message.to == ["ada@example.com"]
    assert message.from_email == "Python Events Ltd <registration@example.org>"
    assert message.reply_to == ["desk@example.org"]
    assert message.subject == f"PyCon Test: please pay order {order.reference}"
    pay_link = f"{SITE}/pay/{order.payment_token}/"
    assert f"Pay here: {pay_link}" in message.body
    assert "Balance due: 100.00 USD" in message.body
    assert "1 x Conference ticket: 100.00 USD" in message.body
    assert order.reference in message.body
    assert "1 Main Street" in message.body and "help@example.org" in message.body
    html = html_part(message)
    assert f'href="{pay_link}"' in html
    assert "Conference ticket" in html and "100.00 USD" in html
    entry = OrderHistoryEntry.objects.get(order=order, action=OrderHistoryEntry.Action.EMAIL)
    assert entry.actor == staff_user
    assert entry.message == "Payment link e-mailed to ada@example.com."


def test_mail_goes_to_the_users_address_without_a_billing_email(make_order, run_tasks, mailoutbox):
    order = make_order("100.00", billing_email="")

    notifications.send_payment_link(order, staff_user=None)
    run_tasks()

    assert mailoutbox[0].to == ["attendee@example.com"]


def test_reply_to_falls_back_to_the_contact_email(conference, make_order, run_tasks, mailoutbox):
    conference.reply_to_email = ""
    conference.save()

    notifications.send_payment_link(make_order("100.00"), staff_user=None)
    run_tasks()

    assert mailoutbox[0].reply_to == ["help@example.org"]


@pytest.mark.parametrize(
    ("billing_email", "user_email", "pay", "refusal"),
    [
        ("", "", False, "has no e-mail address"),
        ("ada@example.com", "", True, "is paid; only a pending order's payment link"),
    ],
)
def test_payment_link_is_refused_without_address_or_once_paid(
    make_order, attendee, run_tasks, mailoutbox, billing_email, user_email, pay, refusal
):
    attendee.email = user_email
    attendee.save()
    order = make_order("100.00", billing_email=billing_email)
    if pay:
        PaymentService.record_manual(order, amount=Decimal("100.00"))
        run_tasks()
        mailoutbox.clear()
    before = OrderEmail.objects.count()

    with pytest.raises(ValidationError, match=refusal):
        notifications.send_payment_link(order, staff_user=None)

    assert OrderEmail.objects.count() == before
    assert run_tasks() == 0
    assert mailoutbox == []


def test_manual_payment_completing_an_order_sends_one_receipt(
    make_order, staff_user, run_tasks, mailoutbox
):
    order = make_order("100.00")
    PaymentService.record_manual(
        order,
        amount=Decimal("40.00"),
        reference="CASH-7",
        channel=Payment.Channel.CASH,
        staff_user=staff_user,
    )
    assert run_tasks() == 0  # part paid: no receipt yet
    PaymentService.record_manual(
        order, amount=Decimal("60.00"), reference="WIRE-9", staff_user=staff_user
    )

    run_tasks()
    send_due_order_paid()
    run_tasks()

    assert sent_kinds(order) == [OrderEmail.Kind.RECEIPT]
    [message] = mailoutbox
    assert message.subject == f"PyCon Test: receipt for order {order.reference}"
    assert message.to == ["ada@example.com"]
    assert message.reply_to == ["desk@example.org"]
    body = message.body
    assert f"order {order.reference} for PyCon Test is paid" in body
    assert "Total: 100.00 USD" in body and "Balance due: 0.00 USD" in body
    assert "Manual (cash): 40.00 USD, reference CASH-7" in body
    assert ": 60.00 USD, reference WIRE-9" in body
    # Each payment's day in the site's one date format ("29 Nov 2026"), as the admin shows it.
    day = format_day(order.payments.earliest("created_at").created_at)
    assert f"- {day}, Manual (cash): 40.00 USD" in body
    assert f"{SITE}/pay/{order.payment_token}/" in body
    assert "Python Events Ltd\n1 Main Street\nSpringfield" in body
    html = html_part(message)
    assert "CASH-7" in html and "WIRE-9" in html and "Springfield" in html


def test_comp_sends_a_receipt(make_order, staff_user, run_tasks, mailoutbox):
    order = make_order("0.00")

    PaymentService.record_comp(order, staff_user=staff_user)
    run_tasks()

    assert sent_kinds(order) == [OrderEmail.Kind.RECEIPT]
    assert "Complimentary: 0.00 USD" in mailoutbox[0].body


def test_card_payment_sends_a_receipt_with_the_charge(
    conference, make_order, run_tasks, mailoutbox
):
    order = make_order("100.00")

    apply_payment_intent(
        conference,
        parse_payment_intent(succeeded_intent(order, "pi_mail")),
        Payment.Status.SUCCEEDED,
    )
    run_tasks()

    assert sent_kinds(order) == [OrderEmail.Kind.RECEIPT]
    assert "Stripe: 100.00 USD, reference ch_mail" in mailoutbox[0].body


def test_refund_confirmation_once_per_refund(make_order, staff_user, run_tasks, mailoutbox):
    order = make_order("100.00")
    payment = PaymentService.record_manual(
        order, amount=Decimal("100.00"), reference="WIRE-1", staff_user=staff_user
    )
    run_tasks()
    mailoutbox.clear()

    PaymentService.refund(
        payment, amount=Decimal("30.00"), reason=Refund.Reason.REQUESTED_BY_CUSTOMER
    )
    PaymentService.refund(payment, amount=Decimal("20.00"), reason=Refund.Reason.OTHER)
    run_tasks()

    assert sent_kinds(order) == [OrderEmail.Kind.RECEIPT, OrderEmail.Kind.REFUND, "refund"]
    first, second = mailoutbox
    assert first.subject == f"PyCon Test: refund of 30.00 USD on order {order.reference}"
    assert "Refunded: 30.00 USD" in first.body
    assert "On the payment: " in first.body and "100.00 USD (reference WIRE-1)" in first.body
    assert "Reason: Requested by customer" in first.body
    assert "Refunded: 20.00 USD" in second.body
    assert "30.00 USD" in html_part(first)


def test_cancellation_is_confirmed(make_order, staff_user, run_tasks, mailoutbox):
    order = make_order("100.00")

    PaymentService.cancel_order(order, reason="Asked by phone", staff_user=staff_user)
    run_tasks()

    assert sent_kinds(order) == [OrderEmail.Kind.CANCELLATION]
    [message] = mailoutbox
    assert message.subject == f"PyCon Test: order {order.reference} is cancelled"
    assert "has been cancelled" in message.body
    assert "Balance due: 0.00 USD" in message.body


def test_a_rolled_back_payment_queues_and_sends_nothing(make_order, run_tasks, mailoutbox):
    order = make_order("100.00")

    with pytest.raises(RuntimeError), transaction.atomic():
        PaymentService.record_manual(order, amount=Decimal("100.00"))
        raise RuntimeError("the request failed after the payment")

    assert OrderEmail.objects.count() == 0
    assert DBTaskResult.objects.count() == 0
    assert run_tasks() == 0
    assert mailoutbox == []


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_failing_mail_server_is_retried_then_the_failure_is_shown(
    settings, make_order, staff_user, run_tasks
):
    settings.BACKOFFICE_TASK_MAX_ATTEMPTS = 3
    settings.BACKOFFICE_TASK_RETRY_DELAY_SECONDS = 0
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": closed_port(), "timeout": 5},
        }
    }
    order = make_order("100.00")
    record = notifications.send_payment_link(order, staff_user=staff_user)

    assert run_tasks() == 3

    record.refresh_from_db()
    assert record.status == OrderEmail.Status.FAILED
    assert record.attempts == 3
    assert "ConnectionRefusedError" in record.error
    assert record.sent_at is None
    order.refresh_from_db()
    assert order.needs_attention
    assert "send_email_task failed after 3 attempts" in order.attention_reason
    last = OrderHistoryEntry.objects.filter(order=order).latest("id")
    assert last.actor_label == "worker"
    assert "ConnectionRefusedError" in last.message


def test_resend_renders_again_to_the_current_address(make_order, staff_user, run_tasks, mailoutbox):
    order = make_order("100.00")
    first = notifications.send_payment_link(order, staff_user=None)
    run_tasks()
    order.billing_email = "new@example.com"
    order.save()

    again = notifications.resend(first, staff_user=staff_user)
    run_tasks()

    assert again.pk != first.pk
    again.refresh_from_db()
    assert (again.status, again.created_by, again.recipient) == (
        OrderEmail.Status.SENT,
        staff_user,
        "new@example.com",
    )
    assert [m.to for m in mailoutbox] == [["ada@example.com"], ["new@example.com"]]
    assert OrderHistoryEntry.objects.filter(
        order=order, message="Payment link e-mailed again to new@example.com."
    ).exists()


def test_resend_of_a_payment_link_is_refused_once_paid(make_order, run_tasks):
    order = make_order("100.00")
    first = notifications.send_payment_link(order, staff_user=None)
    PaymentService.record_manual(order, amount=Decimal("100.00"))
    run_tasks()

    with pytest.raises(ValidationError, match="is paid"):
        notifications.resend(first, staff_user=None)

    assert sent_kinds(order) == [OrderEmail.Kind.PAYMENT_LINK, OrderEmail.Kind.RECEIPT]
