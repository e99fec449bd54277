"""Export (and import) wiring shared by the ledger admins: unfold forms, BOM, streaming CSV."""

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from import_export.admin import ExportMixin, ImportMixin
from import_export.formats import base_formats
from import_export.resources import ModelResource
from import_export.results import Result
from import_export.signals import post_export
from unfold.contrib.import_export.forms import ImportForm, SelectableFieldsExportForm

from backoffice.exports import PREVIEW_ROWS
from backoffice.import_formats import BoundedCSV, BoundedXLSX
from backoffice.services import order_import
from backoffice.services.exports import (
    has_more_rows_than,
    spreadsheet_row_limit,
    stream_csv,
    streaming_threshold,
)


class ColumnExportForm(SelectableFieldsExportForm):
    """unfold's export form, each checkbox labelled with the column's header as exported."""

    def _get_field_label(self, resource: type[ModelResource], field_name: str) -> str:
        """The column name ("Attendee email"), not the field name."""
        field = resource.fields.get(field_name)
        return str(field.column_name) if field else field_name


class LedgerExportMixin(ExportMixin):
    """import-export's admin export (CSV and XLSX) styled by unfold, permission-gated.

    CSV is UTF-8 with a byte-order mark; a CSV export of more than
    ``BACKOFFICE_STREAMING_EXPORT_THRESHOLD`` rows streams (same bytes) instead of
    being built in memory, so it never runs into the worker timeout; an XLSX export
    of more than ``BACKOFFICE_XLSX_EXPORT_MAX_ROWS`` rows is refused with a message.
    """

    export_form_class = ColumnExportForm
    export_formats = [base_formats.CSV, base_formats.XLSX]
    to_encoding = "utf-8-sig"

    def has_export_permission(self, request: HttpRequest) -> bool:
        """An export shows every row: it needs the view permission besides the export one."""
        return self.has_view_permission(request) and super().has_export_permission(request)

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
        if isinstance(file_format, base_formats.CSV) and has_more_rows_than(
            queryset, streaming_threshold()
        ):
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
        limit = spreadsheet_row_limit()
        if not isinstance(file_format, base_formats.CSV) and has_more_rows_than(queryset, limit):
            self.message_user(
                request,
                f"More than {limit:,} rows is too many for an XLSX file: export CSV "
                "(streamed, any size) or narrow the filters.",
                messages.ERROR,
            )
            return HttpResponseRedirect(request.get_full_path())
        return super()._do_file_export(file_format, request, queryset, export_form=export_form)


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
