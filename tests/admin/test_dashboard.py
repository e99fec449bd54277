"""The admin index: the finance dashboard, the desk's home page, the warnings on both."""

import json
import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from backoffice.models import Payment, StripeEvent
from backoffice.services.payment import PaymentService
from backoffice.services.schedule import run_scheduled_job, tick
from backoffice.services.worker_liveness import beat
from tests.ledger_factories import make_payment, make_staff

pytestmark = pytest.mark.django_db
INDEX = reverse("admin:index")


def dashboard_html(response) -> str:
    """The dashboard block of the index page."""
    html = response.content.decode()
    start = html.index('id="finance-dashboard"')
    return html[start : html.index("</main>", start) if "</main>" in html[start:] else None]


def test_finance_sees_revenue_outstanding_and_chart(client, make_order):
    client.force_login(make_staff("fin", "backoffice.view_payment", "backoffice.view_order"))
    order = make_order("250.00")
    make_payment(order, "100.00", method=Payment.Method.STRIPE)
    make_payment(order, "40.00", method=Payment.Method.STRIPE, status=Payment.Status.REFUNDED)
    response = client.get(INDEX)
    assert response.status_code == 200
    html = dashboard_html(response)
    assert "Revenue collected" in html and "100.00 USD" in html  # net of the refund
    assert "40.00 USD" in html  # refunded
    assert "150.00 USD" in html  # outstanding on the pending order
    assert "Orders by status" in html and "Pending" in html
    canvas = re.search(r'<canvas class="chart"[^>]*data-value="([^"]*)"', html)
    assert canvas is not None
    data = json.loads(canvas.group(1).replace("&quot;", '"'))
    assert [dataset["label"] for dataset in data["datasets"]] == ["USD"]
    assert len(data["labels"]) == 30
    assert data["datasets"][0]["data"][-1] == "100.00"
    assert "<script" not in html  # no inline scripts: the chart reads its data attribute
    assert "http" not in re.sub(r'href="[^"]*"', "", html)  # nothing from elsewhere


def test_staff_without_payment_access_see_no_figures(client, make_order):
    make_payment(make_order(), "100.00")
    client.force_login(make_staff("desk", "backoffice.view_order"))
    response = client.get(INDEX)
    assert response.status_code == 200
    assert "finance-dashboard" not in response.content.decode()


def test_dashboard_query_count_does_not_grow(client, make_order):
    client.force_login(make_staff("fin", "backoffice.view_payment"))
    make_payment(make_order(), "10.00")
    with CaptureQueriesContext(connection) as few:
        client.get(INDEX)
    for index in range(20):
        make_payment(make_order(billing_email=f"x{index}@example.com"), "10.00")
    with CaptureQueriesContext(connection) as many:
        client.get(INDEX)
    assert len(many) == len(few)


def _stored_event(event_id: str, last_error: str = "") -> StripeEvent:
    """A stored Stripe event, failed when it has an error."""
    return StripeEvent.objects.create(
        stripe_event_id=event_id, type="payment_intent.succeeded", payload={}, last_error=last_error
    )


def test_failed_stripe_events_are_counted_and_linked_to_their_filtered_list(client):
    _stored_event("evt_ok")
    _stored_event("evt_bad_1", 'data.object.amount is "abc", not a whole number')
    _stored_event("evt_bad_2", "Stripe payment pi_1 names order ORD-GONE")
    client.force_login(make_staff("ops", "backoffice.view_stripeevent"))

    html = client.get(INDEX).content.decode()

    start = html.index('id="failed-stripe-events"')
    notice = html[start:].split("</div>")[0]
    assert "2 Stripe events could not be applied." in notice
    link = re.search(r'href="([^"]+)"', notice).group(1).replace("&amp;", "&")
    assert link == reverse("admin:backoffice_stripeevent_changelist") + "?error=yes"
    listed = client.get(link).content.decode()
    assert "evt_bad_1" in listed and "evt_bad_2" in listed and "evt_ok" not in listed


def test_no_failed_events_notice_when_none_failed_or_events_are_not_visible(client):
    _stored_event("evt_ok")
    client.force_login(make_staff("ops", "backoffice.view_stripeevent"))
    assert "failed-stripe-events" not in client.get(INDEX).content.decode()

    _stored_event("evt_bad", "data is missing, not an object.")
    client.force_login(make_staff("fin", "backoffice.view_payment"))
    assert "failed-stripe-events" not in client.get(INDEX).content.decode()


def test_failed_events_notice_costs_one_query_whatever_their_number(client):
    client.force_login(make_staff("ops", "backoffice.view_stripeevent", "backoffice.view_payment"))
    _stored_event("evt_bad", "data is missing, not an object.")
    with CaptureQueriesContext(connection) as few:
        client.get(INDEX)
    for index in range(20):
        _stored_event(f"evt_bad_{index}", "data is missing, not an object.")
    with CaptureQueriesContext(connection) as many:
        assert "21 Stripe events" in client.get(INDEX).content.decode()
    assert len(many) == len(few)


def test_superusers_see_the_queue_wait_and_each_scheduled_jobs_last_run(admin_client, run_tasks):
    beat("worker-1")
    tick()
    run_tasks()

    response = admin_client.get(INDEX)

    html = response.content.decode()
    section = html[html.index('id="background-work"') :]
    assert "Oldest queued task: none waiting · Workers alive: 1" in section
    assert "stripe_resync" in section and "0:15:00" in section
    assert "Checked 0 orders, 0 payments changed, 0 errors." in section
    assert "Put back 0 stuck task(s)." in section
    assert 'id="workers-down"' not in html


def test_every_staff_user_is_warned_when_queued_tasks_wait_too_long(client, make_order):
    client.force_login(make_staff("desk", "backoffice.view_order"))
    waiting = run_scheduled_job.enqueue("prune_task_results")
    DBTaskResult.objects.filter(pk=waiting.id).update(
        enqueued_at=timezone.now() - timedelta(minutes=7)
    )

    html = client.get(INDEX).content.decode()

    assert 'id="workers-down"' in html
    assert "the oldest queued task has waited 7 min" in html
    assert 'id="background-work"' not in html  # the jobs table is for those who may see it


def test_no_warning_while_the_queue_is_fresh(client):
    client.force_login(make_staff("desk", "backoffice.view_order"))
    run_scheduled_job.enqueue("prune_task_results")

    assert 'id="workers-down"' not in client.get(INDEX).content.decode()


def chart_options(html: str) -> dict:
    """The Chart.js options the daily revenue chart is drawn with."""
    canvas = re.search(r'<canvas class="chart"[^>]*data-options="([^"]*)"', html)
    assert canvas is not None
    return json.loads(unescape(canvas.group(1)))


def test_the_chart_shows_amounts_in_the_currency_on_its_y_axis(client, make_order):
    client.force_login(make_staff("fin", "backoffice.view_payment"))
    make_payment(make_order("250.00"), "100.00")

    options = chart_options(client.get(INDEX).content.decode())

    ticks = options["scales"]["y"]["ticks"]
    assert ticks["display"] is True
    assert ticks["format"] == {"style": "currency", "currency": "USD", "currencyDisplay": "code"}
    assert options["plugins"]["legend"]["display"] is False


def test_with_several_currencies_the_axis_shows_plain_amounts_and_a_legend(
    client, make_order, jpy_conference
):
    client.force_login(make_staff("fin", "backoffice.view_payment"))
    make_payment(make_order("250.00"), "100.00")
    make_payment(make_order("5000", conference=jpy_conference), "5000")

    options = chart_options(client.get(INDEX).content.decode())

    assert options["scales"]["y"]["ticks"]["display"] is True
    assert options["scales"]["y"]["ticks"]["format"] == {}
    assert options["plugins"]["legend"]["display"] is True


# --- Each role's home page -----------------------------------------------------------

DESK_PERMISSIONS = (
    "backoffice.view_order",
    "backoffice.record_manual_payment",
    "backoffice.mark_comp",
)


def section(html: str, element_id: str) -> str:
    """The part of the page from an element with this id to the next list's start."""
    start = html.index(f'id="{element_id}"')
    end = html.find('id="orders-', start + 1)
    return html[start : end if end != -1 else None]


def test_the_desk_home_lists_orders_to_comp_and_orders_with_a_balance(client, make_order):
    client.force_login(make_staff("desk", *DESK_PERMISSIONS))
    comp = make_order("0.00", billing_name="Grace Hopper")
    owing = make_order("250.00", billing_name="Alan Turing")
    PaymentService.record_manual(owing, amount=Decimal("100.00"))
    paid = make_order("80.00", billing_name="Paid Person")
    PaymentService.record_manual(paid, amount=Decimal("80.00"))

    html = client.get(INDEX).content.decode()

    to_comp = section(html, "orders-comp")
    assert "Orders to comp" in to_comp and "1 order" in to_comp
    assert reverse("admin:backoffice_order_change", args=[comp.pk]) in to_comp
    assert comp.reference in to_comp and "Grace Hopper" in to_comp
    assert owing.reference not in to_comp
    assert 'href="/admin/backoffice/order/?todo=comp"' in to_comp
    balance = section(html, "orders-balance")
    assert "Orders with a balance due" in balance and "1 order" in balance
    assert owing.reference in balance and "150.00 USD" in balance
    assert comp.reference not in balance and paid.reference not in balance
    assert 'href="/admin/backoffice/order/?todo=balance"' in balance
    assert "finance-dashboard" not in html


def test_the_desk_home_says_when_there_is_nothing_to_do(client):
    client.force_login(make_staff("desk", *DESK_PERMISSIONS))

    html = client.get(INDEX).content.decode()

    assert "No order is waiting to be comped." in section(html, "orders-comp")
    assert "No pending order owes money." in section(html, "orders-balance")
    assert "?todo=" not in html


def test_the_desk_lists_show_the_newest_eight_and_count_them_all(client, make_order):
    client.force_login(make_staff("desk", *DESK_PERMISSIONS))
    orders = [make_order("0.00", billing_email=f"c{index}@example.com") for index in range(10)]

    to_comp = section(client.get(INDEX).content.decode(), "orders-comp")

    assert "10 orders" in to_comp and "Open the full list (10 orders)" in to_comp
    shown = [order.reference for order in orders if order.reference in to_comp]
    assert shown == [order.reference for order in orders[2:]]


def test_finance_and_superusers_keep_the_dashboard_without_the_desk_lists(
    client, admin_client, make_order
):
    make_order("0.00")
    client.force_login(make_staff("fin", "backoffice.view_payment", "backoffice.view_order"))

    for html in (client.get(INDEX).content.decode(), admin_client.get(INDEX).content.decode()):
        assert 'id="finance-dashboard"' in html
        assert 'id="desk-work"' not in html


def test_the_desk_home_costs_the_same_queries_whatever_the_number_of_orders(client, make_order):
    client.force_login(make_staff("desk", *DESK_PERMISSIONS))
    make_order("0.00")
    make_order("10.00")
    with CaptureQueriesContext(connection) as few:
        client.get(INDEX)
    for index in range(12):
        make_order("0.00", billing_email=f"c{index}@example.com")
        make_order("10.00", billing_email=f"b{index}@example.com")
    with CaptureQueriesContext(connection) as many:
        client.get(INDEX)
    assert len(many) == len(few)
