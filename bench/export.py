"""Benchmark: exporting the payments ledger at 400,000 orders / 1,000,000 payments.

Usage (PostgreSQL on 127.0.0.1:5432, user postgres, trust auth):

    .venv/bin/python bench/export.py                 # full size
    .venv/bin/python bench/export.py --orders 40000 --payments 100000   # quick look
    .venv/bin/python bench/export.py --xlsx          # only the XLSX paths (below)

``--xlsx`` measures the two XLSX paths only: the admin's in-request export
(the library's in-memory workbook, on a ``--xlsx-sample`` of rows, giving
the rows per second that ``BACKOFFICE_XLSX_IN_REQUEST_MAX_ROWS`` is chosen
from) and the background export of the whole ledger, written by a real
``manage.py db_worker --batch`` process whose peak RSS (``ru_maxrss`` of
the waited-for child) and wall clock are reported, beside an idle worker's.

It creates its own throwaway database (``bo_bench_<pid>``), migrates it,
fills it with bulk SQL, measures every path in a fresh child process (so the
peak RSS is that path's own) and drops the database at the end (``--keep``
keeps it). Printed table: rows, median seconds of 3 runs, rows/s, peak RSS of
the child process, and the ratio to PostgreSQL's own COPY of the same columns
measured in the same run; then the admin list pages (median of 5 requests
through Django's test client) with their query counts.

Not part of ``make test``: it takes a minute or two and needs PostgreSQL.
"""

import argparse
import base64
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
RUNS = 3
# The benchmark database holds no secrets; its processes still need a key to start.
BENCH_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
PAGE_RUNS = 5


# --- Parent: build the database, run the children, print the table ---------------------


def child_env(db: str) -> dict[str, str]:
    """Environment for Django processes against the benchmark database."""
    return {
        **os.environ,
        "DATABASE_URL": f"{PG}/{db}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret-key"),
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_LOG_LEVEL": "WARNING",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "BACKOFFICE_ENCRYPTION_KEYS": os.environ.get("BACKOFFICE_ENCRYPTION_KEYS", BENCH_KEY),
        "PYTHONPATH": str(ROOT),
        "DJANGO_MEDIA_ROOT": str(Path(tempfile.gettempdir()) / f"bench-media-{db}"),
    }


def admin_sql(db: str, sql: str) -> None:
    """Run one statement on the maintenance database (CREATE/DROP DATABASE)."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def populate(db: str, orders: int, payments: int) -> float:
    """Fill the database with bulk SQL; return the seconds it took."""
    import psycopg

    users = max(orders // 4, 1)
    started = time.perf_counter()
    with psycopg.connect(f"{PG}/{db}", autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO backoffice_conference
                (name, slug, currency, stripe_publishable_key, stripe_secret_key,
                 stripe_webhook_secret, organiser_name, organiser_address, contact_email,
                 reply_to_email)
            VALUES ('PyCon US', 'pycon-us', 'USD', '', '', '', '', '', '', ''),
                   ('EuroPython', 'europython', 'EUR', '', '', '', '', '', '', ''),
                   ('PyCon JP', 'pycon-jp', 'JPY', '', '', '', '', '', '', '')
            """
        )
        conn.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                                   email, is_staff, is_active, date_joined)
            VALUES ('!', true, 'bench-admin', 'Bench', 'Admin', 'admin@example.com',
                    true, true, now())
            """
        )
        conn.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                                   email, is_staff, is_active, date_joined)
            SELECT '!', false, 'user' || g, 'Fïrst' || g, 'Last' || g,
                   'user' || g || '@example.com', false, true, now()
            FROM generate_series(1, %s) AS g
            """,
            [users],
        )
        conn.execute(
            """
            INSERT INTO backoffice_order
                (conference_id, user_id, status, subtotal, discount_amount, total, reference,
                 billing_name, billing_email, hold_expires_at, payment_token, needs_attention,
                 attention_reason, created_at, updated_at)
            SELECT c.id, u0.id + 1 + (g %% %(users)s),
                   (ARRAY['pending','paid','paid','cancelled','refunded',
                          'partially_refunded'])[1 + g %% 6],
                   a.amount + 10, 10, a.amount, 'ORD-' || upper(lpad(to_hex(g), 8, '0')),
                   CASE WHEN g %% 7 = 0 THEN '' WHEN g %% 11 = 0 THEN '=cmd|calc' || g
                        ELSE 'Attendee, Nº ' || g END,
                   CASE WHEN g %% 5 = 0 THEN '' ELSE 'billing' || g || '@example.com' END,
                   NULL, md5(g::text) || g, false, '',
                   now() - (g %% 400) * interval '1 day' - (g %% 86400) * interval '1 second',
                   now()
            FROM generate_series(1, %(orders)s) AS g
            CROSS JOIN LATERAL (SELECT min(id) AS id FROM auth_user) AS u0
            JOIN backoffice_conference AS c
              ON c.slug = (ARRAY['pycon-us','europython','pycon-jp'])[1 + g %% 3]
            CROSS JOIN LATERAL (
                SELECT CASE WHEN c.currency = 'JPY' THEN (5000 + g %% 20 * 1000)::numeric(12,2)
                            ELSE (50 + (g %% 400) + (g %% 100) / 100.0)::numeric(12,2) END
                       AS amount
            ) AS a
            """,
            {"orders": orders, "users": users},
        )
        conn.execute(
            """
            INSERT INTO backoffice_payment
                (order_id, method, status, amount, refunded_amount, stripe_payment_intent_id,
                 stripe_charge_id, reference, note, created_by_id, created_at, updated_at)
            SELECT o0.id + (g %% %(orders)s),
                   m.method,
                   (ARRAY['succeeded','succeeded','succeeded','failed','refunded','pending',
                          'canceled','processing'])[1 + g %% 8],
                   (20 + (g %% 500) + (g %% 100) / 100.0)::numeric(12,2),
                   CASE WHEN g %% 13 = 0 THEN 5 ELSE 0 END,
                   CASE WHEN m.method = 'stripe' THEN 'pi_' || md5(g::text) ELSE '' END,
                   CASE WHEN m.method = 'stripe' THEN 'ch_' || g ELSE '' END,
                   CASE WHEN m.method = 'manual' THEN 'WIRE-' || g ELSE '' END,
                   CASE WHEN g %% 10 = 0 THEN '=SUM(A1:A9)' WHEN g %% 10 = 1
                        THEN 'paid "cash", at the desk' ELSE '' END,
                   CASE WHEN m.method = 'stripe' THEN NULL ELSE u0.id END,
                   now() - (g %% 400) * interval '1 day' - (g %% 86399) * interval '1 second',
                   now()
            FROM generate_series(1, %(payments)s) AS g
            CROSS JOIN LATERAL (SELECT min(id) AS id FROM backoffice_order) AS o0
            CROSS JOIN LATERAL (SELECT min(id) AS id FROM auth_user) AS u0
            CROSS JOIN LATERAL (
                SELECT (ARRAY['stripe','stripe','manual','comp'])[1 + g %% 4] AS method
            ) AS m
            """,
            {"orders": orders, "payments": payments},
        )
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def run_child(db: str, mode: str, *extra: str) -> dict:
    """Run one measurement in a fresh Python process and return its JSON report."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--db", db, *extra],
        env=child_env(db),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        raise SystemExit(f"child {mode} failed")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(db: str, modes: list[str], *extra: str, runs: int = RUNS) -> dict[str, dict]:
    """Median seconds and peak RSS over RUNS child processes per mode.

    The modes run interleaved (a, b, c, a, b, c, …) so that load from other
    processes on the machine weighs on all of them alike.
    """
    reports: dict[str, list[dict]] = {mode: [] for mode in modes}
    for _ in range(runs):
        for mode in modes:
            reports[mode].append(run_child(db, mode, *extra))
    results = {}
    for mode, runs in reports.items():
        rows = runs[0]["rows"]
        assert all(run["rows"] == rows for run in runs)
        results[mode] = {
            "rows": rows,
            "seconds": statistics.median(run["seconds"] for run in runs),
            "cpu": statistics.median(run["cpu"] for run in runs),
            "rss_mb": max(run["rss_mb"] for run in runs),
            "growth_mb": max(run["growth_mb"] for run in runs),
            "bytes": runs[0]["bytes"],
        }
    return results


def print_table(results: list[tuple[str, dict]], copy: dict) -> None:
    """Print the export table.

    Wall clock; peak RSS of the child process and its growth during the export (the
    rest is Django and the project loaded, as in a gunicorn worker); CPU seconds of
    the child plus its PostgreSQL backend, which the machine's load does not inflate.
    """
    copy_rate = copy["rows"] / copy["seconds"]
    copy_cpu_rate = copy["rows"] / copy["cpu"]
    print()
    print(
        f"{'path':<52} {'rows':>9} {'s (med 3)':>10} {'rows/s':>10} {'peak RSS':>9} "
        f"{'growth':>7} {'×COPY':>6} {'CPU s':>7} {'×COPY CPU':>9}"
    )
    for name, result in results:
        rate = result["rows"] / result["seconds"]
        cpu_rate = result["rows"] / result["cpu"]
        print(
            f"{name:<52} {result['rows']:>9,} {result['seconds']:>10.2f} {rate:>10,.0f} "
            f"{result['rss_mb']:>6.0f} MB {result['growth_mb']:>4.0f} MB "
            f"{rate / copy_rate:>6.2f} {result['cpu']:>7.2f} "
            f"{cpu_rate / copy_cpu_rate:>9.2f}"
        )


def main() -> None:
    """Build the database, measure, print, drop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=400_000)
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=50_000, help="rows for the in-memory path")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--xlsx", action="store_true", help="measure the XLSX paths only")
    parser.add_argument(
        "--xlsx-sample", type=int, default=20_000, help="rows for the in-request XLSX path"
    )
    parser.add_argument("--db-name", help="use this existing, filled database")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per path (median)")
    parser.add_argument("--child")
    parser.add_argument("--db")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.xlsx_sample if args.child == "library-xlsx" else args.sample)
        return

    if args.db_name:
        db = args.db_name
        args.keep = True
    else:
        db = f"bo_bench_{os.getpid()}"
        admin_sql(db, f"CREATE DATABASE {db}")
    try:
        if not args.db_name:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                env=child_env(db),
                cwd=ROOT,
                check=True,
            )
            migrated = time.perf_counter() - started
            seconds = populate(db, args.orders, args.payments)
            print(
                f"Database {db}: {args.orders:,} orders, {args.payments:,} payments "
                f"built in {seconds:.1f} s (PostgreSQL, bulk SQL; migrate {migrated:.1f} s)."
            )
        if args.xlsx:
            xlsx_table(db, args.xlsx_sample, args.runs)
            return
        streamed = measure(db, ["copy", "stream", "command", "admin-stream"])
        copy, stream = streamed["copy"], streamed["stream"]
        command, admin_stream = streamed["command"], streamed["admin-stream"]
        library = measure(db, ["library"], "--sample", str(args.sample))["library"]
        print_table(
            [
                ("PostgreSQL COPY (SELECT same columns) TO STDOUT CSV", copy),
                ("streaming export (stream_csv, escaping + BOM)", stream),
                ("manage.py export_payments --output FILE", command),
                ("admin CSV export, streamed (test client)", admin_stream),
                (f"library in-memory export, {args.sample:,}-row sample", library),
            ],
            copy,
        )
        print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
        same = stream["bytes"] == command["bytes"] == admin_stream["bytes"]
        print(f"\nstreaming, command and admin outputs have the same size: {same}")
        pages = run_child(db, "admin-lists")
        print(f"\n{'admin list page':<52} {'median of 5':>12} {'queries':>8}")
        for name, page in pages.items():
            print(f"{name:<52} {page['seconds'] * 1000:>9.0f} ms {page['queries']:>8}")
    finally:
        if not args.keep:
            admin_sql(db, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def xlsx_table(db: str, sample: int, runs: int) -> None:
    """Measure the in-request XLSX rate and the background XLSX export, and print them."""
    in_request = measure(db, ["library-xlsx"], "--xlsx-sample", str(sample), runs=runs)
    in_request = in_request["library-xlsx"]
    background = measure(db, ["background-xlsx"], runs=runs)["background-xlsx"]
    rate = in_request["rows"] / in_request["seconds"]
    print()
    print(
        f"{'XLSX path':<52} {'rows':>9} {f's (med {runs})':>10} {'rows/s':>8} {'peak RSS':>9} "
        f"{'growth':>7} {'file':>8}"
    )
    for name, result in (
        (f"in-request (library, in memory), {sample:,}-row sample", in_request),
        ("background task in db_worker --batch (write-only)", background),
    ):
        print(
            f"{name:<52} {result['rows']:>9,} {result['seconds']:>10.2f} "
            f"{result['rows'] / result['seconds']:>8,.0f} {result['rss_mb']:>6.0f} MB "
            f"{result['growth_mb']:>4.0f} MB {result['bytes'] / 1e6:>5.0f} MB"
        )
    print(
        f"\nIn-request XLSX: {rate:,.0f} rows/s, so {rate * 10:,.0f} rows take about 10 s "
        "(a third of the 30 s worker timeout)."
    )
    print(
        "Peak RSS of the worker is the whole db_worker process; growth is over the same "
        "worker run with no task (Django and the project loaded)."
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


def background_xlsx() -> None:
    """Queue the background XLSX export of the whole ledger and run a db_worker process on it."""
    from django.contrib.auth import get_user_model

    from backoffice.models import ExportFile
    from backoffice.services.export_jobs import request_export

    command = [
        sys.executable,
        "manage.py",
        "db_worker",
        "--batch",
        "--no-startup-delay",
        "--no-reload",
        "--queue-name",
        "*",
        "-v0",
    ]
    subprocess.run(command, cwd=ROOT, check=True)  # no task: the idle worker's footprint
    idle_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    export = request_export(
        user=get_user_model().objects.get(username="bench-admin"),
        list_name="backoffice.payment",
        filters={},
        file_format=ExportFile.Format.XLSX,
    )
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    export.refresh_from_db()
    assert export.status == ExportFile.Status.READY, (export.status, export.error)
    size = export.file.size
    export.file.delete(save=False)
    export.delete()
    print(
        json.dumps(
            {
                "rows": export.row_count,
                "seconds": seconds,
                "cpu": 0.0,
                "rss_mb": peak_mb,
                "growth_mb": peak_mb - idle_mb,
                "bytes": size,
            }
        )
    )


# --- Children: one measurement each -----------------------------------------------------


class CountingSink:
    """A write-only file that counts bytes and CSV rows."""

    def __init__(self) -> None:
        self.bytes = 0
        self.rows = 0

    def write(self, data: bytes) -> None:
        """Count what would have been written."""
        self.bytes += len(data)
        self.rows += data.count(b"\r\n") if isinstance(data, bytes) else 0


def cpu_seconds() -> tuple[float, float]:
    """CPU time used so far by this process and by its PostgreSQL backend (same machine)."""
    from django.db import connection

    usage = resource.getrusage(resource.RUSAGE_SELF)
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return usage.ru_utime + usage.ru_stime, (int(fields[11]) + int(fields[12])) / ticks


CPU_AT_START: list[tuple[float, float]] = []
RSS_AT_START: list[float] = []


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_clock() -> float:
    """Note the CPU counters and the memory peak so far, and return the wall clock."""
    CPU_AT_START.append(cpu_seconds())
    RSS_AT_START.append(peak_rss_mb())
    return time.perf_counter()


def report(rows: int, seconds: float, size: int) -> None:
    """Print the child's JSON report: wall and CPU seconds, peak RSS of this process."""
    client, server = cpu_seconds()
    client0, server0 = CPU_AT_START[-1]
    rss_mb = peak_rss_mb()
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": seconds,
                "cpu": (client - client0) + (server - server0),
                "cpu_python": client - client0,
                "cpu_postgres": server - server0,
                "rss_mb": rss_mb,
                "growth_mb": rss_mb - RSS_AT_START[-1],
                "bytes": size,
            }
        )
    )


def child(mode: str, sample: int) -> None:
    """Run one export path against the benchmark database."""
    import django

    django.setup()
    from django.db import connection

    from backoffice.exports import PaymentResource
    from backoffice.services.exports import payments_for_export, stream_csv

    if mode == "copy":
        sql = """
            COPY (
                SELECT p.id, p.created_at, 'UTC', o.reference, c.name, o.billing_name,
                       o.billing_email, p.method, p.status, p.amount, c.currency, p.reference,
                       p.note, s.username, p.stripe_payment_intent_id, p.stripe_charge_id
                FROM backoffice_payment p
                JOIN backoffice_order o ON o.id = p.order_id
                JOIN backoffice_conference c ON c.id = o.conference_id
                JOIN auth_user u ON u.id = o.user_id
                LEFT JOIN auth_user s ON s.id = p.created_by_id
                ORDER BY p.created_at DESC, p.id DESC
            ) TO STDOUT WITH (FORMAT csv)
        """
        sink = CountingSink()
        started = start_clock()
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for row in copy:
                sink.bytes += len(row)
                sink.rows += 1
        report(sink.rows, time.perf_counter() - started, sink.bytes)
    elif mode == "stream":
        sink = CountingSink()
        started = start_clock()
        for chunk in stream_csv(PaymentResource(), payments_for_export()):
            sink.write(chunk)
        report(sink.rows - 1, time.perf_counter() - started, sink.bytes)
    elif mode == "command":
        from django.core.management import call_command

        target = Path(tempfile.gettempdir()) / f"bench-export-{os.getpid()}.csv"
        started = start_clock()
        call_command("export_payments", "--output", str(target))
        seconds = time.perf_counter() - started
        size = target.stat().st_size
        with target.open("rb") as handle:
            rows = sum(chunk.count(b"\r\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        target.unlink()
        report(rows - 1, seconds, size)
    elif mode == "admin-stream":
        from django.contrib.auth import get_user_model
        from django.test import Client

        client = Client()
        client.force_login(get_user_model().objects.get(username="bench-admin"))
        fields = [f"paymentresource_{name}" for name in PaymentResource._meta.fields]
        data = {"format": "0", "resource": "0", **dict.fromkeys(fields, "on")}
        sink = CountingSink()
        started = start_clock()
        response = client.post("/admin/backoffice/payment/export/", data)
        assert response.streaming, "expected a streamed response"
        for chunk in response.streaming_content:
            sink.write(chunk)
        report(sink.rows - 1, time.perf_counter() - started, sink.bytes)
    elif mode == "library":
        from import_export.formats import base_formats

        from backoffice.models import Payment

        first = Payment.objects.order_by("id").values_list("id", flat=True)[0]
        queryset = Payment.objects.filter(id__lt=first + sample).order_by("-created_at", "-id")
        started = start_clock()
        dataset = PaymentResource().export(queryset=queryset)
        content = base_formats.CSV().export_data(dataset).encode("utf-8-sig")
        report(len(dataset), time.perf_counter() - started, len(content))
    elif mode == "library-xlsx":
        from import_export.formats import base_formats

        from backoffice.models import Payment

        first = Payment.objects.order_by("id").values_list("id", flat=True)[0]
        queryset = Payment.objects.filter(id__lt=first + sample).order_by("-created_at", "-id")
        started = start_clock()
        dataset = PaymentResource().export(queryset=queryset, force_native_type=True)
        content = base_formats.XLSX().export_data(dataset)
        report(len(dataset), time.perf_counter() - started, len(content))
    elif mode == "background-xlsx":
        background_xlsx()
    elif mode == "admin-lists":
        admin_lists()
    else:
        raise SystemExit(f"unknown child mode {mode}")


def admin_lists() -> None:
    """Median of 5 GETs of the admin lists, with their query counts."""
    from django.conf import settings
    from django.test import override_settings

    # Without collectstatic there is no manifest; plain storage renders the same pages.
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}):
        _admin_lists()


def _admin_lists() -> None:
    """Time each page."""
    import datetime

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-admin"))
    today = timezone.localdate()
    last_month_end = today.replace(day=1) - datetime.timedelta(days=1)
    last_month = (
        f"created_at_from={last_month_end.replace(day=1).isoformat()}"
        f"&created_at_to={last_month_end.isoformat()}"
    )
    pages = {
        "Payments list": "/admin/backoffice/payment/",
        "Payments list, last month + status=succeeded": (
            f"/admin/backoffice/payment/?{last_month}&status__exact=succeeded"
        ),
        "Payments list, search by order reference": "/admin/backoffice/payment/?q=ORD-0000BEEF",
        "Orders list": "/admin/backoffice/order/",
        "Orders list, last month": f"/admin/backoffice/order/?{last_month}",
        "Finance dashboard (admin index)": "/admin/",
    }
    results = {}
    for name, url in pages.items():
        client.get(url)  # warm caches (templates, permissions)
        times = []
        for _ in range(PAGE_RUNS):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        results[name] = {"seconds": statistics.median(times), "queries": len(queries)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
