"""Export (and import) wiring shared by the ledger admins: unfold forms, BOM, streaming CSV."""

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from import_export.admin import ExportMixin, ImportMixin
from import_export.formats import base_formats
from import_export.resources import ModelResource
from import_export.signals import post_export
from unfold.contrib.import_export.forms import ImportForm, SelectableFieldsExportForm

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


class LedgerImportMixin(ImportMixin):
    """import-export's admin import (CSV and XLSX, dry-run preview first), permission-gated."""

    import_form_class = ImportForm
    import_formats = [base_formats.CSV, base_formats.XLSX]
    from_encoding = "utf-8-sig"  # reads files with or without a byte-order mark

    def has_import_permission(self, request: HttpRequest) -> bool:
        """Importing shows rows like the list does: it needs the view permission too."""
        return self.has_view_permission(request) and super().has_import_permission(request)


class LedgerImportExportMixin(LedgerImportMixin, LedgerExportMixin):
    """Both, with the change list showing the import and the export buttons."""

    import_export_change_list_template = "admin/import_export/change_list_import_export.html"
