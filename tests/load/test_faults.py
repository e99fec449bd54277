"""Fault scenarios of issue 9, against gunicorn (4 workers) on PostgreSQL.

One server for the module, started like the load tests' (tests/load/server.py)
but with its DATABASE_URL and STRIPE_API_BASE pointed at two TCP proxies on
127.0.0.1 that the tests switch between forwarding, refusing and hanging
(tests/fault_injection.py). Stripe's timeout and retries are the production
defaults; the webhook lock timeout is 1 s. Each scenario is its own test, bounded
in requests and by deadlines, and prints a one-line summary (shown with ``-s``
and at the end of every run by tests/load/conftest.py).
"""

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse

from backoffice.models import Conference, Order, Payment, StripeCustomer, StripeEvent
from backoffice.services.payment import PaymentService
from tests.deploy_env import shared_database_url
from tests.fault_injection import TcpProxy, proxied_url, table_locked, wait_for
from tests.load.server import (
    SKIP_REASON,
    Server,
    create_probe_table,
    load_server_env,
    report,
    start_load_server,
)
from tests.stripe_fixtures import LocalStripe, build_event

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LOCK_TIMEOUT_MS = 1000
# Every other request's lock waits (DJANGO_DB_LOCK_TIMEOUT_MS; 10 s in production).
PAGE_LOCK_TIMEOUT_MS = 4000
# /healthz answers within this while other requests are stuck on a lock (issue 11).
HEALTHZ_BOUND_SECONDS = 2.0
# A webhook may wait for the lock this long, plus this much for everything else on a
# busy 2-core machine (four workers, the test's own threads).
BUSY_SLACK_SECONDS = 4.0
WORKER_TIMEOUT_SECONDS = 30  # gunicorn.conf.py's default, which the server runs with
CARD_ORDERS = 6
SENDERS = 4
HEALTHZ_INTERVAL = 0.2
ADMIN_PASSWORD = "ops-pass-123"


@dataclass
class FaultServer:
    """The module's gunicorn and the two proxies in front of its database and Stripe."""

    server: Server
    database: TcpProxy
    stripe: TcpProxy


@pytest.fixture(scope="module")
def fault_server(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    django_db_blocker: Any,
    localstripe: LocalStripe,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FaultServer]:
    """gunicorn whose database and Stripe connections pass through switchable proxies."""
    if connection.vendor != "postgresql":
        pytest.skip(SKIP_REASON)
    static_root: Path = request.getfixturevalue("load_static_root")
    database_url = shared_database_url()
    db = urlsplit(database_url)
    stripe_api = urlsplit(localstripe.url)
    database = TcpProxy(db.hostname or "127.0.0.1", db.port or 5432)
    stripe = TcpProxy(stripe_api.hostname, stripe_api.port)
    database.forward()
    stripe.forward()
    with django_db_blocker.unblock():
        create_probe_table()
        env = load_server_env(
            static_root,
            localstripe,
            DATABASE_URL=proxied_url(database_url, database.port),
            STRIPE_API_BASE=f"http://127.0.0.1:{stripe.port}",
            STRIPE_WEBHOOK_LOCK_TIMEOUT_MS=str(LOCK_TIMEOUT_MS),
            DJANGO_DB_LOCK_TIMEOUT_MS=str(PAGE_LOCK_TIMEOUT_MS),
        )
    # Stripe's timeout and retries at their production defaults (config/settings.py).
    env.pop("STRIPE_MAX_NETWORK_RETRIES", None)
    env.pop("STRIPE_TIMEOUT_SECONDS", None)
    log = tmp_path_factory.mktemp("fault-server") / "gunicorn.log"
    try:
        with start_load_server(env, log) as server:
            yield FaultServer(server=server, database=database, stripe=stripe)
    finally:
        database.close()
        stripe.close()


@pytest.fixture
def restored(fault_server: FaultServer) -> Iterator[FaultServer]:
    """The fault server with both proxies forwarding again after the test, whatever happened."""
    yield fault_server
    fault_server.database.forward()
    fault_server.stripe.forward()


# --- What the scenarios send and count ---------------------------------------------------


@dataclass
class Outcome:
    """One request: its status (or the exception's name), headers, body and duration."""

    status: int | str
    seconds: float
    headers: dict[str, str]
    text: str


def timed(send: Callable[[], requests.Response]) -> Outcome:
    """Send one request; a timeout or dropped connection is an outcome too, not a crash."""
    started = time.monotonic()
    try:
        response = send()
    except requests.RequestException as exc:
        return Outcome(type(exc).__name__, time.monotonic() - started, {}, "")
    return Outcome(
        response.status_code, time.monotonic() - started, dict(response.headers), response.text
    )


def statuses(outcomes: list[Outcome]) -> str:
    """``503×12 200×3``: how many requests ended with each status."""
    counts = Counter(str(o.status) for o in outcomes)
    return " ".join(f"{status}×{n}" for status, n in sorted(counts.items()))


def summary(scenario: str, started: float, **groups: list[Outcome]) -> str:
    """The scenario's one-line summary: requests and status counts per group, and seconds."""
    total = sum(len(outcomes) for outcomes in groups.values())
    parts = "; ".join(
        f"{name} {statuses(outcomes)} (max {max((o.seconds for o in outcomes), default=0):.1f} s)"
        for name, outcomes in groups.items()
    )
    return f"faults/{scenario}: {total} requests; {parts}; {time.monotonic() - started:.1f} s"


def send_all(server: Server, conference: Conference, events: list[dict[str, Any]]) -> list[Outcome]:
    """POST every signed event once, from SENDERS threads."""
    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        return list(
            pool.map(
                lambda event: timed(lambda: server.post_webhook(conference, event, timeout=20)),
                events,
            )
        )


def poll_healthz(server: Server, until: Callable[[], bool], deadline: float) -> list[Outcome]:
    """GET /healthz every HEALTHZ_INTERVAL until ``until()`` or the deadline."""
    outcomes: list[Outcome] = []
    while not until() and time.monotonic() < deadline:
        outcomes.append(timed(lambda: server.get("/healthz", timeout=10)))
        time.sleep(HEALTHZ_INTERVAL)
    return outcomes


def card_payments_taken(
    localstripe: LocalStripe, make_order: Callable[..., Order], conference: Conference
) -> tuple[list[Order], list[dict[str, Any]]]:
    """Orders whose card payments Stripe has taken, and the events that will tell us so.

    Each attempt is started by ``PaymentService.initiate_payment`` (against
    localstripe) and confirmed there with a test card, as Stripe.js would; the
    ``payment_intent.succeeded`` events are built, not yet delivered.
    """
    orders, events = [], []
    for i in range(CARD_ORDERS):
        order = make_order(f"{40 + i}.00", conference=conference)
        intent_id = PaymentService.initiate_payment(order).split("_secret_")[0]
        intent = localstripe.confirm_payment_intent(intent_id)
        orders.append(order)
        events.append(build_event("payment_intent.succeeded", intent))
    return orders, events


def assert_paid_exactly_once(server: Server, orders: list[Order], events: list[dict]) -> None:
    """By SQL: each order paid, one succeeded payment each, every event processed once."""
    ids = [order.pk for order in orders]
    assert set(Order.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        Order.Status.PAID
    }
    succeeded = Counter(
        Payment.objects.filter(order__in=ids, status=Payment.Status.SUCCEEDED).values_list(
            "order_id", flat=True
        )
    )
    assert succeeded == dict.fromkeys(ids, 1)
    stored = StripeEvent.objects.filter(stripe_event_id__in=[e["id"] for e in events])
    assert stored.count() == len(events)
    assert not stored.filter(processed_at__isnull=True).exists()
    assert server.order_paid_counts(ids) == dict.fromkeys(ids, 1)


def applied(orders: list[Order]) -> dict[str, int]:
    """By SQL: how many of the orders are paid, their succeeded payments, processed events."""
    ids = [order.pk for order in orders]
    return {
        "paid orders": Order.objects.filter(pk__in=ids, status=Order.Status.PAID).count(),
        "succeeded payments": Payment.objects.filter(
            order__in=ids, status=Payment.Status.SUCCEEDED
        ).count(),
        "processed events": StripeEvent.objects.filter(processed_at__isnull=False).count(),
    }


NOTHING_APPLIED = {"paid orders": 0, "succeeded payments": 0, "processed events": 0}


# --- 1. A table locked by another connection ----------------------------------------------


@pytest.mark.parametrize(
    "table",
    [Order._meta.db_table, StripeEvent._meta.db_table, Conference._meta.db_table],
    ids=["orders", "stripe-events", "conferences"],
)
def test_webhooks_on_a_locked_table_answer_503_quickly_and_apply_once_after(
    fault_server: FaultServer,
    table: str,
    stripe_conference: Conference,
    make_order: Callable[..., Order],
    localstripe: LocalStripe,
) -> None:
    """ACCESS EXCLUSIVE on a table: 503 + Retry-After within the lock timeout, /healthz stays up."""
    server = fault_server.server
    orders, events = card_payments_taken(localstripe, make_order, stripe_conference)
    started = time.monotonic()

    with (
        table_locked(shared_database_url(), table, release_after=40),
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        sending = pool.submit(send_all, server, stripe_conference, events * 2)
        healthz = poll_healthz(server, sending.done, time.monotonic() + 45)
        locked = sending.result(timeout=60)
    while_locked = applied(orders)  # what the refused deliveries left behind
    retried = send_all(server, stripe_conference, events * 2)

    line = summary(f"locked-{table}", started, locked=locked, healthz=healthz, retried=retried)
    report(line)
    assert while_locked == NOTHING_APPLIED, line
    bound = LOCK_TIMEOUT_MS / 1000 + BUSY_SLACK_SECONDS
    assert {o.status for o in locked} == {503}, line
    assert all(o.headers.get("Retry-After") for o in locked), line
    assert max(o.seconds for o in locked) < bound, line
    assert healthz and {o.status for o in healthz} == {200}, line
    assert max(o.seconds for o in healthz) < bound, line
    assert {o.status for o in retried} == {200}, line
    assert_paid_exactly_once(server, orders, events)


def test_healthz_answers_within_2_s_while_every_other_request_waits_on_a_lock(
    fault_server: FaultServer, make_order: Callable[..., Order]
) -> None:
    """Twice as many admin pages as workers wait on a locked orders table; /healthz answers.

    With sync workers the pages would hold every worker and /healthz would wait with
    them; with gthread workers each page holds one thread. The pages give up after
    DJANGO_DB_LOCK_TIMEOUT_MS with the 503 "try again" page.
    """
    server = fault_server.server
    make_order("10.00")
    get_user_model().objects.create_superuser("ops", "ops@example.com", ADMIN_PASSWORD)
    admin = server.admin_session("ops", ADMIN_PASSWORD)
    path = reverse("admin:backoffice_order_changelist")
    stuck_pages = 2 * 4  # the fault server runs 4 workers
    started = time.monotonic()

    with (
        table_locked(shared_database_url(), Order._meta.db_table, release_after=40),
        ThreadPoolExecutor(max_workers=stuck_pages) as pool,
    ):
        pages = [
            pool.submit(timed, lambda: admin.get_path(path, timeout=30)) for _ in range(stuck_pages)
        ]
        time.sleep(0.5)  # the pages reach the lock first
        healthz = poll_healthz(
            server, lambda: all(page.done() for page in pages), time.monotonic() + 30
        )
        waited = [page.result(timeout=40) for page in pages]
    after = [timed(lambda: admin.get_path(path, timeout=20))]

    line = summary("healthz-while-locked", started, pages=waited, healthz=healthz, after=after)
    report(line)
    assert len(healthz) >= 3, line  # polled while the pages waited
    assert {o.status for o in healthz} == {200}, line
    assert max(o.seconds for o in healthz) < HEALTHZ_BOUND_SECONDS, line
    assert {o.status for o in waited} == {503}, line
    assert all(o.headers.get("Retry-After") for o in waited), line
    assert max(o.seconds for o in waited) < PAGE_LOCK_TIMEOUT_MS / 1000 + BUSY_SLACK_SECONDS, line
    assert after[0].status == 200, line


# --- 2. The database refusing connections -------------------------------------------------


def test_the_database_refusing_connections_answers_503_and_events_apply_once_after(
    restored: FaultServer,
    stripe_conference: Conference,
    make_order: Callable[..., Order],
    localstripe: LocalStripe,
) -> None:
    """Webhooks, /healthz and admin pages answer 503 (Retry-After); the site recovers by itself."""
    server = restored.server
    orders, events = card_payments_taken(localstripe, make_order, stripe_conference)
    get_user_model().objects.create_superuser("ops", "ops@example.com", ADMIN_PASSWORD)
    admin = server.admin_session("ops", ADMIN_PASSWORD)
    pages = [reverse("admin:backoffice_order_change", args=[orders[0].pk]), "/admin/"]
    before = [timed(lambda path=path: admin.get_path(path, timeout=20)) for path in pages]
    started = time.monotonic()

    restored.database.refuse()
    webhooks = send_all(server, stripe_conference, events)
    healthz = [timed(lambda: server.get("/healthz", timeout=10)) for _ in range(3)]
    admin_pages = [timed(lambda path=path: admin.get_path(path, timeout=10)) for path in pages]
    while_refused = applied(orders) | {"stored events": StripeEvent.objects.count()}
    restored.database.forward()
    recovered = wait_for(
        lambda: timed(lambda: server.get("/healthz", timeout=10)).status == 200, timeout=30
    )
    retried = send_all(server, stripe_conference, events * 2)
    after = [timed(lambda path=path: admin.get_path(path, timeout=20)) for path in pages]

    line = summary(
        "database-refused",
        started,
        webhooks=webhooks,
        healthz=healthz,
        admin=admin_pages,
        retried=retried,
        admin_after=after,
    )
    report(line)
    assert {o.status for o in before} == {200}, line
    assert {o.status for o in webhooks + healthz + admin_pages} == {503}, line
    assert all(o.headers.get("Retry-After") for o in webhooks + admin_pages), line
    assert all("cannot reach its database, or it is busy" in o.text for o in admin_pages), line
    assert while_refused == NOTHING_APPLIED | {"stored events": 0}, line
    assert recovered, line
    assert {o.status for o in retried + after} == {200}, line
    assert_paid_exactly_once(server, orders, events)


# --- 3. The Stripe stand-in stopped, and hung, during checkout ----------------------------


@pytest.mark.parametrize("fault", ["stopped", "hung"])
def test_checkout_with_stripe_down_answers_the_try_again_page_within_the_worker_timeout(
    restored: FaultServer,
    fault: str,
    stripe_conference: Conference,
    make_order: Callable[..., Order],
) -> None:
    """The pay page says "try again" (503) before gunicorn's timeout and stores nothing."""
    server = restored.server
    order = make_order("75.00", conference=stripe_conference)
    path = f"/pay/{order.payment_token}/"
    started = time.monotonic()

    if fault == "stopped":
        restored.stripe.refuse()  # nothing listens on STRIPE_API_BASE's port
    else:
        restored.stripe.hang()  # connections accepted, never answered
    down = [timed(lambda: server.get(path, timeout=WORKER_TIMEOUT_SECONDS + 15))]
    while_down = {
        "payments": Payment.objects.filter(order=order).count(),
        "stripe customers": StripeCustomer.objects.count(),
    }
    restored.stripe.forward()
    after = [timed(lambda: server.get(path, timeout=WORKER_TIMEOUT_SECONDS))]

    line = summary(f"stripe-{fault}", started, checkout=down, after=after)
    report(line)
    [page] = down
    assert page.status == 503, line
    assert int(page.headers["Retry-After"]) > 0, line
    assert "Online payment is temporarily unavailable" in page.text, line
    assert page.seconds < WORKER_TIMEOUT_SECONDS - 5, line
    assert while_down == {"payments": 0, "stripe customers": 0}, line
    assert after[0].status == 200 and "data-client-secret" in after[0].text, line
    assert Payment.objects.filter(order=order).count() == 1
