"""Benchmark: the finance dashboard (admin index) at 400,000 orders / 1,000,000 payments.

Usage (PostgreSQL on 127.0.0.1:5432, user postgres, trust auth):

    .venv/bin/python bench/dashboard.py                    # full size, builds its own database
    .venv/bin/python bench/dashboard.py --orders 40000 --payments 100000
    .venv/bin/python bench/dashboard.py --db-name bo_bench_123   # an existing, filled database
    .venv/bin/python bench/dashboard.py --before /tmp/old-checkout  # also time older code

It builds the database with ``bench/export.py`` (migrate, then bulk SQL that
bypasses the ledger's services), fills the maintained totals with
``check_ledger_totals --fix`` (timed: what the migration does on a live
database), then times the admin index for a superuser and a finance user in
a fresh child process: median of 5 warm requests through Django's test
client, the page's query count and its slowest query. ``--before`` times a
checkout of older code against the same database, interleaved with this one.

``measure_dashboard(db_name)`` is what a runner calls: a list of dicts, one
per user.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5
FINANCE_USER = "bench-finance"


def _export():  # noqa: ANN202
    """bench/export.py, imported in the parent only (a child imports another checkout)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench import export

    return export


def measure_dashboard(db_name: str, *, root: Path = ROOT) -> list[dict]:
    """Time the admin index for a superuser and a finance user in a child process (code at root)."""
    env = {**_export().child_env(db_name), "PYTHONPATH": str(root)}
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", "--db", db_name],
        env=env,
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _conference_defaults(db_name: str) -> None:
    """Let bench/export.py's conference INSERT (written before the e-mail fields) run."""
    import psycopg

    columns = ("organiser_name", "organiser_address", "contact_email", "reply_to_email")
    with psycopg.connect(f"{_export().PG}/{db_name}", autocommit=True) as conn:
        for column in columns:
            conn.execute(f"ALTER TABLE backoffice_conference ALTER COLUMN {column} SET DEFAULT ''")


def fill_totals(db_name: str) -> float:
    """Run ``check_ledger_totals --fix`` on the database; return its seconds."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "check_ledger_totals", "--fix"],
        env=_export().child_env(db_name),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


# --- Child: Django set up against the benchmark database ---------------------------------


def _finance_user():  # noqa: ANN202
    """A staff user in the Finance group (created once in the benchmark database)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from backoffice.services.staff_groups import create_staff_groups

    create_staff_groups()
    user, created = get_user_model().objects.get_or_create(
        username=FINANCE_USER, defaults={"is_staff": True, "email": "finance@example.com"}
    )
    if created:
        user.groups.add(Group.objects.get(name="Finance"))
    return user


def child() -> None:
    """Print one JSON list: per user, median seconds, queries and the slowest query."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    users = {
        "superuser": get_user_model().objects.get(username="bench-admin"),
        "finance": _finance_user(),
    }
    results = []
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}):
        for name, user in users.items():
            client = Client()
            client.force_login(user)
            client.get("/admin/")  # warm caches (templates, permissions)
            times, slowest = [], (0.0, "")
            for _ in range(RUNS):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.get("/admin/")
                    times.append(time.perf_counter() - started)
                assert response.status_code == 200, response.status_code
                for query in queries.captured_queries:
                    if float(query["time"]) > slowest[0]:
                        slowest = (float(query["time"]), query["sql"])
            results.append(
                {
                    "user": name,
                    "ms": round(statistics.median(times) * 1000, 1),
                    "queries": len(queries),
                    "slowest_ms": round(slowest[0] * 1000, 1),
                    "slowest_sql": slowest[1][:160],
                }
            )
    results.append(_finance_figures())
    print(json.dumps(results))


def _finance_figures() -> dict:
    """The dashboard's finance figures alone (``finance_summary``): median of 5, queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from backoffice.services.dashboard import finance_summary

    finance_summary()
    times = []
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            finance_summary()
            times.append(time.perf_counter() - started)
    slowest = max(queries.captured_queries, key=lambda query: float(query["time"]))
    return {
        "user": "finance_summary() alone",
        "ms": round(statistics.median(times) * 1000, 1),
        "queries": len(queries),
        "slowest_ms": round(float(slowest["time"]) * 1000, 1),
        "slowest_sql": slowest["sql"][:160],
    }


def main() -> None:
    """Build (or reuse) the database, fill the totals, measure, print, drop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=400_000)
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--db-name", help="use this existing, filled database (kept)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--before", type=Path, help="a checkout of older code to time as well")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--db")
    args = parser.parse_args()
    if args.child:
        child()
        return
    export = _export()
    db = args.db_name or f"bo_bench_{os.getpid()}"
    keep = args.keep or bool(args.db_name)
    if not args.db_name:
        export.admin_sql(db, f"CREATE DATABASE {db}")
    try:
        if not args.db_name:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                env=export.child_env(db),
                cwd=ROOT,
                check=True,
            )
            _conference_defaults(db)
            seconds = export.populate(db, args.orders, args.payments)
            print(f"Database {db}: {args.orders:,} orders, {args.payments:,} payments")
            print(f"built in {seconds:.0f} s (bench/export.py's bulk SQL)")
        print(f"check_ledger_totals --fix: {fill_totals(db):.1f} s")
        codes = {"this code": ROOT} | ({"before": args.before} if args.before else {})
        rounds: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.rounds):
            for label, root in codes.items():
                for row in measure_dashboard(db, root=root):
                    rounds.setdefault((label, row["user"]), []).append(row)
        print(
            f"\n{'admin index (median of ' + str(RUNS) + ' requests)':<44} {'ms':>8} "
            f"{'queries':>8} {'slowest':>9}"
        )
        for (label, user), rows in rounds.items():
            ms = statistics.median(row["ms"] for row in rows)
            slow = max(rows, key=lambda row: row["slowest_ms"])
            print(
                f"{label + ', ' + user:<44} {ms:>8.0f} {rows[0]['queries']:>8} "
                f"{statistics.median(r['slowest_ms'] for r in rows):>6.1f} ms  "
                f"{slow['slowest_sql'][:70]}"
            )
        print(
            f"({args.rounds} interleaved rounds; load {os.getloadavg()[0]:.1f}, "
            f"{os.cpu_count()} CPUs)"
        )
    finally:
        if not keep:
            export.admin_sql(db, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
