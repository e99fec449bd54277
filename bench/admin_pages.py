"""Admin list pages, their searches, and the order page with 50 payments, on the bench database.

``measure_pages(db_name)`` runs inside a Django process already pointed at
``db_name`` (``bench/run.py`` starts one per call) and returns one row per page:
``{"what", "median_ms", "queries", "slowest_sql_ms", "cpu_ms"}``.
"""

from decimal import Decimal
from urllib.parse import urlencode

from page_timing import plain_static_files, time_get

BUSY_ORDER_PAYMENTS = 50


def busy_order_id() -> int:
    """An order with at least 50 payments (added by SQL once, as the bulk builder does)."""
    from django.db import connection
    from django.db.models import Count

    from backoffice.models import Order, Payment

    busy = (
        Order.objects.annotate(n=Count("payments"))
        .filter(reference="ORD-BENCH-50", n__gte=BUSY_ORDER_PAYMENTS)
        .values_list("pk", flat=True)
        .first()
    )
    if busy is not None:
        return busy
    template = Order.objects.order_by("pk").first()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO backoffice_order
                (conference_id, user_id, status, subtotal, discount_amount, total, reference,
                 billing_name, billing_email, hold_expires_at, payment_token, needs_attention,
                 attention_reason, created_at, updated_at)
            SELECT conference_id, user_id, 'paid', 5010, 10, 5000, 'ORD-BENCH-50',
                   'Busy Attendee', 'busy@example.com', NULL, 'bench-busy-token', false, '',
                   now(), now()
            FROM backoffice_order WHERE id = %s
            RETURNING id
            """,
            [template.pk],
        )
        order_id = cursor.fetchone()[0]
    Payment.objects.bulk_create(
        Payment(
            order_id=order_id,
            method=Payment.Method.MANUAL,
            status=Payment.Status.SUCCEEDED,
            amount=Decimal(100),
            reference=f"WIRE-BUSY-{n}",
        )
        for n in range(BUSY_ORDER_PAYMENTS)
    )
    return order_id


def sample_order() -> tuple[str, str, str]:
    """A reference, a billing e-mail and a billing-name fragment of one real order."""
    from backoffice.models import Order

    order = (
        Order.objects.exclude(billing_email="")
        .filter(billing_name__startswith="Attendee")
        .order_by("pk")
        .values("reference", "billing_email", "billing_name")[1234:1235]
        .get()
    )
    # "Attendee, Nº 12345" -> "Nº 12345": a fragment from the middle of the name.
    return order["reference"], order["billing_email"], order["billing_name"].split(", ", 1)[1]


def measure_pages(db_name: str) -> list[dict]:
    """Time the admin's order and payment lists (searched and not) and a 50-payment order page."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    assert connection.settings_dict["NAME"] == db_name, connection.settings_dict["NAME"]
    reference, email, fragment = sample_order()
    order_id = busy_order_id()
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-admin"))
    orders, payments = "/admin/backoffice/order/", "/admin/backoffice/payment/"
    pages = [
        ("Orders list searched by e-mail", orders, {"q": email}),
        ("Orders list searched by reference", orders, {"q": reference}),
        ("Orders list searched by name fragment", orders, {"q": fragment}),
        ("Payments list searched by e-mail", payments, {"q": email}),
        ("Payments list, no filter", payments, {}),
        ("Order page with 50 payments", f"{orders}{order_id}/change/", {}),
    ]
    with plain_static_files():
        return [
            time_get(what, client, f"{url}?{urlencode(query)}" if query else url)
            for what, url, query in pages
        ]
