"""Timing admin pages in process: wall clock, CPU (this process + its PostgreSQL backend), SQL.

Shared by ``bench/admin_pages.py``, ``bench/dashboard.py`` and ``bench/checkout.py``.
Each row is the runner's shape: ``{"what", "median_ms", "queries", "slowest_sql_ms",
"cpu_ms"}``, the median of ``runs`` timed calls after one warm-up call.
"""

import os
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PAGE_RUNS = 3


def cpu_seconds() -> float:
    """CPU seconds used so far by this process plus its PostgreSQL backend (same machine)."""
    from django.db import connection

    usage = resource.getrusage(resource.RUSAGE_SELF)
    own = usage.ru_utime + usage.ru_stime
    if connection.vendor != "postgresql":
        return own
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return own + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def plain_static_files() -> Iterator[None]:
    """Render pages without collectstatic: the manifest storage needs a manifest file."""
    from django.conf import settings
    from django.test import override_settings

    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}):
        yield


def time_call(what: str, call: Callable[[], Any], *, runs: int = PAGE_RUNS) -> dict:
    """One warm-up call, then the median of ``runs`` calls with their queries and CPU."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call()
    walls, cpus, counts, slowest = [], [], [], []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            cpu0 = cpu_seconds()
            started = time.perf_counter()
            call()
            walls.append(time.perf_counter() - started)
            cpus.append(cpu_seconds() - cpu0)
        counts.append(len(queries.captured_queries))
        slowest.append(max((float(q["time"]) for q in queries.captured_queries), default=0.0))
    return {
        "what": what,
        "median_ms": statistics.median(walls) * 1000,
        "queries": max(counts),
        "slowest_sql_ms": statistics.median(slowest) * 1000,
        "cpu_ms": statistics.median(cpus) * 1000,
    }


def time_get(what: str, client: Any, url: str, *, runs: int = PAGE_RUNS) -> dict:
    """Time GETs of one page through the test client (200 expected)."""

    def get() -> None:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)

    return time_call(what, get, runs=runs)
