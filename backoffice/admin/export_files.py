"""Exports written by the background worker: who asked, what, status, and the download.

Staff see their own exports, and every export of a list they may export
themselves (its view and export permissions); the file is only ever sent by
the Download action, which checks exactly that, never from a public URL.
"""

from django.apps import apps
from django.contrib import admin
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.html import format_html
from unfold.decorators import display

from backoffice.admin.ledger import local_moment
from backoffice.admin.model_admin import ModelAdmin
from backoffice.admin.permissions import action
from backoffice.models import ExportFile, user_name
from backoffice.services import export_jobs

STATUS_COLOURS = {
    ExportFile.Status.QUEUED: "info",
    ExportFile.Status.RUNNING: "info",
    ExportFile.Status.READY: "success",
    ExportFile.Status.FAILED: "danger",
}


@admin.register(ExportFile)
class ExportFileAdmin(ModelAdmin):
    """The Exports list: read-only, newest first, with a download link on ready files."""

    list_display = (
        "created",
        "exported_list",
        "filters_description",
        "file_format",
        "status_label",
        "row_count",
        "requester",
        "expires",
        "download_link",
    )
    list_display_links = None
    list_filter = ("status", "file_format")
    list_select_related = ("requested_by",)
    actions_detail = ("download",)
    ordering = ("-created_at", "-id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExportFile]:
        """Only the exports this user may see."""
        return export_jobs.visible_exports(request.user).select_related("requested_by")

    def has_module_permission(self, request: HttpRequest) -> bool:
        """Shown to staff who export, or who asked for an export before."""
        return export_jobs.may_see_exports(request.user)

    def has_view_permission(self, request: HttpRequest, obj: ExportFile | None = None) -> bool:
        """The list for those who may see exports; an export for whom it is visible."""
        if obj is None:
            return export_jobs.may_see_exports(request.user)
        return export_jobs.visible_exports(request.user).filter(pk=obj.pk).exists()

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Exports are asked for from the lists' Export button."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: ExportFile | None = None) -> bool:
        """An export is a record of what was written."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ExportFile | None = None) -> bool:
        """Files expire on their own (``delete_expired_exports``)."""
        return False

    def get_actions_detail(self, request: HttpRequest, object_id: int | str) -> list:
        """The Download button only on a ready export."""
        permitted = super().get_actions_detail(request, object_id)
        ready = self.get_queryset(request).filter(pk=object_id, status=ExportFile.Status.READY)
        return permitted if ready.exists() else []

    @display(description="Requested", ordering="created_at")
    def created(self, export: ExportFile) -> str:
        """When it was asked for."""
        return local_moment(export.created_at)

    @display(description="Requested by", ordering="requested_by__username")
    def requester(self, export: ExportFile) -> str:
        """Who asked for it, named as everywhere in the admin."""
        return user_name(export.requested_by)

    @display(description="List")
    def exported_list(self, export: ExportFile) -> str:
        """The exported list's name ("Payments")."""
        try:
            model = apps.get_model(export.list_name)
        except LookupError:
            return export.list_name
        return str(model._meta.verbose_name_plural).capitalize()

    @display(
        description="Status",
        ordering="status",
        label={str(status.label): colour for status, colour in STATUS_COLOURS.items()},
    )
    def status_label(self, export: ExportFile) -> str:
        """The status as a coloured label (the error follows a failure)."""
        return export.get_status_display()

    @display(description="Expires", ordering="expires_at")
    def expires(self, export: ExportFile) -> str:
        """When the file will be deleted."""
        return local_moment(export.expires_at)

    @display(description="File")
    def download_link(self, export: ExportFile) -> str:
        """A download link when the file is ready; the error when it failed."""
        if export.status == ExportFile.Status.READY:
            url = reverse("admin:backoffice_exportfile_download", args=[export.pk])
            return format_html(
                '<a class="text-primary-600" href="{}">Download {}</a>',
                url,
                export_jobs.download_name(export),
            )
        return export.error

    @action(description="Download", url_path="download")
    def download(self, request: HttpRequest, object_id: str) -> FileResponse:
        """Send the file to someone who may see this export (404 for anyone else)."""
        export = get_object_or_404(
            export_jobs.visible_exports(request.user),
            pk=object_id,
            status=ExportFile.Status.READY,
        )
        return FileResponse(
            export.file.open("rb"),
            as_attachment=True,
            filename=export_jobs.download_name(export),
            content_type=export_jobs.content_type(export),
        )
