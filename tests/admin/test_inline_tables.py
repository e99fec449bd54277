"""The order page's read-only inlines as plain tables: same cells, constant queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backoffice.models import Order, OrderEmail, OrderHistoryEntry, Payment
from backoffice.services.history import record_history
from tests.ledger_factories import make_payment, make_refund

pytestmark = pytest.mark.django_db

NBSP = "\u00a0"


def change_url(order: Order) -> str:
    return reverse("admin:backoffice_order_change", args=[order.pk])


def add_ledger(order: Order, payments: int, admin_user) -> None:
    """Payments (every fifth partly refunded), one history entry and one e-mail each."""
    for i in range(payments):
        payment = make_payment(
            order,
            "10.00",
            method=Payment.Method.STRIPE if i % 2 else Payment.Method.MANUAL,
            reference="" if i % 2 else f"WIRE-{i}",
            stripe_payment_intent_id=f"pi_{order.pk}_{i}" if i % 2 else "",
            created_by=None if i % 2 else admin_user,
        )
        if i % 5 == 0:
            make_refund(payment, "2.00", created_by=admin_user)
        record_history(
            order, actor=admin_user, action=OrderHistoryEntry.Action.MANUAL_PAYMENT,
            message=f"payment {i}",
        )  # fmt: skip
        OrderEmail.objects.create(
            order=order, kind=OrderEmail.Kind.RECEIPT, recipient="ada@example.com",
            from_email="desk@example.com", subject=f"Receipt {i}", text_body="Thanks",
        )  # fmt: skip


def page_queries(client, order: Order) -> tuple[str, int]:
    """The order page's HTML and how many queries it ran."""
    client.get(change_url(order))  # caches (permissions, the sidebar badge) as in real use
    with CaptureQueriesContext(connection) as queries:
        response = client.get(change_url(order))
    assert response.status_code == 200
    return response.content.decode().replace(NBSP, " "), len(queries)


def test_the_order_page_runs_the_same_queries_with_one_or_fifty_payments(
    admin_client, admin_user, make_order, settings
):
    settings.BACKOFFICE_ATTENTION_BADGE_SECONDS = 30
    small, big = make_order("10.00"), make_order("500.00")
    add_ledger(small, 1, admin_user)
    add_ledger(big, 50, admin_user)

    _, few = page_queries(admin_client, small)
    html, many = page_queries(admin_client, big)

    assert many == few
    assert html.count("WIRE-") == 25
    assert html.count(">payment 4<") == 1 and ">payment 49<" in html
    assert "Receipt 49" in html
    assert html.count("−2.00 USD") == 10  # each refund under its payment


def test_cells_show_what_the_read_only_fields_showed(admin_client, admin_user, make_order):
    order = make_order("10.00")
    payment = make_payment(order, "10.00", reference="WIRE-<b>", note="line one\nline two")
    make_refund(payment, "2.00", created_by=admin_user)

    html, _ = page_queries(admin_client, order)

    assert 'id="payments-data"' in html
    assert "WIRE-&lt;b&gt;" in html  # escaped text
    assert "Manual" in html  # a choice shows its label
    assert '<td class="field-amount_display">10.00 USD (refunded 2.00 USD)</td>' in html
