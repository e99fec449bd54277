"""Stripe webhook ingestion on gunicorn (4 workers, production settings) against the bench database.

``measure_webhooks(db_name, events=, concurrency=)`` runs inside a Django process
already pointed at ``db_name``. Each event is a signed ``payment_intent.succeeded``
paying in full the card attempt of a pending order made for the run (the common case:
the attendee paid), so every event changes money and settles an order. It returns one
dict: events/s, p50 and p95 latency, gunicorn workers' CPU per event (user + system, from /proc),
their PostgreSQL backends' CPU per event, and queries and commits per event (counted
in process through the test client on a few more events, since gunicorn's queries
cannot be seen from outside). For this code (not a baseline) it also handles a few
more events in process through Django's WSGI handler, with no HTTP server: their CPU
per event, and the share of it (profiled) spent in Django's database layer and psycopg.
"""

import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_bench_secret"  # noqa: S105 (a throwaway bench database)
WORKERS = 4
COUNTED_EVENTS = 5
SAMPLE_SECONDS = 0.02  # pg_stat_activity, while the timed events run
PROFILED_EVENTS = 30  # in process: half timed without the profiler, half profiled
# Statements that open or close a transaction (counted as commits, not as queries).
TRANSACTION_CONTROL = {"BEGIN", "BEGIN IMMEDIATE", "COMMIT"}
# Where Django's database layer and the driver live (for the profiled share).
DATABASE_LAYER = ("/django/db/", "/psycopg/")
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
    statements = [q for q in queries.captured_queries if q["sql"] not in TRANSACTION_CONTROL]
    return len(statements) / len(events), commits / len(events)


def wsgi_post(handler: Any, path: str, body: str) -> None:
    """POST one event through Django's WSGI handler in this process (as gunicorn calls it)."""
    data = body.encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_STRIPE_SIGNATURE": headers_for(body)["Stripe-Signature"],
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
    }
    statuses: list[str] = []
    b"".join(handler(environ, lambda status, headers: statuses.append(status)))
    assert statuses[0].startswith("200"), statuses


def in_process(events: list[tuple[str, str]]) -> tuple[float, float]:
    """CPU ms per event handled in this process (no HTTP server), and the database layer's share.

    The first half is timed without a profiler; the second is profiled (CPU
    time) for the share of it in Django's database layer and psycopg.
    """
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    timed, profiled = events[: len(events) // 2], events[len(events) // 2 :]
    started = time.process_time()
    for path, body in timed:
        wsgi_post(handler, path, body)
    cpu_ms = (time.process_time() - started) / len(timed) * 1000
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    for path, body in profiled:
        wsgi_post(handler, path, body)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(own for _, _, own, _, _ in stats.values())
    database = sum(
        own
        for (filename, _, _), (_, _, own, _, _) in stats.items()
        if any(part in filename for part in DATABASE_LAYER)
    )
    return cpu_ms, database / total if total else 0.0


def _connect(db_name: str) -> Any:
    """A psycopg connection of the bench's own to the database (not Django's)."""
    import psycopg
    from django.db import connection

    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        dbname=db_name,
        autocommit=True,
    )


class BackendSampler:
    """Sample, every ``SAMPLE_SECONDS`` while a run lasts, what the database's backends do.

    Counts the client backends running a statement and those waiting for a lock
    (``pg_stat_activity.wait_event_type = 'Lock'``: a row another transaction
    holds, e.g. the totals row every event of one conference and day updates).
    """

    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "BackendSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with _connect(self.db_name) as conn:
            while not self._stop.wait(SAMPLE_SECONDS):
                self.samples.append(
                    conn.execute(
                        "SELECT count(*) FILTER (WHERE state = 'active'), "
                        "count(*) FILTER (WHERE wait_event_type = 'Lock') "
                        "FROM pg_stat_activity WHERE datname = %s "
                        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                        [self.db_name],
                    ).fetchone()
                )

    def means(self) -> tuple[float | None, float | None]:
        """Mean backends running a statement, and mean waiting for a lock, over the samples."""
        if not self.samples:
            return None, None
        return (
            statistics.mean(active for active, _ in self.samples),
            statistics.mean(waiting for _, waiting in self.samples),
        )


def backend_cpu(db_name: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL client backend connected to the database."""
    with _connect(db_name) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            [db_name],
        ).fetchall()
    found = {}
    for (pid,) in pids:
        try:
            found[pid] = cpu_of([pid])
        except OSError:  # ended since
            continue
    return found


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
    batch = succeeded_events(COUNTED_EVENTS + PROFILED_EVENTS + warm_up + events)
    counted, profiled, batch = (
        batch[:COUNTED_EVENTS],
        batch[COUNTED_EVENTS : COUNTED_EVENTS + PROFILED_EVENTS],
        batch[COUNTED_EVENTS + PROFILED_EVENTS :],
    )
    warm, timed = batch[:warm_up], batch[warm_up:]
    queries, commits = queries_per_event(counted) if code_dir is None else (None, None)
    process_cpu, database_share = in_process(profiled) if code_dir is None else (None, None)
    connection.close()
    log = Path(tempfile.gettempdir()) / f"bench-gunicorn-{os.getpid()}.log"
    process, base = start_gunicorn(code_dir or ROOT, log)
    try:
        post_all(base, warm, concurrency)
        workers = children(process.pid)
        cpu0, backends0 = cpu_of(workers), backend_cpu(db_name)
        started = time.perf_counter()
        with BackendSampler(db_name) as sampler:
            latencies = post_all(base, timed, concurrency)
        wall = time.perf_counter() - started
        cpu = cpu_of(workers) - cpu0
        backends = sum(
            seconds - backends0.get(pid, 0.0) for pid, seconds in backend_cpu(db_name).items()
        )
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
        "postgres_cpu_ms_per_event": backends / len(timed) * 1000,
        "backends_active": sampler.means()[0],
        "backends_waiting_for_locks": sampler.means()[1],
        "in_process_cpu_ms_per_event": process_cpu,
        "database_layer_share": database_share,
        "cores": len(os.sched_getaffinity(0)),
        "queries_per_event": queries,
        "commits_per_event": commits,
    }
