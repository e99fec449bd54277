"""The benchmark runner's table: medians over runs, targets met or missed, missing modules."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_runner():  # noqa: ANN201 (the bench/run.py module)
    """Import bench/run.py (a script beside its sibling modules, not a package)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


run = load_runner()


def page(what: str, ms: float, sql: float, queries: int = 5) -> dict:
    """A measured row as measure_pages returns it."""
    return {"what": what, "median_ms": ms, "queries": queries, "slowest_sql_ms": sql, "cpu_ms": ms}


def test_median_rows_takes_each_numbers_median_and_the_most_queries() -> None:
    runs = [
        [page("Orders list", 100, 10, queries=5)],
        [page("Orders list", 300, 30, queries=6)],
        [page("Orders list", 200, 20, queries=5)],
    ]

    (row,) = run.median_rows(runs)

    assert (row["median_ms"], row["slowest_sql_ms"], row["queries"], row["runs"]) == (
        200,
        20,
        6,
        3,
    )


def test_a_list_page_meets_its_target_only_with_fast_sql_too() -> None:
    fast = run.row_of("pages", {**page("Orders list searched by e-mail", 120, 10), "runs": 3})
    slow_sql = run.row_of("pages", {**page("Orders list searched by e-mail", 120, 45), "runs": 3})

    assert fast[-1] == "met"
    assert slow_sql[-1] == "**missed**"


def test_the_order_page_and_the_dashboard_have_their_own_targets() -> None:
    order_page = run.row_of("pages", page("Order page with 50 payments", 140, 80))
    dashboard = run.row_of("dashboard", page("Dashboard, superuser", 140, 5))

    assert (order_page[-2], order_page[-1]) == ("≤ 150 ms", "met")
    assert (dashboard[-2], dashboard[-1]) == ("≤ 100 ms", "**missed**")


def test_export_ratio_is_the_median_of_each_runs_pair() -> None:
    copies = [{"rows": 10, "seconds": 1.0, "cpu": 1.0}] * 3
    streams = [
        {"rows": 10, "seconds": 1.1, "cpu": 1.2},
        {"rows": 10, "seconds": 2.0, "cpu": 1.2},
        {"rows": 10, "seconds": 1.2, "cpu": 1.2},
    ]

    copy_row, stream_row = run.export_rows(copies, streams)

    assert "0.83× COPY wall, 0.83× CPU" in stream_row[0]
    assert stream_row[-1] == "met"


def webhook_run(rate: float, cpu: float = 3.0, queries: float = 7.0) -> dict:
    """A result as measure_webhooks returns it."""
    return {
        "what": "Stripe webhook ingestion, gunicorn 4 workers",
        "events": 300,
        "concurrency": 16,
        "events_per_s": rate,
        "p50_ms": 50.0,
        "cpu_ms_per_event": cpu,
        "queries_per_event": queries,
        "commits_per_event": 1.0,
    }


def test_webhooks_are_compared_with_the_baseline_measured_in_the_same_run() -> None:
    new = [webhook_run(200), webhook_run(250), webhook_run(300)]
    old = [webhook_run(100), webhook_run(100), webhook_run(100)]

    rows = run.webhook_rows(new, old)

    assert "2.50× baseline" in rows[0][0]
    assert rows[0][-1] == "met"
    assert rows[1][0] == "Webhooks on the baseline commit (same run)"


def test_webhooks_miss_the_target_on_cpu_or_queries_per_event() -> None:
    rows = run.webhook_rows([webhook_run(200, cpu=9.3, queries=20)] * 3, None)

    assert "no baseline" in rows[0][0]
    assert rows[0][-1] == "**missed**"


def test_a_missing_or_failed_measurement_is_a_row_that_says_so() -> None:
    results = {
        "pages": [{"missing": "bench/admin_pages.py"}] * 3,
        "dashboard": [[page("Dashboard, superuser", 80, 5)]] * 3,
        "copy": [{"rows": 10, "seconds": 1.0, "cpu": 1.0}] * 3,
        "stream": [{"rows": 10, "seconds": 1.0, "cpu": 1.0}] * 3,
        "webhooks": [{"failed": "AssertionError: boom"}] * 3,
        "checkout": [[page("Checkout: initiate_payment (localstripe)", 20, 1)]] * 3,
    }

    rows = run.table_rows(results)

    assert rows[0][1] == "not measured: bench/admin_pages.py missing"
    assert [r[1] for r in rows if r[0].startswith("Stripe webhook")] == [
        "failed: AssertionError: boom"
    ]
    assert rows[-1][-1] == "—"


def test_the_child_reports_a_missing_module_by_its_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(run.MEASUREMENTS, "pages", ("no_such_bench_module", "measure", dict))

    run.child("pages", "unused", {})

    assert json.loads(capsys.readouterr().out) == {"missing": "bench/no_such_bench_module.py"}


def test_a_missed_dashboard_names_its_slowest_query_and_the_budget_left() -> None:
    row = {
        **page("Dashboard (admin index), superuser", 114, 91),
        "slowest_sql": "SELECT COUNT(*)",
        "cpu_ms": None,
    }

    line = run.page_why("dashboard", row)

    assert "slowest query took 91 ms (`SELECT COUNT(*)…`)" in line
    assert "Meeting it needs that query under 77 ms" in line
    assert run.page_why("dashboard", page("Dashboard (admin index), finance", 90, 70)) is None


def test_a_page_slow_only_from_waiting_says_so() -> None:
    row = {**page("Orders list, status=paid", 182, 5), "cpu_ms": 60.0, "slowest_sql": "SELECT"}

    line = run.page_why("pages", row)

    assert "the request used 60 ms of CPU" in line
    assert "the other 122 ms were waits" in line


def test_a_page_with_slow_sql_must_bring_that_query_under_its_target() -> None:
    row = {**page("Orders list, search by e-mail fragment", 111, 46), "slowest_sql": "SELECT"}

    line = run.page_why("pages", row)

    assert "That query must come under 30 ms" in line


def test_a_missed_export_splits_its_cpu_and_gives_the_budget() -> None:
    copies = [{"rows": 10, "seconds": 1.0, "cpu": 2.0, "cpu_postgres": 1.5, "cpu_python": 0.5}]
    streams = [{"rows": 10, "seconds": 2.0, "cpu": 4.0, "cpu_postgres": 3.0, "cpu_python": 1.0}]

    (line,) = run.export_why(copies * 3, streams * 3)

    assert "0.50× COPY wall, 0.50× CPU" in line
    assert "0.8× needs at most 1.25 s" in line  # wall
    assert "0.8× needs at most 2.50 s" in line  # CPU
    assert "its PostgreSQL backend used 3.00 s (COPY's 1.50 s)" in line
    assert "The export's SQL alone is over the budget" in line


def test_a_met_export_needs_no_reason() -> None:
    copies = [{"rows": 10, "seconds": 1.0, "cpu": 1.0}] * 3
    streams = [{"rows": 10, "seconds": 1.1, "cpu": 1.2}] * 3

    assert run.export_why(copies, streams) == []


def test_missed_webhooks_say_where_the_cpu_goes_and_what_the_cores_allow() -> None:
    measured = {
        "postgres_cpu_ms_per_event": 4.0,
        "in_process_cpu_ms_per_event": 7.0,
        "database_layer_share": 0.6,
        "cores": 2,
        "backends_active": 6.0,
        "backends_waiting_for_locks": 3.0,
    }
    new = [{**webhook_run(100, cpu=10.0, queries=8), **measured}] * 3
    old = [webhook_run(80)] * 3

    cpu_line, rate_line = run.webhook_why(new, old)

    assert "60% of it (profiled) in Django's database layer and psycopg" in cpu_line
    assert "(4.2 ms)" in cpu_line
    assert "the rest is 5.8 ms" in cpu_line
    assert "1.25× the baseline" in rate_line
    assert "2 cores could ingest at most 143 events/s" in rate_line
    assert "200 events/s, which needs at most 10.0 ms of CPU per event" in rate_line
    assert "this code's 14.0 ms must come down" in rate_line
    assert "16 / 0.050 s = 320 events/s" in rate_line  # clients over p50
    assert "6.0 database connections busy on average, 3.0 were waiting for a lock" in rate_line
    assert rate_line.endswith(
        "What would meet it: less CPU per event, the totals row held for less of each "
        "transaction, cores not shared with other work."
    )
