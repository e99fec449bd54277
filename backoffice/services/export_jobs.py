"""Exports written by the background worker: requested, written with flat memory, expired.

An export too large for a web request (XLSX above
``BACKOFFICE_XLSX_IN_REQUEST_MAX_ROWS`` rows, or any CSV asked for as a file)
is recorded as an ``ExportFile`` and, in the same transaction, a task is
enqueued (``write_export_task``). The worker rebuilds the rows from the list's
filters as the requesting user (who must still be allowed to export them),
writes the file (XLSX through openpyxl's write-only mode, CSV through the
streaming writer) to a temporary file, stores it in the default storage and
marks the row ready with its row count. A failure is retried with back-off and
finally shown on the row. ``delete_expired_exports`` deletes files and rows
``BACKOFFICE_EXPORT_RETENTION_DAYS`` after they were ready (or failed).

Which rows a list shows is the admin's business (its filters, search and
permissions): each exportable list registers an ``ExportListBuilder`` under its
model label (``register_export_list``), and the worker, which loads the admin
like every Django process, calls it with the stored filters.
"""

import csv
import datetime
import io
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from backoffice.exports import LedgerResource
from backoffice.models import ExportFile
from backoffice.services.background import TaskFailure, retrying_task
from backoffice.services.exports import export_file_name, stream_csv
from backoffice.services.xlsx_export import write_xlsx

logger = logging.getLogger(__name__)

CONTENT_TYPES = {
    ExportFile.Format.CSV: "text/csv; charset=utf-8",
    ExportFile.Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class ExportSource:
    """What an export writes: the Resource (its columns) and the rows, in file order."""

    resource: LedgerResource
    queryset: models.QuerySet
    title: str


#: Builds a list's export for a user from the stored filters and Resource name
#: (raises PermissionDenied when the user may not export the list).
ExportListBuilder = Callable[[AbstractBaseUser, dict[str, list[str]], str], ExportSource]

#: The filters' key holding the rows picked one by one on the list (the "export" action).
SELECTED_ROWS = "_selected"

_LISTS: dict[str, ExportListBuilder] = {}


def register_export_list(list_name: str, builder: ExportListBuilder) -> None:
    """Let the worker export the list ``list_name`` (a model label) through ``builder``."""
    _LISTS[list_name] = builder


def retention() -> datetime.timedelta:
    """How long a written export is kept."""
    return datetime.timedelta(days=settings.BACKOFFICE_EXPORT_RETENTION_DAYS)


def export_permission(list_name: str) -> tuple[str, str]:
    """The view and export permissions of a list (``backoffice.payment`` → ``…_payment``)."""
    app_label, model_name = list_name.split(".", 1)
    return f"{app_label}.view_{model_name}", f"{app_label}.export_{model_name}"


def may_export(user: AbstractBaseUser, list_name: str) -> bool:
    """True when the user may export that list (and so see everyone's exports of it)."""
    return user.is_active and user.is_staff and user.has_perms(export_permission(list_name))


def visible_exports(user: AbstractBaseUser) -> models.QuerySet[ExportFile]:
    """The exports a user may see and download: their own, and all of the lists they export."""
    exported = [name for name in sorted(_LISTS) if may_export(user, name)]
    return ExportFile.objects.filter(Q(requested_by=user.pk) | Q(list_name__in=exported))


def request_export(
    *,
    user: AbstractBaseUser,
    list_name: str,
    filters: dict[str, list[str]],
    file_format: str,
    resource_name: str = "",
    fields: list[str] | None = None,
    description: str = "",
    file_name: str = "",
) -> ExportFile:
    """Record an export of the list as filtered and queue its writing, in one transaction."""
    if list_name not in _LISTS:
        raise ValidationError(f"The list “{list_name}” cannot be exported in the background.")
    if not may_export(user, list_name):
        raise PermissionDenied
    if file_format not in ExportFile.Format.values:
        raise ValidationError(f"Unknown export format “{file_format}”.")
    with transaction.atomic():
        export = ExportFile.objects.create(
            requested_by=user,
            list_name=list_name,
            resource_name=resource_name,
            filters=filters,
            filters_description=description,
            download_name=file_name,
            fields=list(fields or []),
            file_format=file_format,
            expires_at=timezone.now() + retention(),
        )
        write_export_task.enqueue(export_id=export.pk)
    logger.info(
        "Export queued",
        extra={"export": export.pk, "list": list_name, "export_format": file_format},
    )
    return export


def download_name(export: ExportFile) -> str:
    """The file's name, named like an in-request download (``services.exports.export_file_name``).

    Given by the list when the export was asked for, e.g.
    ``payments-pycon-2026-2026-10-01-to-2026-10-31.xlsx``; an export without one
    is named after its list and the day it was asked for.
    """
    if export.download_name:
        return export.download_name
    return export_file_name(
        list_name=export.list_name.split(".", 1)[1] + "s",
        extension=export.file_format,
        today=timezone.localdate(export.created_at),
    )


def content_type(export: ExportFile) -> str:
    """The file's MIME type."""
    return CONTENT_TYPES[ExportFile.Format(export.file_format)]


def write_export(export_id: int) -> ExportFile | None:
    """Write a queued export's file and mark it ready; None when there is nothing to do."""
    export = _start(export_id)
    if export is None:
        return None
    try:
        source = _LISTS[export.list_name](export.requested_by, export.filters, export.resource_name)
    except PermissionDenied:
        return _finish_failed(
            export_id, "The person who asked for this export may no longer export this list."
        )
    fields = export.fields or None
    with tempfile.TemporaryFile() as handle:
        if export.file_format == ExportFile.Format.XLSX:
            rows = write_xlsx(
                source.resource,
                source.queryset,
                handle,
                selected_fields=fields,
                title=source.title,
            )
        else:
            rows = _write_csv(source, handle, fields)
        handle.seek(0)
        export.file.save(_stored_name(export), File(handle), save=False)
    return _finish_ready(export, rows)


def _start(export_id: int) -> ExportFile | None:
    """Mark the export as being written; None if it is gone or already finished."""
    with transaction.atomic():
        export = (
            ExportFile.objects.select_for_update()
            .select_related("requested_by")
            .filter(pk=export_id)
            .first()
        )
        if export is None or export.status in (ExportFile.Status.READY, ExportFile.Status.FAILED):
            return None
        ExportFile.objects.filter(pk=export.pk).update(status=ExportFile.Status.RUNNING)
    return export


def _write_csv(source: ExportSource, handle: BinaryIO, fields: list[str] | None) -> int:
    """Write the streaming CSV export to the file; return its number of data rows."""
    for chunk in stream_csv(source.resource, source.queryset, selected_fields=fields):
        handle.write(chunk)
    handle.seek(0)
    # Count records, not lines: a cell may hold a line break.
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        return sum(1 for _ in csv.reader(text)) - 1
    finally:
        text.detach()


def _stored_name(export: ExportFile) -> str:
    """The name in storage: the download name with the export's id, unique per export."""
    stem, extension = download_name(export).rsplit(".", 1)
    return f"{stem}-{export.pk}.{extension}"


def _finish_ready(export: ExportFile, rows: int) -> ExportFile | None:
    """Mark the export ready with its file and row count (or drop the file if it was deleted)."""
    now = timezone.now()
    with transaction.atomic():
        updated = ExportFile.objects.filter(pk=export.pk).update(
            status=ExportFile.Status.READY,
            file=export.file.name,
            row_count=rows,
            error="",
            finished_at=now,
            expires_at=now + retention(),
        )
    if not updated:
        export.file.delete(save=False)
        return None
    export.refresh_from_db()
    logger.info("Export ready", extra={"export": export.pk, "rows": rows})
    return export


def _finish_failed(export_id: int, error: str) -> ExportFile | None:
    """Mark the export failed with a sentence staff can read."""
    now = timezone.now()
    ExportFile.objects.filter(pk=export_id).update(
        status=ExportFile.Status.FAILED,
        error=error,
        finished_at=now,
        expires_at=now + retention(),
    )
    return ExportFile.objects.filter(pk=export_id).first()


def record_export_failure(failure: TaskFailure) -> ExportFile | None:
    """The export task's ``on_give_up`` hook: the export is failed, with the last error."""
    attempts = f"{failure.attempts} attempt{'s' if failure.attempts != 1 else ''}"
    return _finish_failed(
        failure.arguments["export_id"],
        f"The file could not be written ({attempts}): {failure.summary}",
    )


@retrying_task(on_give_up=record_export_failure)
def write_export_task(export_id: int) -> int | None:
    """The worker's ``write_export``: returns the row count written."""
    export = write_export(export_id)
    return export.row_count if export is not None else None


def delete_expired_exports(*, now: datetime.datetime | None = None) -> int:
    """Delete exports past their ``expires_at`` with their files; return how many."""
    now = now or timezone.now()
    deleted = 0
    for export in ExportFile.objects.filter(expires_at__lte=now).order_by("pk").iterator():
        if export.file:
            export.file.delete(save=False)
        deleted += ExportFile.objects.filter(pk=export.pk).delete()[0]
    if deleted:
        logger.info("Deleted expired exports", extra={"exports": deleted})
    return deleted


def may_see_exports(user: AbstractBaseUser) -> bool:
    """True for staff who may export a list or asked for an export before."""
    if not (user.is_active and user.is_staff):
        return False
    return any(may_export(user, name) for name in _LISTS) or (
        ExportFile.objects.filter(requested_by=user.pk).exists()
    )


def filters_as_lists(params: Any) -> dict[str, list[str]]:
    """A QueryDict (the list's query string) as JSON: each name with all its values."""
    return {key: list(values) for key, values in params.lists()}
