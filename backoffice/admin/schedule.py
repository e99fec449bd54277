"""The periodic jobs' schedule rows in the admin: read-only, when each job last ran and how."""

from datetime import datetime

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from unfold.decorators import display

from backoffice.admin.model_admin import ModelAdmin
from backoffice.models import ScheduledJob
from backoffice.services.schedule import JOBS_BY_NAME


@admin.register(ScheduledJob)
class ScheduledJobAdmin(ModelAdmin):
    """One row per periodic job, written by the workers; staff only read it."""

    list_display = (
        "name",
        "description",
        "every",
        "last_run_at",
        "last_finished_at",
        "next_run",
        "last_result",
        "last_error",
    )
    fields = list_display
    readonly_fields = list_display

    @display(description=_("what it does"))
    def description(self, obj: ScheduledJob) -> str:
        """The job's description from the registry (blank for a job no longer defined)."""
        job = JOBS_BY_NAME.get(obj.name)
        return job.description if job else ""

    @display(description=_("every"))
    def every(self, obj: ScheduledJob) -> str:
        """The job's interval, from the settings in force (e.g. '0:15:00')."""
        job = JOBS_BY_NAME.get(obj.name)
        return str(job.interval()) if job else ""

    @display(description=_("next run"))
    def next_run(self, obj: ScheduledJob) -> datetime | None:
        """When a worker will queue the job again (blank: at its next tick)."""
        job = JOBS_BY_NAME.get(obj.name)
        if job is None or obj.last_run_at is None:
            return None
        return obj.last_run_at + job.interval()

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows are written by the workers only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: ScheduledJob | None = None) -> bool:
        """Rows are written by the workers only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ScheduledJob | None = None) -> bool:
        """Rows are written by the workers only."""
        return False
