"""The orders admin: list, order page, payment history and the desk actions."""

import datetime
import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backoffice.admin.forms import new_form_key
from backoffice.models import Conference, Order, Payment
from backoffice.services.payment import PaymentService
from tests.ledger_factories import make_payment, make_staff

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:backoffice_order_changelist"
NBSP = "\u00a0"  # amounts are shown with a non-breaking space before the currency


def change_url(order: Order) -> str:
    return reverse("admin:backoffice_order_change", args=[order.pk])


def record_manual_url(order: Order) -> str:
    return reverse("admin:backoffice_order_record_manual", args=[order.pk])


def mark_comp_url(order: Order) -> str:
    return reverse("admin:backoffice_order_mark_comp", args=[order.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def manual_form(
    amount: str, reference: str = "", note: str = "", *, channel: str = "cash", key: str = ""
) -> dict[str, str]:
    """POST data of the record-manual dialog form, as freshly opened (a new one-time key)."""
    return {
        "_form_submitted": "True",
        "amount": amount,
        "channel": channel,
        "reference": reference,
        "note": note,
        "idempotency_key": key or new_form_key(),
    }


# --- The list ------------------------------------------------------------------------


def test_order_list_shows_the_columns_and_amounts_with_currency(admin_client, make_order):
    order = make_order("100.00", billing_name="Grace Hopper")
    PaymentService.record_manual(order, amount=Decimal("30.00"))

    response = admin_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    html = response.content.decode().replace(NBSP, " ")
    columns = {
        "order_reference": "Reference",
        "attendee": "Attendee",
        "conference": "Conference",
        "status_label": "Status",
        "total_display": "Total",
        "paid_display": "Paid",
        "balance_display": "Balance due",
        "created": "Created",
    }
    for name, label in columns.items():
        header = re.search(rf'<th[^>]*column-{name}[ "].*?</th>', html, re.S)
        assert header, name
        assert label in header.group(0), label
    assert order.reference in html
    assert "Grace Hopper" in html
    assert "PyCon Test" in html
    assert "100.00 USD" in html
    assert "30.00 USD" in html
    assert "70.00 USD" in html
    assert "Pending" in html


def _list_query_count(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    return len(queries)


def test_order_list_query_count_does_not_grow_with_the_number_of_orders(
    admin_client, make_order, django_user_model
):
    def add_orders(n: int, start: int) -> None:
        for i in range(start, start + n):
            user = django_user_model.objects.create_user(
                username=f"buyer{i}", email=f"buyer{i}@example.com"
            )
            order = make_order("20.00", user=user)
            PaymentService.record_manual(order, amount=Decimal("5.00"))

    add_orders(3, 0)
    _list_query_count(admin_client)  # warm per-process caches (content types)
    with_three = _list_query_count(admin_client)
    add_orders(27, 3)
    with_thirty = _list_query_count(admin_client)

    assert Order.objects.count() == 30
    assert with_thirty == with_three


def test_order_list_filters_by_status_and_conference(admin_client, make_order):
    other = Conference.objects.create(name="DjangoCon", slug="djangocon")
    pending = make_order("10.00")
    paid = make_order("0.00")
    PaymentService.record_comp(paid)
    elsewhere = make_order("10.00", conference=other)

    by_status = (
        admin_client.get(reverse(CHANGELIST), {"status__exact": "paid"})
        .content.decode()
        .replace(NBSP, " ")
    )
    assert paid.reference in by_status
    assert pending.reference not in by_status

    by_conf = (
        admin_client.get(reverse(CHANGELIST), {"conference__id__exact": other.pk})
        .content.decode()
        .replace(NBSP, " ")
    )
    assert elsewhere.reference in by_conf
    assert pending.reference not in by_conf


@pytest.mark.parametrize("field", ["reference", "billing_name", "billing_email", "user_email"])
def test_order_list_search(admin_client, make_order, django_user_model, field):
    user = django_user_model.objects.create_user(username="zed", email="zed.user@example.org")
    wanted = make_order("10.00", user=user, billing_name="Zora Neale", billing_email="zora@x.org")
    other = make_order("10.00")
    query = {
        "reference": wanted.reference,
        "billing_name": "Zora Neale",
        "billing_email": "zora@x.org",
        "user_email": "zed.user@example.org",
    }[field]

    html = admin_client.get(reverse(CHANGELIST), {"q": query}).content.decode().replace(NBSP, " ")

    assert wanted.reference in html
    assert other.reference not in html


# --- The order page --------------------------------------------------------------------


def test_order_page_shows_line_items_totals_and_payment_history(
    admin_client, make_order, staff_user
):
    order = make_order("100.00")
    PaymentService.record_manual(
        order,
        amount=Decimal("40.00"),
        reference="RCPT-17",
        note="Cash at door",
        staff_user=staff_user,
    )

    response = admin_client.get(change_url(order))

    assert response.status_code == 200
    html = response.content.decode().replace(NBSP, " ")
    assert "Conference ticket" in html  # the line item
    assert "Payment history" in html
    assert "RCPT-17" in html
    assert "Cash at door" in html
    assert "Manual" in html
    assert "Succeeded" in html
    assert "40.00 USD" in html  # payment amount and paid total
    assert "60.00 USD" in html  # balance due
    assert "clerk" in html  # recorded by


# 12:30 UTC on 29 November is 13:30 in Paris (CET), the site's zone in these tests.
MOMENT = datetime.datetime(2026, 11, 29, 12, 30, tzinfo=datetime.UTC)


def test_order_list_and_page_show_dates_in_the_one_format_with_the_zone(
    admin_client, make_order, staff_user, settings
):
    settings.TIME_ZONE = "Europe/Paris"
    order = make_order("100.00")
    Order.objects.filter(pk=order.pk).update(created_at=MOMENT)
    make_payment(order, "40.00", created_by=staff_user, created_at=MOMENT)

    listed = admin_client.get(reverse(CHANGELIST)).content.decode()
    page = admin_client.get(change_url(order)).content.decode()

    # The list: the day over the time (with its zone).
    row = re.search(r"<td[^>]*field-created.*?</td>", listed, re.S).group(0)
    assert "29 Nov 2026" in row and "13:30 CET" in row
    # The order page: created, the payment's date, its timeline.
    assert page.count("29 Nov 2026, 13:30 CET") >= 2
    assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", page)  # the old 2026-11-29 13:30
    assert "p.m." not in page and "a.m." not in page


def test_order_page_names_the_attendee_account_as_people_are_named_everywhere(
    admin_client, make_order, attendee
):
    attendee.first_name, attendee.last_name = "Ada", "King"
    attendee.save()
    page = admin_client.get(change_url(make_order())).content.decode()
    field = re.search(r'>User</label>.*?<div class="readonly[^"]*">(.*?)</div>', page, re.S)[1]
    assert "Ada King" in field
    assert reverse("admin:auth_user_change", args=[attendee.pk]) in field


def test_payment_history_inline_offers_no_add_change_or_delete(admin_user, make_order):
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("40.00"))
    request = RequestFactory().get("/")
    request.user = admin_user
    model_admin = admin.site._registry[Order]
    inlines = {type(i).__name__: i for i in model_admin.get_inline_instances(request, order)}
    history = inlines["PaymentHistoryInline"]

    assert history.has_view_permission(request, order)
    assert not history.has_add_permission(request, order)
    assert not history.has_change_permission(request, order)
    assert not history.has_delete_permission(request, order)


def test_payments_cannot_be_added_changed_or_deleted_through_admin_urls(admin_client, make_order):
    order = make_order("100.00")
    payment = PaymentService.record_manual(order, amount=Decimal("40.00"), reference="R1")
    base = f"/admin/backoffice/payment/{payment.pk}"

    add = admin_client.post("/admin/backoffice/payment/add/", {"order": order.pk, "amount": "5"})
    change = admin_client.post(f"{base}/change/", {"amount": "1.00", "reference": "edited"})
    delete = admin_client.post(f"{base}/delete/", {"post": "yes"})

    assert add.status_code in (403, 404)
    assert change.status_code in (403, 404)
    assert delete.status_code in (403, 404)
    payment.refresh_from_db()
    assert payment.amount == Decimal("40.00")
    assert payment.reference == "R1"
    assert Payment.objects.count() == 1


def test_no_admin_registered_for_payment_allows_writing_it(admin_user):
    """Whoever registers a Payment admin must keep the ledger read-only."""
    request = RequestFactory().get("/")
    request.user = admin_user
    payment_admin = admin.site._registry.get(Payment)
    if payment_admin is None:
        return  # not registered: nothing can be written (URL test above sees 404)
    assert not payment_admin.has_add_permission(request)
    assert not payment_admin.has_change_permission(request)
    assert not payment_admin.has_delete_permission(request)
    assert "delete_selected" not in payment_admin.get_actions(request)


def test_orders_cannot_be_deleted_from_the_admin(admin_client, make_order):
    order = make_order("10.00")
    response = admin_client.post(
        reverse("admin:backoffice_order_delete", args=[order.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()


# --- Mark comp -------------------------------------------------------------------------


def test_bulk_mark_comp_comps_zero_orders_and_lists_each_skipped_one(desk_client, make_order):
    free_a = make_order("0.00")
    free_b = make_order("0.00")
    priced = make_order("50.00")
    already = make_order("0.00")
    PaymentService.record_comp(already)

    response = desk_client.post(
        reverse(CHANGELIST),
        {
            "action": "mark_comp_selected",
            "_selected_action": [free_a.pk, free_b.pk, priced.pk, already.pk],
        },
        follow=True,
    )

    assert response.status_code == 200
    html = response.content.decode().replace(NBSP, " ")
    assert "2 orders were marked comp." in html
    assert "2 orders were skipped" in html
    assert f"{priced.reference} has a total of 50.00 USD" in html
    assert f"{already.reference} is paid" in html
    for order in (free_a, free_b):
        order.refresh_from_db()
        assert order.status == Order.Status.PAID
        assert order.payments.get().method == Payment.Method.COMP
    priced.refresh_from_db()
    assert priced.status == Order.Status.PENDING
    assert not priced.payments.exists()
    logged = LogEntry.objects.filter(action_flag=CHANGE, object_id__in=[free_a.pk, free_b.pk])
    assert logged.count() == 2
    assert {entry.user.username for entry in logged} == {"desk"}


def test_bulk_mark_comp_reports_success_with_a_plural_aware_message(desk_client, make_order):
    order = make_order("0.00")
    response = desk_client.post(
        reverse(CHANGELIST),
        {"action": "mark_comp_selected", "_selected_action": [order.pk]},
        follow=True,
    )
    assert "1 order was marked comp." in messages_of(response)


def test_mark_comp_button_comps_the_order(desk_client, desk_user, make_order):
    order = make_order("0.00")

    page = desk_client.get(change_url(order)).content.decode().replace(NBSP, " ")
    dialog = desk_client.get(mark_comp_url(order), headers={"HX-Request": "true"})
    response = desk_client.post(mark_comp_url(order), {"_form_submitted": "True"})

    assert mark_comp_url(order) in page
    assert dialog.status_code == 200
    assert order.reference in dialog.content.decode().replace(NBSP, " ")
    assert response.status_code == 302
    assert response["Location"] == change_url(order)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    payment = order.payments.get()
    assert payment.method == Payment.Method.COMP
    assert payment.created_by == desk_user
    entry = LogEntry.objects.get(object_id=str(order.pk))
    assert entry.user == desk_user
    assert "comp" in entry.change_message.lower()
    assert any("marked comp" in m for m in messages_of(response))


def test_mark_comp_dialog_answers_htmx_with_a_redirect_header(desk_client, make_order):
    order = make_order("0.00")
    response = desk_client.post(
        mark_comp_url(order), {"_form_submitted": "True"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == change_url(order)


def test_mark_comp_button_refusal_shows_the_reason_in_the_dialog(desk_client, make_order):
    order = make_order("50.00")

    response = desk_client.post(mark_comp_url(order), {"_form_submitted": "True"})

    assert response.status_code == 200
    assert f"{order.reference} has a total of 50.00 USD" in response.content.decode().replace(
        NBSP, " "
    )
    assert not order.payments.exists()
    assert not LogEntry.objects.exists()


# --- Record manual payment -------------------------------------------------------------


def test_record_manual_dialog_prefills_the_balance_due(desk_client, make_order):
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("25.00"))

    response = desk_client.get(record_manual_url(order), headers={"HX-Request": "true"})

    html = response.content.decode().replace(NBSP, " ")
    assert response.status_code == 200
    assert 'name="amount"' in html
    assert 'value="75.00"' in html
    assert 'name="reference"' in html
    assert 'name="note"' in html


def test_record_manual_partial_then_full_payment(desk_client, desk_user, make_order):
    order = make_order("100.00")

    first = desk_client.post(record_manual_url(order), manual_form("40.00", "WIRE-1", "Bank"))

    assert first.status_code == 302
    assert first["Location"] == change_url(order)
    assert any("balance due: 60.00 USD" in m for m in messages_of(first))
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    payment = order.payments.get()
    assert (payment.amount, payment.reference, payment.note) == (Decimal("40.00"), "WIRE-1", "Bank")
    assert payment.method == Payment.Method.MANUAL
    assert payment.created_by == desk_user

    second = desk_client.post(record_manual_url(order), manual_form("60.00"))

    assert second.status_code == 302
    assert any("order is now paid" in m for m in messages_of(second))
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    entries = LogEntry.objects.filter(object_id=str(order.pk)).order_by("id")
    assert [e.change_message for e in entries] == [
        "Recorded manual payment of 40.00 USD (reference WIRE-1).",
        "Recorded manual payment of 60.00 USD.",
    ]
    assert {e.user for e in entries} == {desk_user}

    history = desk_client.get(change_url(order)).content.decode().replace(NBSP, " ")
    assert "WIRE-1" in history
    assert "60.00 USD" in history


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("150.00", "is more than the balance due of 100.00 USD"),
        ("0", "must be greater than zero"),
        ("-5", "must be greater than zero"),
        ("10.001", "at most 2 decimal places"),
        ("abc", "Enter a number."),
        ("", "This field is required."),
    ],
)
def test_record_manual_refusal_is_shown_on_the_form_and_nothing_is_saved(
    desk_client, make_order, amount, error
):
    order = make_order("100.00")

    response = desk_client.post(record_manual_url(order), manual_form(amount))

    assert response.status_code == 200
    assert error in response.content.decode().replace(NBSP, " ")
    assert not order.payments.exists()
    assert not LogEntry.objects.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


@pytest.mark.parametrize("amount", ["12345678901234567890123456789", "1e30", "10000000000.00"])
def test_record_manual_with_a_huge_amount_is_a_form_error(desk_client, make_order, amount):
    order = make_order("100.00")

    response = desk_client.post(record_manual_url(order), manual_form(amount))

    assert response.status_code == 200
    assert "Ensure that there are no more than" in response.content.decode()
    assert not order.payments.exists()


def test_record_manual_in_yen_refuses_decimals(desk_client, make_order, jpy_conference):
    order = make_order("5000", conference=jpy_conference)

    response = desk_client.post(record_manual_url(order), manual_form("100.5"))

    assert response.status_code == 200
    assert "JPY amounts have no decimal places" in response.content.decode().replace(NBSP, " ")
    assert not order.payments.exists()


def test_record_manual_on_a_paid_order_is_refused_on_the_form(desk_client, make_order):
    order = make_order("0.00")
    PaymentService.record_comp(order)

    response = desk_client.post(record_manual_url(order), manual_form("10.00"))

    assert response.status_code == 200
    assert "only be recorded for pending orders" in response.content.decode().replace(NBSP, " ")
    assert order.payments.count() == 1


def test_record_manual_from_the_list_for_one_selected_order(desk_client, desk_user, make_order):
    order = make_order("80.00")
    select = {"action": "record_manual_selected", "_selected_action": [order.pk]}

    page = desk_client.post(reverse(CHANGELIST), select)

    assert page.status_code == 200
    html = page.content.decode().replace(NBSP, " ")
    assert 'value="80.00"' in html
    assert order.reference in html

    refused = desk_client.post(reverse(CHANGELIST), {**select, **manual_form("99.00")})
    assert refused.status_code == 200
    assert "is more than the balance due of 80.00 USD" in refused.content.decode().replace(
        NBSP, " "
    )
    assert not order.payments.exists()

    done = desk_client.post(reverse(CHANGELIST), {**select, **manual_form("80.00", "CASH-9")})
    assert done.status_code == 302
    assert done["Location"] == change_url(order)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.payments.get().created_by == desk_user
    assert LogEntry.objects.filter(object_id=str(order.pk)).count() == 1


def test_record_manual_from_the_list_needs_exactly_one_order(desk_client, make_order):
    a, b = make_order("10.00"), make_order("10.00")

    response = desk_client.post(
        reverse(CHANGELIST),
        {"action": "record_manual_selected", "_selected_action": [a.pk, b.pk]},
        follow=True,
    )

    assert any("Select exactly one order" in m for m in messages_of(response))
    assert not Payment.objects.exists()


# --- Permissions -----------------------------------------------------------------------


def test_staff_without_the_permissions_see_no_action_buttons(viewer_client, make_order):
    order = make_order("0.00")

    page = viewer_client.get(change_url(order))
    listing = viewer_client.get(reverse(CHANGELIST))

    assert page.status_code == 200
    assert mark_comp_url(order) not in page.content.decode().replace(NBSP, " ")
    assert record_manual_url(order) not in page.content.decode().replace(NBSP, " ")
    assert "mark_comp_selected" not in listing.content.decode().replace(NBSP, " ")
    assert "record_manual_selected" not in listing.content.decode().replace(NBSP, " ")


def test_desk_staff_see_the_buttons_that_apply(desk_client, make_order):
    free = make_order("0.00")
    priced = make_order("10.00")

    free_page = desk_client.get(change_url(free)).content.decode().replace(NBSP, " ")
    priced_page = desk_client.get(change_url(priced)).content.decode().replace(NBSP, " ")
    listing = desk_client.get(reverse(CHANGELIST)).content.decode().replace(NBSP, " ")

    assert mark_comp_url(free) in free_page
    assert record_manual_url(priced) in priced_page
    assert mark_comp_url(priced) not in priced_page
    assert "mark_comp_selected" in listing
    assert "record_manual_selected" in listing


@pytest.mark.parametrize(
    ("url", "data"),
    [
        (mark_comp_url, {"_form_submitted": "True"}),
        (record_manual_url, manual_form("10.00")),
    ],
)
def test_crafted_detail_action_post_without_permission_is_forbidden(
    viewer_client, make_order, url, data
):
    order = make_order("0.00") if url is mark_comp_url else make_order("10.00")

    response = viewer_client.post(url(order), data)

    assert response.status_code == 403
    assert not order.payments.exists()
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("action_name", ["mark_comp_selected", "record_manual_selected"])
def test_crafted_list_action_post_without_permission_is_forbidden(
    viewer_client, make_order, action_name
):
    order = make_order("0.00")

    response = viewer_client.post(
        reverse(CHANGELIST),
        {"action": action_name, "_selected_action": [order.pk], **manual_form("1.00")},
    )

    assert response.status_code == 403
    assert not order.payments.exists()


def test_mark_comp_permission_alone_does_not_allow_recording_payments(
    desk_user, make_order, client
):
    desk_user.user_permissions.remove(
        *desk_user.user_permissions.filter(codename="record_manual_payment")
    )
    client.force_login(desk_user)
    order = make_order("10.00")

    response = client.post(record_manual_url(order), manual_form("10.00"))

    assert response.status_code == 403
    assert not order.payments.exists()


# --- Every action needs the right to see orders first (GET and POST) ----------------------


def action_only_client(*codenames: str) -> Client:
    """A staff member holding exactly the given backoffice permissions."""
    client = Client()
    client.force_login(make_staff("-".join(codenames), *(f"backoffice.{c}" for c in codenames)))
    return client


ORDER_DIALOGS = [
    pytest.param(mark_comp_url, "0.00", "mark_comp", {"_form_submitted": "True"}, id="mark_comp"),
    pytest.param(
        record_manual_url, "100.00", "record_manual_payment", manual_form("10.00"), id="manual"
    ),
]


@pytest.mark.parametrize(("url", "total", "codename", "data"), ORDER_DIALOGS)
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_an_order_dialog_needs_view_order_besides_its_own_permission(
    make_order, url, total, codename, data, htmx
):
    order = make_order(total, billing_name="Secret Attendee")
    headers = {"HX-Request": "true"} if htmx else {}
    client = action_only_client(codename)

    opened = client.get(url(order), headers=headers)
    submitted = client.post(url(order), data, headers=headers)

    for response in (opened, submitted):
        assert response.status_code == 403
        html = response.content.decode()
        assert "Secret Attendee" not in html and order.reference not in html
    assert not order.payments.exists()
    assert not LogEntry.objects.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


@pytest.mark.parametrize(("url", "total", "codename", "data"), ORDER_DIALOGS)
def test_an_order_dialog_works_with_view_order_and_its_own_permission(
    make_order, url, total, codename, data
):
    order = make_order(total, billing_name="Known Attendee")
    client = action_only_client("view_order", codename)

    opened = client.get(url(order), headers={"HX-Request": "true"})
    submitted = client.post(url(order), data)

    assert opened.status_code == 200
    assert "Known Attendee" in opened.content.decode()
    assert submitted.status_code == 302
    assert order.payments.count() == 1


@pytest.mark.parametrize(
    ("action_name", "codename"),
    [("mark_comp_selected", "mark_comp"), ("record_manual_selected", "record_manual_payment")],
)
def test_a_list_action_needs_view_order_besides_its_own_permission(
    make_order, action_name, codename
):
    order = make_order("0.00", billing_name="Secret Attendee")
    client = action_only_client(codename)
    data = {"action": action_name, "_selected_action": [order.pk]}

    opened = client.post(reverse(CHANGELIST), data)
    submitted = client.post(reverse(CHANGELIST), {**data, **manual_form("0.00")})

    for response in (opened, submitted):
        assert response.status_code == 403
        assert "Secret Attendee" not in response.content.decode()
    assert not order.payments.exists()


def test_regenerate_payment_link_dialog_is_refused_by_get_too(viewer_client, make_order):
    order = make_order("10.00", billing_name="Secret Attendee")
    url = reverse("admin:backoffice_order_regenerate_payment_link", args=[order.pk])

    response = viewer_client.get(url, headers={"HX-Request": "true"})

    assert response.status_code == 403
    assert "Secret Attendee" not in response.content.decode()


@pytest.mark.parametrize(
    ("codename", "url_name", "method"),
    [
        ("export_order", "admin:backoffice_order_export", "get"),
        ("export_order", "admin:backoffice_order_export", "post"),
        ("import_order", "admin:backoffice_order_import", "get"),
        ("import_order", "admin:backoffice_order_import", "post"),
    ],
)
def test_order_export_and_import_need_view_order_too(make_order, codename, url_name, method):
    make_order("10.00", billing_name="Secret Attendee")
    client = action_only_client(codename)
    data = {"format": "0", "resource": "0", "orderresource_attendee": "on"}

    response = getattr(client, method)(reverse(url_name), data if method == "post" else None)

    assert response.status_code == 403
    assert "Content-Disposition" not in response
    assert "Secret Attendee" not in response.content.decode()


def test_every_admin_action_needs_the_view_permission_of_its_model(rf, admin_user):
    """The rule lives in one decorator: an action declared without it fails here."""
    request = rf.get("/")
    request.user = admin_user
    checked = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "backoffice":
            continue
        unfold_actions = [
            *model_admin._get_base_actions_list(),
            *model_admin._get_base_actions_detail(),
            *model_admin._get_base_actions_row(),
            *model_admin._get_base_actions_submit_line(),
        ]
        methods = [a.method for a in unfold_actions]
        methods += [action.func for action in model_admin.get_actions(request).values()]
        for method in methods:
            name = method.__name__
            if name == "delete_selected":  # Django's own: needs delete, which implies seeing
                continue
            assert getattr(method, "requires_view_permission", False), (model.__name__, name)
            checked.append(f"{model.__name__}.{name}")
    assert {
        "Order.mark_comp",
        "Order.mark_comp_selected",
        "Order.record_manual",
        "Order.record_manual_selected",
        "Order.regenerate_payment_link",
        "Order.refund",
        "StripeEvent.reprocess",
        "StripeEvent.reprocess_selected",
    } <= set(checked)


def test_order_page_query_count_does_not_grow_with_the_payment_history(
    admin_client, make_order, staff_user
):
    def page_queries(order: Order) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(change_url(order)).status_code == 200
        return len(queries)

    order = make_order("1000.00")
    PaymentService.record_manual(order, amount=Decimal("1.00"), staff_user=staff_user)
    page_queries(order)  # warm the content-type cache
    with_one = page_queries(order)
    for _ in range(9):
        PaymentService.record_manual(order, amount=Decimal("1.00"), staff_user=staff_user)
    with_ten = page_queries(order)

    assert order.payments.count() == 10
    assert with_ten == with_one


def test_order_list_filters_orders_that_need_attention(admin_client, make_order):
    flagged = make_order("10.00", needs_attention=True, attention_reason="Overpaid by 10.00 USD")
    normal = make_order("10.00")

    html = admin_client.get(reverse(CHANGELIST), {"attention": "yes"}).content.decode()

    assert 'name="attention"' in html  # offered in the filter panel
    assert flagged.reference in html
    assert normal.reference not in html


def row_of(html: str, order: Order) -> str:
    """The list row that shows the order."""
    rows = re.findall(r"<tr[ >].*?</tr>", html, re.S)
    return next(row for row in rows if order.reference in row)


def test_a_pending_zero_total_order_reads_to_comp_in_the_list_and_on_its_page(
    admin_client, make_order
):
    free = make_order("0.00")
    owing = make_order("10.00")
    comped = make_order("0.00")
    PaymentService.record_comp(comped)

    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    page = admin_client.get(change_url(free)).content.decode()

    assert "To comp" in row_of(html, free) and "Pending" not in row_of(html, free)
    assert "Pending" in row_of(html, owing) and "To comp" not in row_of(html, owing)
    assert "Paid" in row_of(html, comped) and "To comp" not in row_of(html, comped)
    assert "To comp" in page
    assert "To comp" not in admin_client.get(change_url(owing)).content.decode()


@pytest.mark.parametrize(
    ("todo", "listed"), [("comp", {"free"}), ("balance", {"owing", "part_paid"})]
)
def test_the_desk_presets_list_orders_to_comp_or_with_a_balance_due(
    admin_client, make_order, todo, listed
):
    orders = {
        "free": make_order("0.00"),
        "owing": make_order("10.00"),
        "part_paid": make_order("50.00"),
        "paid": make_order("20.00"),
    }
    PaymentService.record_manual(orders["part_paid"], amount=Decimal("20.00"))
    PaymentService.record_manual(orders["paid"], amount=Decimal("20.00"))

    html = admin_client.get(reverse(CHANGELIST), {"todo": todo}).content.decode()

    assert 'name="todo"' in html  # offered in the filter panel
    assert {name for name, order in orders.items() if order.reference in html} == listed


@pytest.mark.parametrize("name", ["record_manual", "mark_comp"])
@pytest.mark.parametrize("object_id", ["999999", "not-a-number"])
def test_order_actions_on_a_missing_order_answer_404(desk_client, name, object_id):
    url = f"/admin/backoffice/order/{object_id}/{name}/"

    assert desk_client.get(url).status_code == 404
    assert desk_client.post(url, manual_form("1.00")).status_code == 404
    assert not Payment.objects.exists()


def test_order_list_puts_status_and_balance_due_right_after_the_reference(admin_client, make_order):
    make_order("100.00")

    html = admin_client.get(reverse(CHANGELIST)).content.decode()

    thead = re.search(r"<thead.*?</thead>", html, re.S).group(0)
    columns = re.findall(r'<th[^>]*class="[^"]*column-(\w+)', thead)
    assert columns[:3] == ["order_reference", "status_label", "balance_display"]


def test_order_page_links_the_stripe_ids_to_stripe_s_test_dashboard(admin_client, make_order):
    order = make_order("100.00")
    Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        status=Payment.Status.SUCCEEDED,
        amount=Decimal("100.00"),
        stripe_payment_intent_id="pi_3Qcard",
        stripe_charge_id="ch_3Qcard",
    )

    html = admin_client.get(change_url(order)).content.decode()

    for stripe_id, page in (("pi_3Qcard", "payments"), ("ch_3Qcard", "payments")):
        url = f"https://dashboard.stripe.com/test/{page}/{stripe_id}"
        link = re.search(rf'<a [^>]*href="{re.escape(url)}"[^>]*>{stripe_id}</a>', html)
        assert link, stripe_id
        assert 'target="_blank"' in link.group(0) and "noopener" in link.group(0)


def test_order_page_of_a_live_key_conference_links_to_the_live_dashboard(
    admin_client, make_order, conference
):
    conference.stripe_publishable_key = "pk_live_123"
    conference.save()
    order = make_order("100.00")
    Payment.objects.create(
        order=order,
        method=Payment.Method.STRIPE,
        status=Payment.Status.SUCCEEDED,
        amount=Decimal("100.00"),
        stripe_payment_intent_id="pi_3Qlive",
    )

    html = admin_client.get(change_url(order)).content.decode()

    assert 'href="https://dashboard.stripe.com/payments/pi_3Qlive"' in html
    assert "dashboard.stripe.com/test/" not in html
