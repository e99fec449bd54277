"""E-mails in the orders admin: Email payment link (page and list), the E-mails list, Resend."""

import re
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from backoffice.dates import format_moment
from backoffice.models import OrderEmail
from backoffice.services import notifications
from backoffice.services.payment import PaymentService
from backoffice.services.staff_groups import FINANCE, FRONT_DESK, STAFF_GROUPS
from tests.ledger_factories import make_staff

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:backoffice_order_changelist")


def change_url(order) -> str:
    return reverse("admin:backoffice_order_change", args=[order.pk])


def send_url(order) -> str:
    return reverse("admin:backoffice_order_send_payment_link", args=[order.pk])


def email_page(email: OrderEmail) -> str:
    return reverse("admin:backoffice_orderemail_change", args=[email.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def mailer_client(desk_user) -> Client:
    """Desk staff who may also e-mail payment links (as the Front desk group does)."""
    desk_user.user_permissions.add(Permission.objects.get(codename="send_payment_link"))
    client = Client()
    client.force_login(desk_user)
    return client


def test_desk_and_finance_groups_may_email_payment_links():
    assert "backoffice.send_payment_link" in STAFF_GROUPS[FRONT_DESK]
    assert "backoffice.send_payment_link" in STAFF_GROUPS[FINANCE]


def test_email_payment_link_from_the_order_page(mailer_client, desk_user, make_order, run_tasks):
    order = make_order("100.00")

    page = mailer_client.get(change_url(order)).content.decode()
    response = mailer_client.post(send_url(order), {"_form_submitted": "True"})

    assert send_url(order) in page and "Email payment link" in page
    assert response.status_code == 302
    assert response["Location"] == change_url(order)
    email = OrderEmail.objects.get(order=order)
    assert (email.kind, email.status, email.created_by) == (
        OrderEmail.Kind.PAYMENT_LINK,
        OrderEmail.Status.QUEUED,
        desk_user,
    )
    assert any("on its way to ada@example.com" in m for m in messages_of(response))
    assert "ada@example.com" in LogEntry.objects.get(object_id=str(order.pk)).change_message
    run_tasks()
    page = mailer_client.get(change_url(order)).content.decode()
    assert "E-mails" in page and email.subject in page and "Sent" in page
    assert email_page(email) in page


def test_email_payment_link_refusal_is_shown_in_the_dialog(mailer_client, make_order):
    order = make_order("100.00", billing_email="")
    order.user.email = ""
    order.user.save()

    response = mailer_client.post(send_url(order), {"_form_submitted": "True"})

    assert response.status_code == 200
    assert "has no e-mail address" in response.content.decode()
    assert not OrderEmail.objects.exists()


def test_email_payment_link_needs_the_permission(desk_client, make_order):
    order = make_order("100.00")

    page = desk_client.get(change_url(order)).content.decode()
    response = desk_client.post(send_url(order), {"_form_submitted": "True"})
    bulk = desk_client.post(
        CHANGELIST, {"action": "send_payment_link_selected", "_selected_action": [order.pk]}
    )

    assert send_url(order) not in page
    assert response.status_code == 403
    assert bulk.status_code == 403
    assert not OrderEmail.objects.exists()


def test_button_is_hidden_on_a_paid_order(mailer_client, make_order):
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("100.00"))

    page = mailer_client.get(change_url(order)).content.decode()

    assert send_url(order) not in page


def test_bulk_email_payment_links_reports_the_skipped(mailer_client, make_order):
    due = make_order("100.00")
    paid = make_order("50.00")
    PaymentService.record_manual(paid, amount=Decimal("50.00"))

    response = mailer_client.post(
        CHANGELIST,
        {"action": "send_payment_link_selected", "_selected_action": [due.pk, paid.pk]},
    )

    assert response.status_code == 302
    assert list(OrderEmail.objects.values_list("order", "kind")) == [
        (due.pk, OrderEmail.Kind.PAYMENT_LINK)
    ]
    [message] = messages_of(response)
    assert "E-mailed the payment link of 1 order." in message
    assert f"{paid.reference} is paid" in message


def test_open_the_message_and_its_html_part(viewer_client, make_order, run_tasks):
    order = make_order("100.00")
    email = notifications.send_payment_link(order, staff_user=None)
    run_tasks()

    page = viewer_client.get(email_page(email))
    html = viewer_client.get(reverse("admin:backoffice_orderemail_open_html", args=[email.pk]))

    assert page.status_code == 200
    text = page.content.decode()
    assert email.subject in text and "Balance due: 100.00 USD" in text
    assert html.status_code == 200
    assert f"/pay/{order.payment_token}/" in html.content.decode()
    assert html["Content-Security-Policy"].startswith("sandbox;")


def test_resend_queues_a_new_email(mailer_client, desk_user, make_order, run_tasks, mailoutbox):
    order = make_order("100.00")
    first = notifications.send_payment_link(order, staff_user=None)
    run_tasks()
    resend_url = reverse("admin:backoffice_orderemail_resend", args=[first.pk])

    page = mailer_client.get(email_page(first)).content.decode()
    response = mailer_client.get(resend_url)
    run_tasks()

    assert resend_url in page
    again = OrderEmail.objects.exclude(pk=first.pk).get()
    assert response.status_code == 302
    assert response["Location"] == email_page(again)
    assert (again.status, again.created_by) == (OrderEmail.Status.SENT, desk_user)
    assert any("queued again for ada@example.com" in m for m in messages_of(response))
    assert len(mailoutbox) == 2


def test_the_email_page_names_who_sent_it(mailer_client, make_order, run_tasks):
    # Sent by someone other than who looks (the page's header names whoever is logged in).
    sender = make_staff("dana")
    sender.first_name, sender.last_name = "Dana", "Desk"
    sender.save()
    email = notifications.send_payment_link(make_order("100.00"), staff_user=sender)
    run_tasks()
    page = mailer_client.get(email_page(email)).content.decode()
    assert "Sent by" in page and "Dana Desk" in page
    # Django's own rendering of a read-only date field uses the site's one format.
    email.refresh_from_db()
    assert format_moment(email.queued_at) in page
    assert re.search(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d UTC", page)


def test_resend_needs_the_permission(viewer_client, make_order):
    order = make_order("100.00")
    first = notifications.send_payment_link(order, staff_user=None)
    resend_url = reverse("admin:backoffice_orderemail_resend", args=[first.pk])

    page = viewer_client.get(email_page(first)).content.decode()
    response = viewer_client.get(resend_url)

    assert resend_url not in page
    assert response.status_code == 403
    assert OrderEmail.objects.count() == 1


def test_resend_refusal_is_a_message(mailer_client, make_order, run_tasks):
    order = make_order("100.00")
    first = notifications.send_payment_link(order, staff_user=None)
    PaymentService.record_manual(order, amount=Decimal("100.00"))
    run_tasks()

    response = mailer_client.get(
        reverse("admin:backoffice_orderemail_resend", args=[first.pk]), follow=True
    )

    assert any("is paid" in m for m in messages_of(response))
    assert OrderEmail.objects.filter(kind=OrderEmail.Kind.PAYMENT_LINK).count() == 1


def test_emails_are_hidden_from_staff_who_cannot_see_orders(make_order, staff_user):
    email = notifications.send_payment_link(make_order("100.00"), staff_user=None)
    client = Client()
    client.force_login(staff_user)

    assert client.get(email_page(email)).status_code == 403
