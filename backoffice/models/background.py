"""Background work: scheduled jobs, worker heartbeats and export files."""

from django.conf import settings
from django.db import models


class ScheduledJob(models.Model):
    """One periodic job's schedule row: when the worker last started it and how it ended.

    One row per job name (unique), claimed under a row lock by the worker that
    finds it due, so a job due while several workers run is started once
    (``backoffice.services.schedule``).
    """

    name = models.CharField(max_length=100, unique=True)
    last_run_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker last found the job due and queued it."
    )
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_result = models.TextField(blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WorkerHeartbeat(models.Model):
    """A background worker's sign of life, written every few seconds while it runs.

    A task left running by a worker whose heartbeat stopped is put back in the
    queue (``backoffice.services.schedule.recover_stuck_tasks``).
    """

    worker_id = models.CharField(max_length=64, unique=True)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return self.worker_id


class ExportFile(models.Model):
    """An export written by the background worker: what was asked, by whom, and the file.

    ``list_name`` is the exported list's model label (``backoffice.payment``);
    ``filters`` the list's query parameters, as the admin list had them, from
    which the worker rebuilds the rows; ``filters_description`` says the same
    in words. The file lives in the default storage until ``expires_at``.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Being written"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="export_files"
    )
    list_name = models.CharField(max_length=100, help_text="Model label of the exported list.")
    resource_name = models.CharField(
        max_length=100, blank=True, help_text="The list's export Resource class, by name."
    )
    filters = models.JSONField(default=dict, blank=True)
    filters_description = models.TextField(blank=True)
    download_name = models.CharField(
        max_length=200,
        blank=True,
        help_text="The file's name as downloaded, given when it was asked for (list, "
        "conference, dates).",
    )
    fields = models.JSONField(
        default=list, blank=True, help_text="Columns picked on the export form; empty for all."
    )
    file_format = models.CharField(max_length=10, choices=Format.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    row_count = models.PositiveIntegerField(null=True, blank=True)
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True, max_length=255)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["requested_by", "-created_at"], name="export_user_created_idx"),
            models.Index(fields=["expires_at"], name="export_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.list_name} {self.get_file_format_display()} ({self.get_status_display()})"
