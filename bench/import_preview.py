"""Benchmark: the orders import through the admin (dry-run preview, then confirm).

Usage (PostgreSQL on 127.0.0.1:5432, user postgres, trust auth):

    .venv/bin/python bench/import_preview.py                      # 1,000 and 5,000 rows
    .venv/bin/python bench/import_preview.py --rows 2000 20000 --runs 5

It creates its own throwaway database (``bo_bench_import_<pid>``), migrates it,
adds one conference and a superuser, then for each file size uploads a CSV of
new orders (every row a new attendee, the slowest case) to the admin's import
page through Django's test client and times the preview (dry run) and the
confirm step (the real import). Each run uses fresh e-mail addresses. Printed
table: rows, file size (MB, 10^6 bytes), median wall-clock seconds of ``--runs``
runs, ms per row and median CPU seconds of this process for both steps. The
database is dropped at the end (``--keep`` keeps it).

Not part of ``make test``: it takes a minute or two and needs PostgreSQL.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.export import admin_sql, child_env  # noqa: E402

IMPORT_URL = "/admin/backoffice/order/import/"
PROCESS_URL = "/admin/backoffice/order/process_import/"
HEADER = "Conference,Attendee,Email,Status,Subtotal,Discount,Total\r\n"


def build_csv(rows: int, run: int) -> bytes:
    """A CSV of ``rows`` valid new orders, each for a new attendee."""
    lines = [HEADER]
    for number in range(rows):
        lines.append(
            f"pycon-bench,Attendee {number},bench{run}-{number}@example.com,,"
            f"{100 + number % 50}.00,10.00,{90 + number % 50}.00\r\n"
        )
    return "".join(lines).encode("utf-8")


def time_import(client: object, content: bytes) -> tuple[float, float, float, float]:
    """Upload the file, confirm it; wall-clock and CPU seconds of the preview and the confirm.

    CPU seconds are this process's (the web worker's share, which other load on a
    shared machine does not inflate); PostgreSQL's own work is in the wall clock only.
    """
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("orders.csv", content, "text/csv")
    started, cpu = time.perf_counter(), time.process_time()
    preview = client.post(IMPORT_URL, {"resource": "0", "format": "0", "import_file": upload})
    preview_seconds = time.perf_counter() - started
    preview_cpu = time.process_time() - cpu
    assert preview.status_code == 200, preview.status_code
    html = preview.content.decode()
    # The confirm form's hidden inputs (no test-environment context capture: no overhead).
    confirm = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', html))
    assert "import_file_name" in confirm, "the preview refused the file"
    confirm.pop("csrfmiddlewaretoken", None)
    started, cpu = time.perf_counter(), time.process_time()
    done = client.post(PROCESS_URL, {**confirm, "resource": "0"})
    confirm_seconds = time.perf_counter() - started
    confirm_cpu = time.process_time() - cpu
    assert done.status_code == 302, done.status_code
    return preview_seconds, preview_cpu, confirm_seconds, confirm_cpu


def measure(sizes: list[int], runs: int) -> None:
    """Time every size ``runs`` times and print the table of medians."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    # The pages need static URLs; the benchmark runs no collectstatic.
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    settings.STORAGES = {**settings.STORAGES, "staticfiles": plain}

    from backoffice.models import Conference, Order

    Conference.objects.create(name="PyCon Bench", slug="pycon-bench", currency="USD")
    admin = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", "x")
    client = Client()
    client.force_login(admin)
    print(
        f"{'rows':>8} {'MB':>6} {'preview s':>10} {'ms/row':>7} {'CPU s':>6} "
        f"{'confirm s':>10} {'ms/row':>7} {'CPU s':>6}"
    )
    run = 0
    for rows in sizes:
        timings = []
        for _ in range(runs):
            run += 1
            content = build_csv(rows, run)
            before = Order.objects.count()
            timings.append(time_import(client, content))
            assert Order.objects.count() == before + rows, "the confirm did not import every row"
        preview, preview_cpu, confirm, confirm_cpu = (
            statistics.median(column) for column in zip(*timings, strict=True)
        )
        print(
            f"{rows:>8,} {len(content) / 1e6:>6.2f} {preview:>10.2f} "
            f"{preview * 1000 / rows:>7.2f} {preview_cpu:>6.2f} {confirm:>10.2f} "
            f"{confirm * 1000 / rows:>7.2f} {confirm_cpu:>6.2f}",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def main() -> None:
    """Build the database, measure, print, drop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 5_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    db = f"bo_bench_import_{os.getpid()}"
    admin_sql(db, f"CREATE DATABASE {db}")
    try:
        env = child_env(db)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            env=env,
            cwd=ROOT,
            check=True,
        )
        # Bench limits far above the sizes measured: the point is the per-row cost.
        os.environ.update(env)
        os.environ.setdefault("BACKOFFICE_IMPORT_MAX_BYTES", str(1 << 30))
        os.environ.setdefault("BACKOFFICE_IMPORT_MAX_ROWS", str(10_000_000))
        print(f"Database {db} (PostgreSQL); medians of {args.runs} runs.")
        measure(args.rows, args.runs)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            admin_sql(db, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
