"""Benchmark: Stripe webhook ingestion under gunicorn with 4 workers (PostgreSQL).

Usage (PostgreSQL on 127.0.0.1:5432, user postgres, trust auth):

    .venv/bin/python bench/webhooks.py                       # 2,000 events, 3 runs
    .venv/bin/python bench/webhooks.py --events 500 --runs 1
    .venv/bin/python bench/webhooks.py --compare /tmp/fp-before   # same run, another checkout

Each run posts ``events`` signed ``payment_intent.succeeded`` events, each for
its own pending order with a pending card attempt (the common case: the
attendee just paid), from ``concurrency`` client threads to gunicorn (4 gthread
workers, production settings, keep-alive off as deployed). It reports events
per second, p50/p95 latency, the gunicorn workers' CPU per event (user + system
from /proc, whatever the machine's load) and the queries of one event (counted
in a child process with ``CaptureQueriesContext``, outside gunicorn).

``measure_webhooks(db_name, ...)`` is what a runner calls: ``db_name`` must be
a migrated database (e.g. the one ``bench/export.py --keep`` built); the
bench adds a conference and its orders to it. ``repo_dir`` runs another
checkout's code (its gunicorn and settings) against the same database.

Not part of the tests: it needs PostgreSQL and takes a minute.
"""

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
BENCH_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
WEBHOOK_SECRET = "whsec_bench_only"  # noqa: S105 (a throwaway bench database)
HOST = "bench.example.com"
WORKERS = 4


def server_env(db_name: str, repo_dir: Path) -> dict[str, str]:
    """Production settings against the benchmark database, for gunicorn and the set-up child."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "BACKOFFICE_", "GUNICORN_"))
    }
    return {
        **env,
        "DATABASE_URL": f"{PG}/{db_name}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": "bench-only-secret-key",
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": HOST,
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        "GUNICORN_LOG_LEVEL": "warning",
        "BACKOFFICE_ENCRYPTION_KEYS": os.environ.get("BACKOFFICE_ENCRYPTION_KEYS", BENCH_KEY),
        "BACKOFFICE_SITE_URL": f"https://{HOST}",
        "PYTHONPATH": str(repo_dir),
    }


def sign(payload: str, secret: str) -> str:
    """A Stripe-Signature header, as tests/stripe_fixtures.sign_payload makes it."""
    timestamp = int(time.time())
    signature = hmac.new(
        secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={signature}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker_pids(master: int) -> list[int]:
    """The gunicorn master's worker processes."""
    pids: list[int] = []
    for task in Path(f"/proc/{master}/task").glob("*"):
        with contextlib.suppress(OSError):  # a thread that just ended
            pids.extend(int(p) for p in (task / "children").read_text().split())
    return pids


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _prepare(db_name: str, events: int, repo_dir: Path, tag: str) -> dict:
    """Create the conference and one pending order per event (child process); its report."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child-setup", "--db", db_name, "--events", str(events)]
        + ["--tag", tag],
        env=server_env(db_name, repo_dir),
        cwd=repo_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        raise SystemExit("webhook bench set-up failed")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure_webhooks(
    db_name: str,
    *,
    events: int = 2000,
    concurrency: int = 8,
    repo_dir: Path = ROOT,
) -> dict:
    """Post ``events`` signed events to gunicorn (4 workers) on ``db_name``; the measurements.

    Returns events/s, p50 and p95 latency (ms), the workers' CPU ms per event,
    queries per event (one event through the test client in a child process)
    and the count of responses that were not 200.
    """
    import requests

    tag = f"r{os.getpid()}x{time.monotonic_ns() % 10**9}"
    prepared = _prepare(db_name, events, repo_dir, tag)
    bodies = [(body, sign(body, WEBHOOK_SECRET)) for body in prepared["bodies"]]
    url_path = prepared["path"]
    port = free_port()
    env = {
        **server_env(db_name, repo_dir),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(WORKERS),
    }
    log = Path(tempfile.gettempdir()) / f"bench-webhooks-{os.getpid()}.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
            cwd=repo_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}{url_path}"
        headers = {"Host": HOST, "Content-Type": "application/json"}
        deadline = time.monotonic() + 30
        while True:  # up, and every worker imported the project
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if len(_worker_pids(server.pid)) == WORKERS:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not start:\n{log.read_text()}")
            time.sleep(0.2)
        # Warm every worker (imports, connections) with the first events.
        warm, timed = bodies[: WORKERS * 4], bodies[WORKERS * 4 :]
        for body, signature in warm:
            requests.post(
                url, data=body, headers={**headers, "Stripe-Signature": signature}, timeout=30
            )
        latencies: list[float] = []
        failures = 0
        lock = threading.Lock()

        def post(item: tuple[str, str]) -> None:
            nonlocal failures
            body, signature = item
            started = time.perf_counter()
            response = requests.post(
                url, data=body, headers={**headers, "Stripe-Signature": signature}, timeout=30
            )
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                failures += response.status_code != 200

        workers = _worker_pids(server.pid)
        cpu_before = _cpu_seconds(workers)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(post, timed))
        wall = time.perf_counter() - started
        cpu = _cpu_seconds(workers) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    return {
        "events": len(timed),
        "concurrency": concurrency,
        "seconds": wall,
        "events_per_s": len(timed) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "worker_cpu_ms_per_event": 1000 * cpu / len(timed),
        "queries_per_event": prepared["queries"],
        "not_200": failures,
    }


# --- Child: the conference, its orders and one event's queries --------------------------


def child_setup(events: int, tag: str) -> None:
    """Create one pending order with a pending card attempt per event; print the bodies."""
    import django

    django.setup()
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from backoffice.models import Conference, Order, Payment

    conference, _ = Conference.objects.get_or_create(
        slug="bench-webhooks",
        defaults={
            "name": "Webhook bench",
            "currency": "USD",
            "stripe_publishable_key": "pk_test_bench",
            "stripe_secret_key": "sk_test_bench",
            "stripe_webhook_secret": WEBHOOK_SECRET,
        },
    )
    user, _ = get_user_model().objects.get_or_create(
        username="bench-webhooks", defaults={"email": "bench@example.com"}
    )
    total = Decimal("100.00")
    orders = Order.objects.bulk_create(
        Order(
            conference=conference,
            user=user,
            subtotal=total,
            total=total,
            billing_name=f"Attendee {tag} {index}",
            billing_email=f"a{index}@example.com",
        )
        for index in range(events + 1)
    )
    Payment.objects.bulk_create(
        Payment(
            order=order,
            method=Payment.Method.STRIPE,
            status=Payment.Status.PENDING,
            amount=total,
            stripe_payment_intent_id=f"pi_{tag}_{index}",
        )
        for index, order in enumerate(orders)
    )
    bodies = []
    for index, order in enumerate(orders):
        intent = f"pi_{tag}_{index}"
        event = {
            "id": f"evt_{tag}_{index}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "livemode": False,
            "data": {
                "object": {
                    "id": intent,
                    "object": "payment_intent",
                    "status": "succeeded",
                    "currency": "usd",
                    "amount": 10000,
                    "amount_received": 10000,
                    "latest_charge": f"ch_{tag}_{index}",
                    "metadata": {"order_id": str(order.pk), "order_reference": order.reference},
                }
            },
        }
        bodies.append(json.dumps(event))
    path = reverse("backoffice:stripe_webhook", args=[conference.slug])
    # The last order's event counts the queries of one event (outside gunicorn).
    body = bodies.pop()
    client = Client(HTTP_HOST=HOST)
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            path, data=body, content_type="application/json",
            headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)},
        )  # fmt: skip
    assert response.status_code == 200, response.content
    control = {"BEGIN", "COMMIT", "BEGIN IMMEDIATE"}
    counted = [q["sql"] for q in queries.captured_queries if q["sql"] not in control]
    print(json.dumps({"bodies": bodies, "path": path, "queries": len(counted)}))


def main() -> None:
    """Build a database (or use one), measure this checkout (and another), print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db-name", help="use this existing, migrated database")
    parser.add_argument("--compare", type=Path, help="another checkout to measure in the same run")
    parser.add_argument("--child-setup", action="store_true")
    parser.add_argument("--db")
    parser.add_argument("--tag")
    args = parser.parse_args()
    if args.child_setup:
        child_setup(args.events, args.tag)
        return
    import psycopg

    db = args.db_name or f"bo_bench_wh_{os.getpid()}"
    if not args.db_name:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {db}")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            env=server_env(db, ROOT),
            cwd=ROOT,
            check=True,
        )
    checkouts = [("this checkout", ROOT)]
    if args.compare:
        checkouts.insert(0, (f"{args.compare}", args.compare))
    try:
        results: dict[str, list[dict]] = {name: [] for name, _ in checkouts}
        for _ in range(args.runs):  # interleaved, so load from elsewhere weighs on both
            for name, repo in checkouts:
                results[name].append(
                    measure_webhooks(
                        db, events=args.events, concurrency=args.concurrency, repo_dir=repo
                    )
                )
    finally:
        if not args.db_name:
            with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    print(
        f"\nStripe webhooks, gunicorn {WORKERS} workers, {args.events:,} events per run, "
        f"{args.concurrency} client threads, median of {args.runs} interleaved runs"
    )
    print(
        f"{'code':<32} {'events/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'CPU ms/event':>13} "
        f"{'queries':>8} {'not 200':>8}"
    )
    medians = {}
    for name, runs in results.items():
        med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        medians[name] = med
        print(
            f"{name:<32} {med['events_per_s']:>9.0f} {med['p50_ms']:>7.0f} {med['p95_ms']:>7.0f} "
            f"{med['worker_cpu_ms_per_event']:>13.1f} {med['queries_per_event']:>8.0f} "
            f"{max(run['not_200'] for run in runs):>8}"
        )
    if args.compare:
        before, after = medians[str(args.compare)], medians["this checkout"]
        print(f"events/s ratio: {after['events_per_s'] / before['events_per_s']:.2f}×")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
