"""Export (and import) wiring shared by the ledger admins: unfold forms, BOM, streaming CSV."""

import datetime
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.filters import FieldListFilter
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    QueryDict,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from import_export.admin import ExportMixin, ImportMixin
from import_export.formats import base_formats
from import_export.resources import ModelResource
from import_export.results import Result
from import_export.signals import post_export
from unfold.contrib.import_export.forms import ImportForm, SelectableFieldsExportForm

from backoffice.admin.date_filters import InclusiveDateRangeFilter
from backoffice.admin.pagination import About, AtLeast
from backoffice.exports import PREVIEW_ROWS
from backoffice.import_formats import BoundedCSV, BoundedXLSX
from backoffice.models import Conference
from backoffice.services import export_jobs, order_import
from backoffice.services.exports import (
    export_file_name,
    has_more_rows_than,
    spreadsheet_row_limit,
    stream_csv,
    streaming_threshold,
)
from backoffice.spreadsheet import TextCellXLSX

#: Where the format last exported is kept (per user, in their session) to pre-select it.
FORMAT_SESSION_KEY = "backoffice_export_format"
ALL_ROWS = "All rows"


@dataclass(frozen=True)
class ExportScope:
    """What an export of a list covers, as the export page and the file name say it."""

    list_title: str
    filters: str
    rows: int
    conference: str = ""
    since: datetime.date | None = None
    until: datetime.date | None = None
    units: tuple[str, str] = ("row", "rows")
    rows_note: str = ""

    @property
    def rows_text(self) -> str:
        """The count as the list shows it ("1 row", "1,234 rows", "10,000+ rows"), noted."""
        rows = self.rows
        count = str(rows) if isinstance(rows, AtLeast | About) else f"{rows:,}"
        text = f"{count} {self.units[0] if rows == 1 else self.units[1]}"
        return f"{text}, {self.rows_note}" if self.rows_note else text


class ColumnExportForm(SelectableFieldsExportForm):
    """unfold's export form, each checkbox labelled with the column's header as exported.

    "Prepare a file" sends the export to the background worker whatever its size.
    """

    prepare_file = forms.BooleanField(
        required=False,
        label="Prepare a file to download later",
        help_text=(
            "The file is written in the background and listed under Exports; "
            "large XLSX exports always are."
        ),
    )

    def _init_formats(self, formats: list[type[base_formats.Format]]) -> None:
        """The library's format choices, named as people write them ("CSV", "XLSX")."""
        super()._init_formats(formats)
        field = self.fields["format"]
        field.choices = [(value, label.upper()) for value, label in field.choices]

    def _get_field_label(self, resource: type[ModelResource], field_name: str) -> str:
        """The column name ("Attendee email"), not the field name."""
        field = resource.fields.get(field_name)
        return str(field.column_name) if field else field_name


class LedgerExportMixin(ExportMixin):
    """import-export's admin export (CSV and XLSX) styled by unfold, permission-gated.

    Three paths, chosen in ``_do_file_export``:

    - in the background (``services.export_jobs``): an XLSX export of more than
      ``BACKOFFICE_XLSX_IN_REQUEST_MAX_ROWS`` rows, or any export with "Prepare a
      file" ticked, is queued; the worker writes the file and the Exports list
      offers it for download;
    - streamed: a CSV export of more than ``BACKOFFICE_STREAMING_EXPORT_THRESHOLD``
      rows streams (same bytes), so it never runs into the worker timeout;
    - in memory: the rest, by the library. CSV is UTF-8 with a byte-order mark.
    """

    export_form_class = ColumnExportForm
    export_formats = [base_formats.CSV, TextCellXLSX]
    export_template_name = "admin/backoffice/export.html"
    to_encoding = "utf-8-sig"
    # What the export page counts (the list's rows), and what else the file holds per row.
    export_row_units: tuple[str, str] = ("row", "rows")
    export_rows_note = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        export_jobs.register_export_list(self.model._meta.label_lower, self.background_source)

    def has_export_permission(self, request: HttpRequest) -> bool:
        """An export shows every row: it needs the view permission besides the export one."""
        return self.has_view_permission(request) and super().has_export_permission(request)

    def get_export_data(
        self,
        file_format: base_formats.Format,
        request: HttpRequest,
        queryset: QuerySet,
        **kwargs: Any,
    ) -> bytes | str:
        """The library's, with native cells (numbers, dates) in our XLSX as in its own.

        import-export picks native cells by the format's exact class (``BINARY_FORMATS``).
        """
        if not isinstance(file_format, TextCellXLSX):
            return super().get_export_data(file_format, request, queryset, **kwargs)
        if not self.has_export_permission(request):
            raise PermissionDenied
        kwargs.pop("encoding", None)
        data = self.get_data_for_export(request, queryset, force_native_type=True, **kwargs)
        return file_format.export_data(data)

    def _do_file_export(
        self,
        file_format: base_formats.Format,
        request: HttpRequest,
        queryset: QuerySet,
        export_form: Any = None,
    ) -> HttpResponse:
        """Stream large CSV exports; leave the rest to the library."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        request.session[FORMAT_SESSION_KEY] = file_format.get_extension()
        is_csv = isinstance(file_format, base_formats.CSV)
        wants_file = bool(export_form and export_form.cleaned_data.get("prepare_file"))
        if wants_file or (not is_csv and has_more_rows_than(queryset, spreadsheet_row_limit())):
            return self.queue_export(request, file_format, export_form)
        if is_csv and has_more_rows_than(queryset, streaming_threshold()):
            resource_class = self.choose_export_resource_class(export_form, request)
            resource = resource_class(**self.get_export_resource_kwargs(request))
            fields = self.get_export_resource_fields_from_form(export_form)
            response = StreamingHttpResponse(
                stream_csv(resource, queryset, selected_fields=fields),
                content_type="text/csv; charset=utf-8",
            )
            filename = self.get_export_filename(request, queryset, file_format)
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            post_export.send(sender=None, model=self.model)
            return response
        return super()._do_file_export(file_format, request, queryset, export_form=export_form)

    def queue_export(
        self, request: HttpRequest, file_format: base_formats.Format, export_form: Any
    ) -> HttpResponse:
        """Hand the export to the worker and show the Exports list, saying it is coming."""
        filters = export_jobs.filters_as_lists(request.GET)
        if export_form is not None and "export_items" in export_form.changed_data:
            filters[export_jobs.SELECTED_ROWS] = [
                str(pk) for pk in export_form.cleaned_data["export_items"]
            ]
        resource_class = self.choose_export_resource_class(export_form, request)
        try:
            export_jobs.request_export(
                user=request.user,
                list_name=self.model._meta.label_lower,
                filters=filters,
                file_format=file_format.get_extension(),
                resource_name=resource_class.__name__,
                fields=self.get_export_resource_fields_from_form(export_form),
                description=self.describe_export_filters(request, filters),
                file_name=self.get_export_filename(request, None, file_format),
            )
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        exports_url = reverse("admin:backoffice_exportfile_changelist")
        self.message_user(
            request,
            format_html(
                "Your export is being prepared. It will be listed under "
                '<a href="{}">Exports</a> with a download link when it is ready.',
                exports_url,
            ),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(exports_url)

    def describe_export_filters(self, request: HttpRequest, filters: dict[str, list]) -> str:
        """The list's filters and search in words, e.g. "Status: Succeeded; Search: “x”"."""
        description = self.export_scope(request).filters
        if export_jobs.SELECTED_ROWS in filters:
            selected = f"{len(filters[export_jobs.SELECTED_ROWS]):,} selected rows"
            return selected if description == ALL_ROWS else f"{description}; {selected}"
        return description

    def export_scope(self, request: HttpRequest) -> "ExportScope":
        """What the list shows for this query string: its filters in words, conference, days, rows.

        Read from the list's own filters (one change list, its first page and capped count),
        once per request.
        """
        scope = getattr(request, "_backoffice_export_scope", None)
        if scope is None:
            scope = self._read_export_scope(request)
            request._backoffice_export_scope = scope  # type: ignore[attr-defined]
        return scope

    def _read_export_scope(self, request: HttpRequest) -> "ExportScope":
        """``export_scope`` without the per-request memo."""
        changelist = self.get_changelist_instance(request)
        parts = []
        conference = ""
        since = until = None
        for spec in changelist.filter_specs:
            used = getattr(spec, "used_parameters", None)
            if not used:
                continue
            if isinstance(spec, InclusiveDateRangeFilter):
                since, until = spec.bounds()
                described = spec.describe()
            else:
                labels = _value_labels(spec)
                values = [str(v) for value in used.values() for v in _as_list(value) if v != ""]
                described = ", ".join(labels.get(value, value) for value in values)
                conference = conference or _conference_slug(spec, values)
            parts.append(f"{str(spec.title).capitalize()}: {described}")
        if changelist.query:
            parts.append(f"Search: “{changelist.query}”")
        return ExportScope(
            list_title=self.export_list_title(),
            filters="; ".join(parts) or ALL_ROWS,
            rows=changelist.result_count,
            conference=conference,
            since=since,
            until=until,
            units=self.export_row_units,
            rows_note=self.export_rows_note,
        )

    def export_list_title(self) -> str:
        """The exported list's name, e.g. "Payments"."""
        return str(self.model._meta.verbose_name_plural).capitalize()

    def get_export_filename(
        self, request: HttpRequest, queryset: QuerySet | None, file_format: base_formats.Format
    ) -> str:
        """``payments-pycon-2026-2026-10-01-to-2026-10-31.csv``: list, conference, days."""
        scope = self.export_scope(request)
        return export_file_name(
            list_name=scope.list_title,
            extension=file_format.get_extension(),
            conference=scope.conference,
            since=scope.since,
            until=scope.until,
        )

    def init_request_context_data(self, request: HttpRequest, form: Any) -> dict[str, Any]:
        """The export page: titled after the list, saying what it exports, last format chosen."""
        context = super().init_request_context_data(request, form)
        scope = self.export_scope(request)
        context["title"] = f"Export {scope.list_title.lower()}"
        context["export_scope"] = scope
        if not form.is_bound:
            last = request.session.get(FORMAT_SESSION_KEY)
            for index, file_format in enumerate(self.get_export_formats()):
                if file_format().get_extension() == last:
                    form.initial["format"] = str(index)
        return context

    def background_source(
        self, user: AbstractBaseUser, filters: dict[str, list[str]], resource_name: str
    ) -> export_jobs.ExportSource:
        """The worker's view of this list: its rows as ``user`` filtered them, and the Resource."""
        request = HttpRequest()
        request.method = "GET"
        request.user = user
        request.path = reverse(
            f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_changelist"
        )
        params = QueryDict(mutable=True)
        for key, values in filters.items():
            if key != export_jobs.SELECTED_ROWS:
                params.setlist(key, values)
        request.GET = params
        if not self.has_export_permission(request):
            raise PermissionDenied
        queryset = self.get_export_queryset(request)
        if export_jobs.SELECTED_ROWS in filters:
            queryset = queryset.filter(pk__in=filters[export_jobs.SELECTED_ROWS])
        classes = {cls.__name__: cls for cls in self.get_export_resource_classes(request)}
        resource_class = classes.get(resource_name) or self.get_export_resource_classes(request)[0]
        return export_jobs.ExportSource(
            resource=resource_class(**self.get_export_resource_kwargs(request)),
            queryset=queryset,
            title=str(self.model._meta.verbose_name_plural).capitalize(),
        )


def _conference_slug(spec: Any, values: list[str]) -> str:
    """The slug of the one conference a related filter picked, else ''."""
    field = getattr(spec, "field", None)
    if getattr(field, "related_model", None) is not Conference or len(values) != 1:
        return ""
    return Conference.objects.filter(pk=values[0]).values_list("slug", flat=True).first() or ""


def _value_labels(spec: Any) -> dict[str, str]:
    """A filter's values with their labels: its lookups (presets too), choices or related rows."""
    pairs = list(getattr(spec, "lookup_choices", None) or [])
    if isinstance(spec, FieldListFilter):
        pairs += list(getattr(spec.field, "flatchoices", None) or [])
    return {str(value): str(label) for value, label in pairs}


def _as_list(value: Any) -> list[Any]:
    """A filter parameter's value(s) as a list."""
    return list(value) if isinstance(value, list | tuple) else [value]


class LimitedImportForm(ImportForm):
    """unfold's import form, refusing a file over ``BACKOFFICE_IMPORT_MAX_BYTES`` unread."""

    def clean_import_file(self) -> UploadedFile:
        """The uploaded file, if it is within the size limit."""
        import_file = self.cleaned_data["import_file"]
        order_import.check_file_size(import_file.size)
        return import_file


class LedgerImportMixin(ImportMixin):
    """import-export's admin import (CSV and XLSX, dry-run preview first), permission-gated.

    A file over the size or row limit, or one that cannot be read, is refused
    with a sentence on the form; the preview shows its first ``PREVIEW_ROWS``
    rows (every row is checked) and at most that many rows with problems.
    """

    import_form_class = LimitedImportForm
    import_formats = [BoundedCSV, BoundedXLSX]
    from_encoding = "utf-8-sig"  # reads files with or without a byte-order mark

    def has_import_permission(self, request: HttpRequest) -> bool:
        """Importing shows rows like the list does: it needs the view permission too."""
        return self.has_view_permission(request) and super().has_import_permission(request)

    def add_data_read_fail_error_to_form(self, form: ImportForm, e: Exception) -> None:
        """Say why the file could not be read, in words a clerk can act on."""
        if isinstance(e, ValidationError):
            message = " ".join(e.messages)
        elif isinstance(e, UnicodeDecodeError):
            message = (
                "This file is not UTF-8 text. Save it from your spreadsheet as "
                "“CSV UTF-8”, or upload it as XLSX."
            )
        else:
            message = (
                "This file could not be read as the format chosen. Check that the format "
                "(CSV or XLSX) matches the file and that it opens in a spreadsheet."
            )
        form.add_error("import_file", message)

    def import_action(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        """The import page; a preview lists only its first rows and says how many it hides."""
        response = super().import_action(request, **kwargs)
        result = getattr(response, "context_data", {}).get("result")
        if isinstance(response, TemplateResponse) and result is not None:
            self.shorten_preview(request, result)
        return response

    def shorten_preview(self, request: HttpRequest, result: Result) -> None:
        """Keep the first ``PREVIEW_ROWS`` rows (or rows with problems) on the page."""
        invalid = len(result.invalid_rows)
        if invalid > PREVIEW_ROWS:
            result.invalid_rows = result.invalid_rows[:PREVIEW_ROWS]
            self.message_user(
                request,
                f"{invalid:,} of {result.total_rows:,} rows have problems; the first "
                f"{PREVIEW_ROWS} are listed below. Correct them and upload the file again.",
                messages.ERROR,
            )
        elif not result.has_errors() and not invalid and len(result.rows) > PREVIEW_ROWS:
            total = len(result.rows)
            result.rows = result.rows[:PREVIEW_ROWS]
            self.message_user(
                request,
                f"All {total:,} rows were checked; the first {PREVIEW_ROWS} are shown below.",
                messages.INFO,
            )

    def process_import(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        """The confirm step; a file that can no longer be read is refused with a message."""
        try:
            return super().process_import(request, **kwargs)
        except ValidationError as exc:
            return self.refuse_import(request, " ".join(exc.messages))

    def refuse_import(self, request: HttpRequest, reason: str) -> HttpResponse:
        """Say that nothing was imported and why, back on the import page."""
        self.message_user(request, f"Nothing was imported. {reason}", messages.ERROR)
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_import"))

    def process_result(self, result: Result, request: HttpRequest) -> HttpResponse:
        """After the confirm step: the library's success, or say that nothing was imported."""
        if result.has_errors() or result.has_validation_errors():
            return self.refuse_import(
                request,
                "The file no longer passes the checks (the data changed since the preview). "
                "Upload it again to see why.",
            )
        return super().process_result(result, request)


class LedgerImportExportMixin(LedgerImportMixin, LedgerExportMixin):
    """Both, with the change list showing the import and the export buttons."""

    import_export_change_list_template = "admin/import_export/change_list_import_export.html"
