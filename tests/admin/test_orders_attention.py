"""The attention flag in the admin: read-only on the order form, cleared by "Resolve attention"."""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import SUCCESS, get_messages
from django.test import Client
from django.urls import reverse

from backoffice.models import Order, OrderHistoryEntry, Payment
from backoffice.services.payment import PaymentService, apply_payment_intent
from backoffice.stripe_client import parse_payment_intent
from tests.admin.test_order_history import order_form_data
from tests.ledger_factories import make_staff
from tests.stripe_fixtures import succeeded_intent

pytestmark = pytest.mark.django_db


def change_url(order: Order) -> str:
    return reverse("admin:backoffice_order_change", args=[order.pk])


def resolve_url(order: Order) -> str:
    return reverse("admin:backoffice_order_resolve_attention", args=[order.pk])


@pytest.fixture
def overpaid(conference, make_order) -> Order:
    """A 100.00 order paid 30.00 in cash, then 100.00 by card: flagged as overpaid."""
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("30.00"), channel=Payment.Channel.CASH)
    intent = parse_payment_intent(succeeded_intent(order, "pi_over"))
    apply_payment_intent(conference, intent, Payment.Status.SUCCEEDED)
    order.refresh_from_db()
    assert order.needs_attention
    return order


@pytest.fixture
def supervisor():
    """Staff who may view and change orders (the permission "Resolve attention" needs)."""
    return make_staff("supervisor", "backoffice.view_order", "backoffice.change_order")


@pytest.fixture
def supervisor_client(supervisor) -> Client:
    client = Client()
    client.force_login(supervisor)
    return client


def test_the_button_shows_only_on_a_flagged_order(supervisor_client, overpaid, make_order):
    flagged = supervisor_client.get(change_url(overpaid)).content.decode()
    calm = make_order("100.00")
    unflagged = supervisor_client.get(change_url(calm)).content.decode()

    assert resolve_url(overpaid) in flagged
    assert resolve_url(calm) not in unflagged


def test_staff_who_may_not_change_orders_see_no_button_and_are_refused(desk_client, overpaid):
    page = desk_client.get(change_url(overpaid)).content.decode()

    response = desk_client.post(resolve_url(overpaid), {"_form_submitted": "True", "note": "x"})

    assert resolve_url(overpaid) not in page
    assert response.status_code == 403
    overpaid.refresh_from_db()
    assert overpaid.needs_attention


def test_the_dialog_shows_why_the_order_was_flagged(supervisor_client, overpaid):
    html = supervisor_client.get(resolve_url(overpaid), headers={"HX-Request": "true"})

    text = html.content.decode().replace("\u00a0", " ")
    assert "Overpaid by 30.00 USD" in text
    assert 'name="note"' in text


def test_resolving_clears_the_flag_with_the_note_in_the_timeline(
    supervisor_client, supervisor, overpaid
):
    response = supervisor_client.post(
        resolve_url(overpaid), {"_form_submitted": "True", "note": "Refunded 30.00 in cash"}
    )

    assert response.status_code == 302
    assert response["Location"] == change_url(overpaid)
    assert [(m.level, str(m)) for m in get_messages(response.wsgi_request)] == [
        (SUCCESS, f"{overpaid.reference} no longer needs attention.")
    ]
    overpaid.refresh_from_db()
    assert (overpaid.needs_attention, overpaid.attention_reason) == (False, "")
    entry = overpaid.history.last()
    assert (entry.action, entry.actor) == (OrderHistoryEntry.Action.ATTENTION_RESOLVED, supervisor)
    assert entry.message.startswith("Refunded 30.00 in cash")
    assert LogEntry.objects.get(object_id=str(overpaid.pk)).change_message == (
        "Resolved the attention flag."
    )
    page = supervisor_client.get(change_url(overpaid)).content.decode()
    assert "Attention resolved" in page and "Refunded 30.00 in cash" in page  # the timeline
    assert resolve_url(overpaid) not in page  # nothing left to resolve


def test_resolving_without_a_note_is_a_form_error(supervisor_client, overpaid):
    response = supervisor_client.post(resolve_url(overpaid), {"_form_submitted": "True"})

    assert response.status_code == 200
    assert "Say what was done about it: a note is required." in response.content.decode()
    overpaid.refresh_from_db()
    assert overpaid.needs_attention


def test_resolving_an_order_someone_just_resolved_is_refused_on_the_form(
    supervisor_client, supervisor, overpaid
):
    PaymentService.resolve_attention(overpaid, note="Done already", staff_user=supervisor)

    response = supervisor_client.post(
        resolve_url(overpaid), {"_form_submitted": "True", "note": "Me too"}
    )

    assert response.status_code == 200
    assert f"{overpaid.reference} does not need attention." in response.content.decode()
    assert overpaid.history.filter(action="attention_resolved").count() == 1


def test_the_order_form_does_not_edit_the_flag(admin_client, overpaid):
    """A forged POST turning the flag off (and the reason blank) changes neither."""
    html = admin_client.get(change_url(overpaid)).content.decode()
    assert 'name="needs_attention"' not in html
    assert 'name="attention_reason"' not in html
    data = order_form_data(html)
    data.pop("needs_attention", None)  # an unticked checkbox is not sent
    data["attention_reason"] = ""
    data["billing_name"] = "Ada King"
    reason = overpaid.attention_reason

    response = admin_client.post(change_url(overpaid), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    overpaid.refresh_from_db()
    assert overpaid.billing_name == "Ada King"  # the form was saved
    assert (overpaid.needs_attention, overpaid.attention_reason) == (True, reason)


def test_the_order_form_does_not_raise_the_flag_either(admin_client, make_order):
    order = make_order("100.00")
    data = order_form_data(admin_client.get(change_url(order)).content.decode())
    data |= {"needs_attention": "on", "attention_reason": "Set by hand"}

    assert admin_client.post(change_url(order), data).status_code == 302

    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reason) == (False, "")
