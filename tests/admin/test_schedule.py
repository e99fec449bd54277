"""The periodic jobs' schedule rows in the admin: read-only, under Staff."""

import pytest
from django.urls import reverse

from backoffice.models import ScheduledJob
from backoffice.services.schedule import tick

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:backoffice_scheduledjob_changelist"


def test_superusers_see_each_job_with_its_interval_and_last_run(admin_client, run_tasks):
    tick()
    run_tasks()

    response = admin_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    html = response.content.decode()
    for name in (
        "stripe_resync",
        "recover_stuck_tasks",
        "prune_task_results",
        "delete_expired_exports",
    ):
        assert name in html
    assert "0:15:00" in html and "1 day, 0:00:00" in html
    assert "Checked 0 orders, 0 payments changed, 0 errors." in html
    assert reverse(CHANGELIST) in admin_client.get(reverse("admin:index")).content.decode()


def test_nobody_edits_a_schedule_row(admin_client):
    tick()
    job = ScheduledJob.objects.get(name="stripe_resync")

    response = admin_client.get(reverse("admin:backoffice_scheduledjob_change", args=[job.pk]))

    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()
    assert admin_client.get(reverse("admin:backoffice_scheduledjob_add")).status_code == 403


def test_desk_staff_see_neither_the_list_nor_its_sidebar_link(desk_client):
    assert desk_client.get(reverse(CHANGELIST)).status_code == 403
    assert reverse(CHANGELIST) not in desk_client.get(reverse("admin:index")).content.decode()
