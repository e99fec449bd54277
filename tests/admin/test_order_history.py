"""The order's timeline in the admin: on the order page and on its History page, read-only.

The entries are written here through ``record_history``, as the payment services
will write them once issue10-core lands (every ledger write records one entry
under the order's lock); these tests pin how staff see them, whoever wrote them.
"""

import re
from decimal import Decimal
from html import unescape

import pytest
from django.contrib import admin
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse

from backoffice.admin.forms import new_form_key
from backoffice.models import Order, OrderHistoryEntry, Payment
from backoffice.services.history import CHECKOUT, STRIPE, record_history
from backoffice.services.payment import PaymentService
from tests.ledger_factories import make_payment

pytestmark = pytest.mark.django_db

NBSP = "\u00a0"


def change_url(order: Order) -> str:
    return reverse("admin:backoffice_order_change", args=[order.pk])


def history_url(order: Order) -> str:
    return reverse("admin:backoffice_order_history", args=[order.pk])


def page_text(response) -> str:
    """The page's HTML with non-breaking spaces as plain spaces."""
    assert response.status_code == 200
    return response.content.decode().replace(NBSP, " ")


def cell_text(cell: str) -> str:
    """A table cell's text: tags stripped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", cell).split())


def table_rows(html: str, table_id: str, columns: int = 6) -> list[list[str]]:
    """The rows of the table with that id that have ``columns`` cells, as cell texts."""
    match = re.search(rf'<table id="{table_id}".*?</table>', html, re.S)
    assert match, f"no table {table_id} on the page"
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", match.group(0), re.S):
        cells = [cell_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if len(cells) == columns:
            rows.append(cells)
    return rows


@pytest.fixture
def paid_by_card_then_desk(make_order, desk_user) -> Order:
    """An order paid half by card (a Stripe webhook) and half at the desk (the clerk "Desk")."""
    order = make_order("100.00")
    record_history(
        order,
        actor=CHECKOUT,
        action=OrderHistoryEntry.Action.PAYMENT_LINK,
        message="Card payment started",
    )
    record_history(
        order,
        actor=STRIPE,
        action=OrderHistoryEntry.Action.CARD_PAYMENT,
        amount=Decimal("60.00"),
        status_before=Order.Status.PENDING,
        status_after=Order.Status.PENDING,
        message="payment_intent.succeeded",
    )
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PAID)
    order.refresh_from_db()
    record_history(
        order,
        actor=desk_user,
        action=OrderHistoryEntry.Action.MANUAL_PAYMENT,
        amount=Decimal("40.00"),
        status_before=Order.Status.PENDING,
        message="Cash at the door",
    )
    return order


# What staff read, oldest first: who, what, amount, status change (only when it changed), details.
EXPECTED_ROWS = [
    ["checkout", "Payment link", "—", "—", "Card payment started"],
    ["Stripe", "Card payment", "60.00 USD", "—", "payment_intent.succeeded"],
    ["Desk", "Manual payment", "40.00 USD", "Pending → Paid", "Cash at the door"],
]
# The one date format with the zone named (settings: config/formats/en/formats.py).
DATE = re.compile(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d [A-Z]+")


def test_order_page_shows_the_timeline_oldest_first_with_each_actor(
    admin_client, paid_by_card_then_desk
):
    html = page_text(admin_client.get(change_url(paid_by_card_then_desk)))

    assert "Timeline" in html
    rows = table_rows(html, "history-data")
    assert [row[1:] for row in rows] == EXPECTED_ROWS
    assert all(DATE.fullmatch(row[0]) for row in rows)


def test_history_page_shows_the_timeline_beside_the_admin_log(admin_client, paid_by_card_then_desk):
    html = page_text(admin_client.get(history_url(paid_by_card_then_desk)))

    rows = table_rows(html, "order-timeline")
    assert [row[1:] for row in rows] == EXPECTED_ROWS
    assert all(DATE.fullmatch(row[0]) for row in rows)
    assert "Changes made in the admin" in html  # Django's LogEntry list is still there


def test_history_page_shows_the_admin_log_too(admin_client, desk_client, make_order):
    order = make_order("100.00")
    form = {
        "_form_submitted": "True",
        "amount": "10.00",
        "channel": "cash",
        "reference": "R-9",
        "note": "",
        "idempotency_key": new_form_key(),
    }
    desk_client.post(reverse("admin:backoffice_order_record_manual", args=[order.pk]), form)

    html = page_text(admin_client.get(history_url(order)))

    assert "Recorded manual payment of 10.00 USD (reference R-9)." in html  # the LogEntry
    # Dated and named as the timeline is: the desk user is "Desk", never "desk (Desk)".
    [row] = table_rows(html, "admin-changes", columns=3)
    assert DATE.fullmatch(row[0])
    assert row[1:] == ["Desk", "Recorded manual payment of 10.00 USD (reference R-9)."]


def test_history_page_of_an_order_without_entries_says_so(admin_client, make_order):
    html = page_text(admin_client.get(history_url(make_order())))

    assert "money or status has been recorded yet." in html
    assert 'id="order-timeline"' not in html  # no empty table


def test_history_page_needs_the_permission_to_see_the_order(client, make_order, django_user_model):
    order = make_order()
    record_history(order, actor=STRIPE, action=OrderHistoryEntry.Action.CARD_PAYMENT)
    outsider = django_user_model.objects.create_user(username="outsider", is_staff=True)
    client.force_login(outsider)

    assert client.get(history_url(order)).status_code == 403


def test_view_only_staff_see_the_timeline(viewer_client, paid_by_card_then_desk):
    html = page_text(viewer_client.get(change_url(paid_by_card_then_desk)))

    assert [row[1:] for row in table_rows(html, "history-data")] == EXPECTED_ROWS


def test_recorded_by_and_the_timeline_name_the_same_actor_the_same_way(
    admin_client, make_order, desk_user
):
    """One rendering of "who did it": the payment list, the payment inline and the timeline."""
    order = make_order("100.00")
    PaymentService.record_manual(order, amount=Decimal("10.00"), staff_user=desk_user)
    make_payment(
        order,
        "20.00",
        method=Payment.Method.STRIPE,
        stripe_payment_intent_id="pi_history_1",
    )
    record_history(order, actor=desk_user, action=OrderHistoryEntry.Action.MANUAL_PAYMENT)

    order_page = page_text(admin_client.get(change_url(order)))
    ledger = page_text(admin_client.get(reverse("admin:backoffice_payment_changelist")))

    for html in (order_page, ledger):
        cells = [cell_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]
        assert "Desk" in cells  # full name (first name "Desk"), not the username "desk"
        assert "desk" not in cells
        assert "Stripe" in cells  # the card payment was recorded by Stripe, not "—"


def test_timeline_inline_offers_no_add_change_or_delete(admin_user, paid_by_card_then_desk):
    request = RequestFactory().get("/")
    request.user = admin_user
    model_admin = admin.site._registry[Order]
    inlines = {
        type(i).__name__: i
        for i in model_admin.get_inline_instances(request, paid_by_card_then_desk)
    }
    timeline = inlines["OrderHistoryInline"]

    assert timeline.has_view_permission(request, paid_by_card_then_desk)
    assert not timeline.has_add_permission(request, paid_by_card_then_desk)
    assert not timeline.has_change_permission(request, paid_by_card_then_desk)
    assert not timeline.has_delete_permission(request, paid_by_card_then_desk)


def test_history_entries_have_no_admin_urls_to_add_change_or_delete_them(
    admin_client, paid_by_card_then_desk
):
    entry = OrderHistoryEntry.objects.filter(order=paid_by_card_then_desk).first()
    base = "/admin/backoffice/orderhistoryentry"
    urls = [f"{base}/", f"{base}/add/", f"{base}/{entry.pk}/change/", f"{base}/{entry.pk}/delete/"]

    for url in urls:
        assert admin_client.get(url).status_code in (403, 404), url
        post = admin_client.post(url, {"post": "yes", "message": "edited", "action": "other"})
        assert post.status_code in (403, 404), url
    for name in ("add", "changelist"):
        with pytest.raises(NoReverseMatch):
            reverse(f"admin:backoffice_orderhistoryentry_{name}")
    assert list(
        OrderHistoryEntry.objects.filter(order=paid_by_card_then_desk).values_list(
            "message", flat=True
        )
    ) == ["Card payment started", "payment_intent.succeeded", "Cash at the door"]


def test_no_admin_is_registered_for_history_entries(admin_user):
    """The timeline is an audit trail written by the services: it has no admin of its own.

    Registering one (even a read-only one) would give it list/change URLs; show it
    through the order instead, or change this test along with the URL test above.
    """
    assert OrderHistoryEntry not in admin.site._registry


@pytest.mark.parametrize("url", [change_url, history_url], ids=["order page", "history page"])
def test_query_count_does_not_grow_with_the_timeline(
    admin_client, make_order, django_user_model, url
):
    def page_queries(order: Order) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url(order)).status_code == 200
        return len(queries)

    def add_entries(order: Order, count: int) -> None:
        for n in range(count):
            clerk = django_user_model.objects.create_user(username=f"clerk-{count}-{n}")
            record_history(order, actor=clerk, action=OrderHistoryEntry.Action.MANUAL_PAYMENT)
            record_history(
                order,
                actor=STRIPE,
                action=OrderHistoryEntry.Action.CARD_PAYMENT,
                amount=Decimal("1.00"),
            )

    order = make_order("1000.00")
    add_entries(order, 1)
    page_queries(order)  # warm the content-type cache
    with_two = page_queries(order)
    add_entries(order, 9)
    with_twenty = page_queries(order)

    assert order.history.count() == 20
    assert with_twenty == with_two


def order_form_data(html: str) -> dict[str, str]:
    """What a browser posts when the order page's Save button is pressed unchanged."""
    data = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]*)"', tag)
        if name is None or ('type="checkbox"' in tag and not re.search(r"\schecked[\s>]", tag)):
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = unescape(value.group(1)) if value else ""
    for name, value in re.findall(
        r'<textarea[^>]*name="([^"]*)"[^>]*>(.*?)</textarea>', html, re.S
    ):
        data[name] = unescape(value.strip())
    return data


def test_saving_the_order_page_keeps_the_timeline_and_ignores_forged_entries(
    admin_client, paid_by_card_then_desk
):
    order = paid_by_card_then_desk
    data = order_form_data(admin_client.get(change_url(order)).content.decode())
    assert data["history-TOTAL_FORMS"] == "3"
    data["billing_name"] = "Ada King"
    data["history-0-message"] = "edited"  # a read-only column: not a form field
    data["history-0-DELETE"] = "on"
    data["history-TOTAL_FORMS"] = "4"  # and one entry added by hand
    data.update({"history-3-action": "other", "history-3-message": "forged", "history-3-id": ""})

    response = admin_client.post(change_url(order), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    order.refresh_from_db()
    assert order.billing_name == "Ada King"
    assert list(order.history.values_list("message", flat=True)) == [
        "Card payment started",
        "payment_intent.succeeded",
        "Cash at the door",
    ]
