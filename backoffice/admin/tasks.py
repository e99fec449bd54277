"""The task queue (django-tasks-db) in the admin: the backend's read-only list, in unfold's look.

Staff see each attempt of a background task with its status and traceback; a
task retried by ``backoffice.services.background`` shows its attempt number.
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django_tasks_db.admin import DBTaskResultAdmin
from django_tasks_db.models import DBTaskResult
from unfold.decorators import display

from backoffice.admin.model_admin import ModelAdmin
from backoffice.services.background import ATTEMPT_ARGUMENT

admin.site.unregister(DBTaskResult)


@admin.register(DBTaskResult)
class TaskResultAdmin(DBTaskResultAdmin, ModelAdmin):
    """The backend's task list (read-only, its fields and filters) with the attempt number."""

    list_display = (
        "task_name",
        "attempt",
        "status",
        "enqueued_at",
        "started_at",
        "finished_at",
        "queue_name",
        "id",
    )
    search_fields = ("task_path",)

    @display(description=_("attempt"))
    def attempt(self, obj: DBTaskResult) -> int:
        """Which try of the task this row is (1 for the first)."""
        kwargs = (obj.args_kwargs or {}).get("kwargs") or {}
        return kwargs.get(ATTEMPT_ARGUMENT, 1)
