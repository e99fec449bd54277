"""The background task list in the admin: django-tasks-db's read-only list under unfold."""

from decimal import Decimal

import pytest
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from backoffice.services.payment import PaymentService
from backoffice.signals import order_paid

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_tasks_database_dbtaskresult_changelist"


@pytest.fixture
def failed_twice(make_order, settings, run_tasks) -> list[DBTaskResult]:
    """order_paid for a paid order, failing on both of its two allowed attempts."""
    settings.BACKOFFICE_TASK_MAX_ATTEMPTS = 2
    settings.BACKOFFICE_TASK_RETRY_DELAY_SECONDS = 0

    def broken(sender, order, **kwargs):
        raise RuntimeError("mail server down")

    PaymentService.record_manual(make_order("10.00"), amount=Decimal("10.00"))
    order_paid.connect(broken)
    try:
        assert run_tasks() == 2
    finally:
        order_paid.disconnect(broken)
    return list(DBTaskResult.objects.order_by("enqueued_at"))


def test_staff_see_each_attempt_of_a_failed_task_with_its_number(admin_client, failed_twice):
    response = admin_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("send_order_paid_task") == 2
    assert html.count("Failed") >= 2
    result_list = response.context["cl"].result_list
    admin_class = response.context["cl"].model_admin
    assert sorted(admin_class.attempt(row) for row in result_list) == [1, 2]


def test_a_failed_attempt_shows_its_traceback_read_only(admin_client, failed_twice):
    last = failed_twice[-1]

    response = admin_client.get(
        reverse("admin:django_tasks_database_dbtaskresult_change", args=[last.pk])
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "RuntimeError: mail server down" in html
    assert 'name="_save"' not in html  # nobody edits the queue by hand


def test_the_sidebar_links_the_task_list_for_superusers_only(admin_client, desk_client):
    link = reverse(CHANGELIST)
    assert link in admin_client.get(reverse("admin:index")).content.decode()
    assert link not in desk_client.get(reverse("admin:index")).content.decode()
