"""Stripe webhook ingestion on gunicorn (4 workers, production settings) against the bench database.

``measure_webhooks(db_name, events=, concurrency=)`` runs inside a Django process
already pointed at ``db_name``. Each event is a signed ``payment_intent.succeeded``
paying in full the card attempt of a pending order made for the run (the common case:
the attendee paid), so every event changes money and settles an order. It returns one
dict: events/s, p50 and p95 latency, gunicorn workers' CPU per event (user + system, from /proc),
and queries and commits per event (counted in process through the test client on
a few more events, since gunicorn's queries cannot be seen from outside).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_bench_secret"  # noqa: S105 (a throwaway bench database)
WORKERS = 4
COUNTED_EVENTS = 5
START_TIMEOUT = 60
REQUEST_TIMEOUT = 30


def webhook_conferences() -> dict[int, Any]:
    """Give every conference the bench's webhook secret; return them by id.

    Written without reading the old one: a reused database may hold secrets encrypted
    with another run's key (``bench/export.py`` makes one per run).
    """
    from backoffice.models import Conference

    Conference.objects.update(stripe_webhook_secret=WEBHOOK_SECRET)
    return {conference.pk: conference for conference in Conference.objects.all()}


def new_card_attempts(count: int) -> list:
    """``count`` new pending orders, each with a pending card attempt of its total (bulk SQL).

    Fresh ones for every run, shaped like bulk-built orders, so that each event pays an
    order in full, whatever earlier runs paid, and whatever the database's size.
    """
    from django.db import connection

    from backoffice.models import Payment

    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH base AS (SELECT max(id) AS top, min(id) AS low FROM backoffice_order),
            created AS (
                INSERT INTO backoffice_order
                    (conference_id, user_id, status, subtotal, discount_amount, total,
                     reference, billing_name, billing_email, hold_expires_at, payment_token,
                     needs_attention, attention_reason, created_at, updated_at)
                SELECT o.conference_id, o.user_id, 'pending', o.subtotal, o.discount_amount,
                       o.total, 'ORD-WH-' || (base.top + g), 'Webhook Attendee',
                       'webhook' || (base.top + g) || '@example.com', NULL,
                       md5('wh' || (base.top + g)) || (base.top + g), false, '', now(), now()
                FROM generate_series(1, %s) AS g
                CROSS JOIN base
                JOIN backoffice_order AS o ON o.id = base.low + g %% 1000
                RETURNING id, total
            )
            INSERT INTO backoffice_payment
                (order_id, method, status, amount, refunded_amount, stripe_payment_intent_id,
                 stripe_charge_id, reference, note, created_by_id, created_at, updated_at)
            SELECT id, 'stripe', 'pending', total, 0, 'pi_bench_' || id, '', '', '', NULL,
                   now(), now()
            FROM created
            RETURNING id
            """,
            [count],
        )
        ids = [row[0] for row in cursor.fetchall()]
    return list(Payment.objects.filter(pk__in=ids).select_related("order").order_by("pk"))


def succeeded_events(count: int) -> list[tuple[str, str]]:
    """``(path, body)`` of ``payment_intent.succeeded`` events paying pending card attempts."""
    from django.urls import reverse

    from backoffice.money import to_minor_units
    from tests.stripe_fixtures import build_event

    conferences = webhook_conferences()
    attempts = new_card_attempts(count)
    events = []
    for payment in attempts:
        order = payment.order
        conference = conferences[order.conference_id]
        minor = to_minor_units(payment.amount, conference.currency)
        intent = {
            "id": payment.stripe_payment_intent_id,
            "object": "payment_intent",
            "status": "succeeded",
            "currency": conference.currency.lower(),
            "amount": minor,
            "amount_received": minor,
            "latest_charge": f"ch_bench_{payment.pk}",
            "metadata": {"order_id": str(order.pk), "order_reference": order.reference},
        }
        path = reverse("backoffice:stripe_webhook", args=[conference.slug])
        events.append((path, json.dumps(build_event("payment_intent.succeeded", intent))))
    return events


def headers_for(body: str) -> dict[str, str]:
    """Headers Stripe sends, signed now (the signature's timestamp must be recent)."""
    from tests.stripe_fixtures import sign_payload

    return {
        "Content-Type": "application/json",
        "Stripe-Signature": sign_payload(body, WEBHOOK_SECRET),
        "Host": "testserver",
    }


def queries_per_event(events: list[tuple[str, str]]) -> tuple[float, float]:
    """Queries and commits per event, posting ``events`` through the test client."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    commits = 0
    commit = connection.commit

    def counting_commit() -> None:
        nonlocal commits
        commits += 1
        commit()

    client = Client()
    connection.commit = counting_commit
    try:
        with CaptureQueriesContext(connection) as queries:
            for path, body in events:
                response = client.post(
                    path,
                    data=body,
                    content_type="application/json",
                    headers={"Stripe-Signature": headers_for(body)["Stripe-Signature"]},
                )
                assert response.status_code == 200, response.content[:300]
    finally:
        del connection.commit
    return len(queries.captured_queries) / len(events), commits / len(events)


def children(pid: int) -> list[int]:
    """Pids of a process's direct children (Linux /proc)."""
    pids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def start_gunicorn(code_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Start gunicorn with 4 workers on a free port from ``code_dir``; wait for every worker."""
    from tests.stripe_fixtures import free_port

    port = free_port()
    env = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(WORKERS),
        "PYTHONPATH": str(code_dir),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
            cwd=code_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            healthy = requests.get(f"{base}/healthz", headers={"Host": "testserver"}, timeout=5)
            if healthy.status_code == 200 and len(children(process.pid)) >= WORKERS:
                return process, base
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def post_all(base: str, events: list[tuple[str, str]], concurrency: int) -> list[float]:
    """POST every event with ``concurrency`` clients; return each request's seconds."""

    def post(event: tuple[str, str]) -> float:
        path, body = event
        started = time.perf_counter()
        response = requests.post(
            base + path, data=body, headers=headers_for(body), timeout=REQUEST_TIMEOUT
        )
        seconds = time.perf_counter() - started
        assert response.status_code == 200, (response.status_code, response.text[:300])
        return seconds

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(post, events))


def measure_webhooks(
    db_name: str, *, events: int, concurrency: int, code_dir: Path | None = None
) -> dict:
    """Events/s, latency, worker CPU and queries per event of webhook ingestion on gunicorn."""
    from django.db import connection

    assert connection.settings_dict["NAME"] == db_name, connection.settings_dict["NAME"]
    warm_up = WORKERS * concurrency
    batch = succeeded_events(COUNTED_EVENTS + warm_up + events)
    counted, warm, timed = (
        batch[:COUNTED_EVENTS],
        batch[COUNTED_EVENTS : COUNTED_EVENTS + warm_up],
        batch[COUNTED_EVENTS + warm_up :],
    )
    queries, commits = queries_per_event(counted) if code_dir is None else (None, None)
    connection.close()
    log = Path(tempfile.gettempdir()) / f"bench-gunicorn-{os.getpid()}.log"
    process, base = start_gunicorn(code_dir or ROOT, log)
    try:
        post_all(base, warm, concurrency)
        workers = children(process.pid)
        cpu0 = cpu_of(workers)
        started = time.perf_counter()
        latencies = post_all(base, timed, concurrency)
        wall = time.perf_counter() - started
        cpu = cpu_of(workers) - cpu0
        assert sorted(children(process.pid)) == sorted(workers), "a worker restarted"
    finally:
        process.terminate()
        process.wait(timeout=30)
    latencies.sort()
    return {
        "what": "Stripe webhook ingestion, gunicorn 4 workers",
        "events": len(timed),
        "concurrency": concurrency,
        "events_per_s": len(timed) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
        "cpu_ms_per_event": cpu / len(timed) * 1000,
        "queries_per_event": queries,
        "commits_per_event": commits,
    }
