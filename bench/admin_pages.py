"""Benchmark: the admin's lists, searches and order page at 400,000 orders / 1,000,000 payments.

Usage (PostgreSQL on 127.0.0.1:5432, user postgres, trust auth):

    .venv/bin/python bench/admin_pages.py                       # build full size, measure, drop
    .venv/bin/python bench/admin_pages.py --orders 40000 --payments 100000 --keep
    .venv/bin/python bench/admin_pages.py --db-name bo_bench_123   # an existing, filled database

The database is built by ``bench/export.py``'s bulk SQL (``populate``); this
script adds one order with 50 payments (refunds, history entries and e-mails
beside them) for the order page. Each page is requested through Django's test
client in a fresh child process with production settings: one warm-up request,
then ``--runs`` timed ones. Printed per page: median server time, the query
count and the slowest query's time (of the median run).

``measure_pages(db_name)`` returns the same rows for the bench runner.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from export import admin_sql, child_env, populate  # noqa: E402
from page_timing import cpu_seconds  # noqa: E402

RUNS = 5
BIG_ORDER = "ORD-BENCH50"
# Identifiers the bulk SQL of bench/export.py generates (order g: billing<g>@example.com,
# reference ORD-<hex g>, billing name "Attendee, Nº <g>"; user u: user<u>@example.com).
PROBE = 31337


def pages() -> dict[str, str]:
    """The pages measured: name -> URL."""
    reference = f"ORD-{PROBE:08X}"
    email = f"billing{PROBE}@example.com"
    return {
        "Orders list": "/admin/backoffice/order/",
        "Orders list, search by e-mail": f"/admin/backoffice/order/?q={email}",
        "Orders list, search by reference": f"/admin/backoffice/order/?q={reference}",
        "Orders list, search by name fragment": f"/admin/backoffice/order/?q=N%C2%BA+{PROBE}",
        "Orders list, search by e-mail fragment": f"/admin/backoffice/order/?q=billing{PROBE}%40",
        "Orders list, status=paid": "/admin/backoffice/order/?status__exact=paid",
        "Payments list": "/admin/backoffice/payment/",
        "Payments list, search by e-mail": f"/admin/backoffice/payment/?q={email}",
        "Payments list, search by name fragment": f"/admin/backoffice/payment/?q={PROBE}",
        "Payments list, status=succeeded": "/admin/backoffice/payment/?status__exact=succeeded",
        "Payments list, search by order reference": f"/admin/backoffice/payment/?q={reference}",
        "Refunds list": "/admin/backoffice/refund/",
        "Disputes list": "/admin/backoffice/dispute/",
        "Stripe events list": "/admin/backoffice/stripeevent/",
        "Order e-mails list": "/admin/backoffice/orderemail/",
        "Order page with 50 payments": "ORDER_PAGE",
    }


def measure_pages(db_name: str, runs: int = RUNS) -> list[dict]:
    """Measure every page on a filled database: rows of what, median_ms, queries, slowest_sql_ms."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", "--db-name", db_name, "--runs", str(runs)],
        env=child_env(db_name),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        raise SystemExit("admin pages child failed")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def print_rows(rows: list[dict]) -> None:
    """Print the pages table."""
    print(f"\n{'admin page':<44} {'median ms':>10} {'queries':>8} {'slowest SQL ms':>15}")
    for row in rows:
        print(
            f"{row['what']:<44} {row['median_ms']:>10.0f} {row['queries']:>8} "
            f"{row['slowest_sql_ms']:>15.1f}"
        )
    print(f"load average: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


def main() -> None:
    """Build (or reuse) the database, measure, print, drop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=400_000)
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--db-name", help="use this existing, filled database")
    parser.add_argument("--runs", type=int, default=RUNS, help="timed requests per page")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.runs)
        return
    db = args.db_name or f"bo_bench_pages_{os.getpid()}"
    if not args.db_name:
        admin_sql(db, f"CREATE DATABASE {db}")
    try:
        if not args.db_name:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                env=child_env(db),
                cwd=ROOT,
                check=True,
            )
            seconds = populate(db, args.orders, args.payments)
            print(f"{db}: {args.orders:,} orders, {args.payments:,} payments, {seconds:.0f} s")
        print_rows(measure_pages(db, args.runs))
    finally:
        if not args.db_name and not args.keep:
            admin_sql(db, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


# --- Child: Django against the benchmark database ---------------------------------------


def big_order_id() -> int:
    """The order with 50 payments (created on first use): refunds, history and e-mails beside."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from backoffice.models import Order, OrderEmail, OrderHistoryEntry, Payment, Refund

    order = Order.objects.filter(reference=BIG_ORDER).first()
    if order is not None:
        return order.pk
    admin = get_user_model().objects.get(username="bench-admin")
    template = Order.objects.order_by("pk").first()
    order = Order.objects.create(
        conference=template.conference,
        user=template.user,
        reference=BIG_ORDER,
        billing_name="Big Order",
        billing_email="big@example.com",
        subtotal=Decimal("5000"),
        total=Decimal("5000"),
        status=Order.Status.PAID,
    )
    payments = Payment.objects.bulk_create(
        Payment(
            order=order,
            method=Payment.Method.STRIPE if i % 2 else Payment.Method.MANUAL,
            status=Payment.Status.SUCCEEDED,
            amount=Decimal("100"),
            refunded_amount=Decimal("10") if i % 5 == 0 else Decimal("0"),
            stripe_payment_intent_id=f"pi_big{i}" if i % 2 else "",
            stripe_charge_id=f"ch_big{i}" if i % 2 else "",
            reference="" if i % 2 else f"WIRE-BIG-{i}",
            created_by=None if i % 2 else admin,
        )
        for i in range(50)
    )
    Refund.objects.bulk_create(
        Refund(
            payment=payment,
            amount=Decimal("10"),
            status=Refund.Status.SUCCEEDED,
            reason=Refund.Reason.REQUESTED_BY_CUSTOMER,
            created_by=admin,
        )
        for i, payment in enumerate(payments)
        if i % 5 == 0
    )
    OrderHistoryEntry.objects.bulk_create(
        OrderHistoryEntry(
            order=order,
            actor=admin,
            action=OrderHistoryEntry.Action.MANUAL_PAYMENT,
            amount=Decimal("100"),
        )
        for _ in range(50)
    )
    OrderEmail.objects.bulk_create(
        OrderEmail(
            order=order,
            kind=OrderEmail.Kind.PAYMENT_LINK,
            recipient="big@example.com",
            from_email="desk@example.com",
            subject=f"Your payment link {i}",
            text_body="Pay here.",
        )
        for i in range(5)
    )
    return order.pk


def child(runs: int) -> None:
    """Measure each page and print the rows as JSON."""
    import django

    django.setup()
    from django.conf import settings
    from django.test import override_settings

    # Without collectstatic there is no manifest; plain storage renders the same pages.
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}):
        print(json.dumps(measure_in_process(runs)))


def measure_in_process(runs: int) -> list[dict]:
    """Median server time and CPU (this process and its backend), queries, slowest query."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-admin"))
    order_page = f"/admin/backoffice/order/{big_order_id()}/change/"
    rows = []
    for name, url in pages().items():
        url = order_page if url == "ORDER_PAGE" else url
        response = client.get(url)  # warm caches (templates, permissions)
        assert response.status_code == 200, (url, response.status_code)
        samples = []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started, cpu = time.perf_counter(), cpu_seconds()
                response = client.get(url)
                seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
            assert response.status_code == 200, (url, response.status_code)
            slowest = max(queries, key=lambda query: float(query["time"]), default=None)
            samples.append(
                (
                    seconds,
                    len(queries),
                    float(slowest["time"]) if slowest else 0.0,
                    slowest["sql"][:160] if slowest else "",
                    cpu,
                )
            )
        samples.sort()
        seconds, count, slowest, slowest_sql, _ = samples[len(samples) // 2]
        rows.append(
            {
                "what": name,
                "median_ms": statistics.median(s[0] for s in samples) * 1000,
                "cpu_ms": statistics.median(s[4] for s in samples) * 1000,
                "queries": count,
                "slowest_sql_ms": slowest * 1000,
                "slowest_sql": slowest_sql,
            }
        )
    return rows


if __name__ == "__main__":
    main()
