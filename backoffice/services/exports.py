"""Streaming CSV exports of any size, and the payment selection the exports start from.

``stream_csv`` writes the same bytes as import-export's in-memory CSV export
of the same Resource (UTF-8 BOM, header, then rows), but never holds more
than one chunk of rows:

- on PostgreSQL the Resource's columns become SQL expressions (escaping
  included) and the database writes the CSV itself through
  ``COPY (SELECT …) TO STDOUT WITH (FORMAT csv)``;
- elsewhere (SQLite) rows are read in chunks and rendered by the Resource.
"""

import csv
import datetime
import io
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db import connections, models, transaction
from django.utils import timezone
from django.utils.text import slugify

from backoffice.exports import ExportField, LedgerResource, site_time_zone_name
from backoffice.models import Payment

BOM = "\ufeff".encode()
#: Rows per chunk written to the response or file.
CHUNK_ROWS = 2000
#: CSV exports with more rows than this stream from the admin (settings override).
DEFAULT_STREAMING_THRESHOLD = 20_000
#: XLSX exports with more rows than this go to the background worker (settings override).
DEFAULT_XLSX_IN_REQUEST_MAX_ROWS = 15_000


def streaming_threshold() -> int:
    """Row count above which the admin streams a CSV export instead of building it in memory."""
    return int(
        getattr(settings, "BACKOFFICE_STREAMING_EXPORT_THRESHOLD", DEFAULT_STREAMING_THRESHOLD)
    )


def spreadsheet_row_limit() -> int:
    """Most rows an admin XLSX export builds in the request (larger ones go to the worker)."""
    return int(
        getattr(settings, "BACKOFFICE_XLSX_IN_REQUEST_MAX_ROWS", DEFAULT_XLSX_IN_REQUEST_MAX_ROWS)
    )


def has_more_rows_than(queryset: models.QuerySet, limit: int) -> bool:
    """True when the queryset has more than ``limit`` rows (reads at most one row past it)."""
    return bool(list(queryset.order_by().values_list("pk", flat=True)[limit : limit + 1]))


def local_day_range(
    since: datetime.date | None, until: datetime.date | None
) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """Aware bounds [start of ``since``, start of the day after ``until``) in the site's zone.

    Both days are included whole; either may be None (open-ended).
    """
    zone = timezone.get_default_timezone()
    start = datetime.datetime.combine(since, datetime.time.min, tzinfo=zone) if since else None
    end = (
        datetime.datetime.combine(
            until + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone
        )
        if until
        else None
    )
    return start, end


def filter_created_between(
    queryset: models.QuerySet,
    since: datetime.date | None,
    until: datetime.date | None,
    field: str = "created_at",
) -> models.QuerySet:
    """Rows created on the days ``since`` to ``until`` inclusive (site's time zone)."""
    start, end = local_day_range(since, until)
    if start is not None:
        queryset = queryset.filter(**{f"{field}__gte": start})
    if end is not None:
        queryset = queryset.filter(**{f"{field}__lt": end})
    return queryset


def export_file_name(
    *,
    list_name: str,
    extension: str,
    conference: str = "",
    since: datetime.date | None = None,
    until: datetime.date | None = None,
    today: datetime.date | None = None,
) -> str:
    """A download's name: the list, the conference and the days it covers.

    ``payments-pycon-2026-2026-10-01-to-2026-10-31.csv``; without a conference
    the name leaves it out, and without dates it carries the export's day
    (``today``, the site's date by default).
    """
    parts = [slugify(list_name) or "export"]
    if slugify(conference):
        parts.append(slugify(conference))
    if since and until:
        parts.append(f"{since.isoformat()}-to-{until.isoformat()}")
    elif since:
        parts.append(f"from-{since.isoformat()}")
    elif until:
        parts.append(f"until-{until.isoformat()}")
    else:
        parts.append((today or timezone.localdate()).isoformat())
    return f"{'-'.join(parts)}.{extension}"


def payments_for_export(
    *,
    conference_slug: str | None = None,
    since: datetime.date | None = None,
    until: datetime.date | None = None,
    method: str | None = None,
    status: str | None = None,
) -> models.QuerySet:
    """The payments ledger filtered like the admin list, newest first."""
    queryset = Payment.objects.all()
    if conference_slug:
        queryset = queryset.filter(order__conference__slug=conference_slug)
    if method:
        queryset = queryset.filter(method=method)
    if status:
        queryset = queryset.filter(status=status)
    return filter_created_between(queryset, since, until).order_by("-created_at", "-id")


def csv_line(values: Iterable[Any]) -> str:
    """One CSV record as csv.writer (and so tablib) writes it."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def stream_csv(
    resource: LedgerResource,
    queryset: models.QuerySet,
    *,
    selected_fields: list[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[bytes]:
    """Yield the CSV export of ``queryset`` (BOM and header first) chunk by chunk."""
    columns = resource.export_columns(selected_fields)
    header = [column.column_name for column in columns]
    queryset = resource.prepare_export_queryset(queryset)
    yield BOM + csv_line(header).encode()
    # With a single column, COPY quotes a lone empty or backslash-dot cell where csv.writer
    # does not; such narrow exports are small enough for the Python path.
    if connections[queryset.db].vendor == "postgresql" and len(columns) > 1:
        yield from _copy_chunks(resource, queryset, columns, chunk_rows)
    else:
        yield from _python_chunks(resource, queryset, selected_fields, chunk_rows)


def _python_chunks(
    resource: LedgerResource,
    queryset: models.QuerySet,
    selected_fields: list[str] | None,
    chunk_rows: int,
) -> Iterator[bytes]:
    """Render rows with the Resource, reading them ``chunk_rows`` at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    pending = 0
    for instance in resource.export_rows(queryset, chunk_rows):
        writer.writerow(resource.export_resource(instance, selected_fields=selected_fields))
        pending += 1
        if pending >= chunk_rows:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending:
        yield buffer.getvalue().encode()


def copy_sql(
    resource: LedgerResource, queryset: models.QuerySet, columns: list[ExportField]
) -> tuple[str, tuple]:
    """The ``COPY (SELECT …) TO STDOUT`` statement writing these columns as CSV."""
    sql, params = resource.copy_select(queryset, columns)
    return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params


_SESSION_SETTINGS = "SELECT current_setting(%s), current_setting(%s)"
# is_local true: until the transaction ends (copy_rows puts them back itself).
_SET_SETTINGS = "SELECT set_config(%s, %s, true), set_config(%s, %s, true)"


def copy_rows(queryset: models.QuerySet, statement: str, params: tuple) -> Iterator[Any]:
    """Run the COPY with the site's time zone and yield its rows as PostgreSQL sends them."""
    connection = connections[queryset.db]
    with transaction.atomic(using=queryset.db), connection.cursor() as cursor:
        # to_char(… TZH:TZM) renders in the session zone. Django reads timestamps
        # assuming the session is in UTC, so put the zone back even when an outer
        # transaction (a test, a caller's atomic block) outlives this one.
        # JIT off: compiling the statement's few hundred cell expressions (in the
        # leader and each parallel worker) cost more than it saved, ~3 s of CPU per
        # process at 1M rows (EXPLAIN ANALYZE, bench/export.py's database).
        cursor.execute(_SESSION_SETTINGS, ["TimeZone", "jit"])
        previous = cursor.fetchone()
        cursor.execute(_SET_SETTINGS, ["TimeZone", site_time_zone_name(), "jit", "off"])
        with cursor.cursor.copy(statement, params) as copy:
            yield from copy
        # On an error the transaction's rollback puts them back (is_local), and a
        # statement here would only hide the error behind "transaction is aborted".
        cursor.execute(_SET_SETTINGS, ["TimeZone", previous[0], "jit", previous[1]])


def _copy_chunks(
    resource: LedgerResource,
    queryset: models.QuerySet,
    columns: list[ExportField],
    chunk_rows: int,
) -> Iterator[bytes]:
    """Let PostgreSQL write the CSV; end rows with CRLF like csv.writer."""
    statement, params = copy_sql(resource, queryset, columns)
    rows: list[Any] = []
    for row in copy_rows(queryset, statement, params):
        rows.append(row)
        if len(rows) >= chunk_rows:
            yield crlf_rows(rows)
            rows = []
    if rows:
        yield crlf_rows(rows)


def crlf_rows(rows: list[Any]) -> bytes:
    r"""Join COPY rows (one per libpq read, each ending in \n), ending each with \r\n."""
    data = b"".join(rows)
    if data.count(b"\n") == len(rows):
        # No line break inside a quoted cell, so every \n ends a row.
        return data.replace(b"\n", b"\r\n")
    return b"".join(bytes(row[:-1]) + b"\r\n" for row in rows)
