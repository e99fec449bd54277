"""Large lists: an estimate for the whole table, a capped count for filtered lists."""

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from backoffice.admin.pagination import About, AtLeast, LargeTablePaginator
from backoffice.models import Order, Payment
from tests.ledger_factories import make_payment

pytestmark = pytest.mark.django_db

PAYMENTS_URL = "/admin/backoffice/payment/"


@pytest.fixture
def orders(make_order) -> list[Order]:
    """Seven pending orders."""
    return [make_order() for _ in range(7)]


def counts_in(queries: CaptureQueriesContext, table: str = "") -> list[str]:
    """The SQL of the queries that count rows (of the table, when given)."""
    return [
        query["sql"]
        for query in queries
        if "COUNT(" in query["sql"].upper() and (not table or f'"{table}"' in query["sql"])
    ]


def test_a_filtered_list_is_counted_up_to_the_cap_and_shown_with_a_plus(orders):
    pending = Order.objects.filter(status=Order.Status.PENDING)
    with override_settings(BACKOFFICE_LIST_COUNT_CAP=3):
        paginator = LargeTablePaginator(pending, 2, page_number=1)
        with CaptureQueriesContext(connection) as queries:
            count = paginator.count

    assert count == 3 and isinstance(count, AtLeast)
    assert str(count) == "3+"
    # One query for the page's rows, one counting at most cap + 1 rows (a LIMIT subquery).
    assert len(queries) == 2
    assert "LIMIT 4" in counts_in(queries)[0]


def test_pages_past_the_capped_count_stay_reachable(orders):
    pending = Order.objects.filter(status=Order.Status.PENDING).order_by("pk")
    with override_settings(BACKOFFICE_LIST_COUNT_CAP=3):
        paginator = LargeTablePaginator(pending, 2, page_number=1)
        assert paginator.num_pages == 2
        assert list(paginator.page(4).object_list) == [orders[6]]
        assert list(paginator.page(9).object_list) == []


def test_a_page_that_ends_the_list_gives_the_exact_count_without_counting(orders):
    pending = Order.objects.filter(status=Order.Status.PENDING).order_by("pk")
    paginator = LargeTablePaginator(pending, 3, page_number=3)

    with CaptureQueriesContext(connection) as queries:
        count = paginator.count
        page = paginator.page(3)
        rows = list(page.object_list)

    assert count == 7 and type(count) is int
    assert rows == [orders[6]]
    assert len(queries) == 1 and not counts_in(queries)


def test_an_unfiltered_list_on_sqlite_is_counted_exactly_up_to_the_cap(orders):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL estimates an unfiltered list (see the test below)")
    paginator = LargeTablePaginator(Order.objects.all(), 2, page_number=1)
    assert paginator.count == 7 and type(paginator.count) is int


@pytest.mark.postgres
def test_an_unfiltered_list_on_postgresql_shows_the_tables_estimate(orders):
    if connection.vendor != "postgresql":
        pytest.skip("the estimate is PostgreSQL's (pg_class.reltuples)")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE backoffice_order")
    with override_settings(BACKOFFICE_LIST_COUNT_CAP=3):
        paginator = LargeTablePaginator(Order.objects.all(), 2, page_number=1)
        with CaptureQueriesContext(connection) as queries:
            count = paginator.count

    assert isinstance(count, About) and count == 7
    assert str(count) == "about 7"
    assert len(queries) == 1 and not counts_in(queries)
    assert "pg_class" in queries[0]["sql"]


@pytest.mark.postgres
def test_a_small_table_is_counted_exactly_even_on_postgresql(orders):
    if connection.vendor != "postgresql":
        pytest.skip("the estimate is PostgreSQL's (pg_class.reltuples)")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE backoffice_order")
    paginator = LargeTablePaginator(Order.objects.all(), 2, page_number=1)
    assert paginator.count == 7 and type(paginator.count) is int


def test_the_payments_list_shows_a_capped_count_and_pages_on(admin_client, make_order):
    order = make_order()
    Payment.objects.bulk_create(
        Payment(order=order, method=Payment.Method.MANUAL, status=Payment.Status.SUCCEEDED,
                amount=1, reference=f"CASH-{i}")
        for i in range(120)
    )  # fmt: skip
    with override_settings(BACKOFFICE_LIST_COUNT_CAP=60):
        first = admin_client.get(PAYMENTS_URL, {"status__exact": "succeeded"})
        third = admin_client.get(PAYMENTS_URL, {"status__exact": "succeeded", "p": "3"})

    assert first.status_code == 200
    changelist = first.context["cl"]
    assert str(changelist.result_count) == "60+"
    assert len(changelist.result_list) == 50
    assert "60+" in first.content.decode()
    assert 'href="?p=2&amp;status__exact=succeeded"' in first.content.decode()
    # Page 3 lies past the counted rows and still shows the last 20 payments.
    assert third.status_code == 200
    assert len(third.context["cl"].result_list) == 20


def test_a_search_with_few_results_runs_one_query_for_the_count_and_rows(
    admin_client, make_order, settings
):
    settings.BACKOFFICE_ATTENTION_BADGE_SECONDS = 30
    order = make_order()
    make_payment(order, reference="WIRE-1")
    make_payment(order, reference="WIRE-2")
    make_payment(make_order(), reference="CASH-3")

    admin_client.get(PAYMENTS_URL)  # the sidebar's attention badge counts once, then is cached
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(PAYMENTS_URL, {"q": "WIRE"})

    assert response.status_code == 200
    assert {p.reference for p in response.context["cl"].result_list} == {"WIRE-1", "WIRE-2"}
    assert response.context["cl"].result_count == 2
    assert not counts_in(queries, "backoffice_payment")
    payment_selects = [q for q in queries if q["sql"].startswith('SELECT "backoffice_payment"')]
    assert len(payment_selects) == 1
