"""Refunds ledger admin: read-only list, filters, search, permission; refunds on the order page.

Refund rows are built with ``tests.ledger_factories.make_refund`` (which keeps
``Payment.refunded_amount`` equal to the succeeded refunds): ``PaymentService.refund``
comes with branch issue10-core.
"""

import datetime
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backoffice.models import Conference, Payment, Refund
from tests.ledger_factories import make_payment, make_refund, make_staff

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
LIST_URL = reverse("admin:backoffice_refund_changelist")
NBSP = "\u00a0"


@pytest.fixture
def finance(client):
    """A logged-in staff member who may view refunds."""
    client.force_login(make_staff("finance", "backoffice.view_refund"))
    return client


def listed(response) -> list[int]:
    """Primary keys of the refunds on a list page, in order."""
    assert response.status_code == 200
    return [refund.pk for refund in response.context["cl"].result_list]


def test_list_shows_the_refund_columns(finance, make_order, staff_user):
    order = make_order("80.00")
    payment = make_payment(order, "80.00", channel=Payment.Channel.CASH)
    make_refund(
        payment,
        "30.00",
        reason=Refund.Reason.EVENT_CANCELLED,
        channel=Payment.Channel.BANK_TRANSFER,
        created_by=staff_user,
    )
    html = finance.get(LIST_URL).content.decode().replace(NBSP, " ")
    for text in (order.reference, f"Manual #{payment.pk}", "30.00 USD", "Succeeded",
                 "Event cancelled", "Bank transfer", "clerk"):  # fmt: skip
        assert text in html


def test_list_query_count_does_not_grow_with_rows(finance, make_order, staff_user):
    make_refund(make_payment(make_order()), created_by=staff_user)
    with CaptureQueriesContext(connection) as few:
        finance.get(LIST_URL)
    for index in range(20):
        make_refund(
            make_payment(make_order(billing_email=f"r{index}@example.com")),
            created_by=staff_user if index % 2 else None,
        )
    with CaptureQueriesContext(connection) as many:
        response = finance.get(LIST_URL)
    assert len(listed(response)) == 21
    assert len(many) == len(few)


def test_nobody_can_add_change_or_delete_refunds(client, make_order):
    refund = make_refund(make_payment(make_order()), "4.00")
    client.force_login(make_staff("root", superuser=True))
    assert client.get(reverse("admin:backoffice_refund_add")).status_code == 403
    change = reverse("admin:backoffice_refund_change", args=[refund.pk])
    assert client.post(change, {"amount": "1.00"}).status_code in (302, 403)
    delete = reverse("admin:backoffice_refund_delete", args=[refund.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    refund.refresh_from_db()
    assert refund.amount == Decimal("4.00")


def test_the_list_needs_the_view_refund_permission(client, make_order):
    make_refund(make_payment(make_order()))
    client.force_login(make_staff("desk", "backoffice.view_order", "backoffice.view_payment"))
    assert client.get(LIST_URL).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert LIST_URL not in index  # no sidebar link either

    client.force_login(make_staff("finance", "backoffice.view_refund"))
    assert client.get(LIST_URL).status_code == 200
    assert LIST_URL in client.get(reverse("admin:index")).content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=failed", {"failed"}),
        ("reason__exact=duplicate", {"duplicate"}),
        ("channel__exact=cash", {"cash"}),
    ],
)
def test_filters_by_status_reason_and_channel(finance, make_order, query, expected):
    payment = make_payment(make_order("100.00"), "100.00")
    rows = {
        "failed": make_refund(payment, "1.00", status=Refund.Status.FAILED),
        "duplicate": make_refund(payment, "2.00", reason=Refund.Reason.DUPLICATE),
        "cash": make_refund(payment, "3.00", channel=Payment.Channel.CASH),
    }
    found = set(listed(finance.get(f"{LIST_URL}?{query}")))
    assert found == {rows[name].pk for name in expected}


def test_filters_by_conference(finance, make_order):
    other = Conference.objects.create(name="DjangoCon", slug="djangocon", currency="EUR")
    mine = make_refund(make_payment(make_order()))
    make_refund(make_payment(make_order(conference=other)))
    response = finance.get(
        f"{LIST_URL}?payment__order__conference__id__exact={mine.payment.order.conference_id}"
    )
    assert listed(response) == [mine.pk]


@override_settings(TIME_ZONE="Europe/Paris")
def test_date_filter_includes_whole_days_in_the_site_time_zone(finance, make_order):
    payment = make_payment(make_order("100.00"), "100.00")
    at = datetime.datetime
    first = make_refund(payment, "1.00", created_at=at(2026, 9, 30, 22, 0, tzinfo=UTC))
    last = make_refund(payment, "2.00", created_at=at(2026, 10, 31, 22, 59, tzinfo=UTC))
    make_refund(payment, "3.00", created_at=at(2026, 9, 30, 21, 59, tzinfo=UTC))
    make_refund(payment, "4.00", created_at=at(2026, 10, 31, 23, 0, tzinfo=UTC))
    response = finance.get(f"{LIST_URL}?created_at_from=2026-10-01&created_at_to=2026-10-31")
    assert listed(response) == [last.pk, first.pk]


def test_search_by_order_reference_stripe_refund_id_and_email(
    finance, make_order, attendee, staff_user
):
    grace_order = make_order(billing_email="grace@example.com", user=staff_user)
    wanted = make_refund(
        make_payment(grace_order, method=Payment.Method.STRIPE),
        stripe_refund_id="re_wanted",
    )
    other = make_refund(make_payment(make_order(billing_email="")), stripe_refund_id="re_other")
    assert listed(finance.get(LIST_URL, {"q": wanted.payment.order.reference.lower()})) == [
        wanted.pk
    ]
    assert listed(finance.get(LIST_URL, {"q": "re_wanted"})) == [wanted.pk]
    assert listed(finance.get(LIST_URL, {"q": "GRACE@example.com"})) == [wanted.pk]
    # An order without billing email is found by its attendee's account e-mail.
    assert listed(finance.get(LIST_URL, {"q": attendee.email})) == [other.pk]


# --- The order page ---------------------------------------------------------------------


def test_order_page_shows_each_refund_in_the_payment_history(admin_client, make_order, staff_user):
    order = make_order("100.00")
    payment = make_payment(order, "100.00")
    make_refund(
        payment,
        "30.00",
        reason=Refund.Reason.EVENT_CANCELLED,
        channel=Payment.Channel.CASH,
        created_by=staff_user,
    )
    make_refund(payment, "5.00", status=Refund.Status.FAILED, reason=Refund.Reason.DUPLICATE)

    html = admin_client.get(reverse("admin:backoffice_order_change", args=[order.pk]))
    html = html.content.decode().replace(NBSP, " ")

    assert "−30.00 USD" in html and "Event cancelled · Cash" in html and "clerk" in html
    assert "−5.00 USD" in html and "Failed" in html and "Duplicate" in html
    assert "(refunded 30.00 USD)" in html  # refunded_amount: succeeded refunds only


def test_order_page_query_count_does_not_grow_with_refunds(admin_client, make_order, staff_user):
    order = make_order("1000.00")
    url = reverse("admin:backoffice_order_change", args=[order.pk])
    payments = [make_payment(order, "100.00") for _ in range(3)]
    make_refund(payments[0], "1.00", created_by=staff_user)
    admin_client.get(url)  # warm caches
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    for payment in payments:
        for _ in range(3):
            make_refund(payment, "1.00", created_by=staff_user)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200
    assert len(many) == len(few)


def test_list_links_a_stripe_refund_to_stripe_s_dashboard(finance, make_order):
    payment = make_payment(
        make_order("80.00"), "80.00", method=Payment.Method.STRIPE, stripe_payment_intent_id="pi_r"
    )
    make_refund(payment, "30.00", stripe_refund_id="re_3Qrefund")

    html = finance.get(LIST_URL).content.decode()

    url = "https://dashboard.stripe.com/test/refunds/re_3Qrefund"
    link = re.search(rf'<a [^>]*href="{re.escape(url)}"[^>]*>', html)
    assert link
    assert 'target="_blank"' in link.group(0)
