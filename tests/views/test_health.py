"""/healthz: the database answers → 200, it doesn't → 503; no auth, no host or TLS trouble."""

import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from backoffice.services.order_paid import send_order_paid_task
from tests.deploy_env import shared_database_url
from tests.fault_injection import table_locked


@pytest.mark.django_db
def test_healthz_answers_200_with_a_tiny_json_body(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "oldest_queued_task_seconds": None}
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_answers_503_when_the_database_does_not(client: Client) -> None:
    with mock.patch.object(connection, "cursor", side_effect=OperationalError("down")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


@pytest.mark.django_db
def test_healthz_ignores_the_host_header_and_the_ssl_redirect(client: Client, settings) -> None:
    settings.ALLOWED_HOSTS = ["backoffice.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    # A container HEALTHCHECK: plain http, Host: localhost (not an allowed host).
    response = client.get("/healthz", HTTP_HOST="localhost:8000")
    assert response.status_code == 200
    # The same request to any other page is refused by host validation.
    assert client.get("/admin/login/", HTTP_HOST="localhost:8000").status_code == 400


@pytest.mark.django_db
def test_healthz_needs_no_login_and_no_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.get("/healthz").status_code == 200
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 200


def queue_seconds(client: Client) -> float | None:
    """What /healthz says about the task queue (health itself stays 200)."""
    response = client.get("/healthz")
    assert response.status_code == 200
    return response.json()["oldest_queued_task_seconds"]


@pytest.mark.django_db
def test_healthz_tells_how_long_the_oldest_due_task_has_waited(client: Client) -> None:
    now = timezone.now()
    older = send_order_paid_task.enqueue(order_id=1)
    send_order_paid_task.enqueue(order_id=2)
    DBTaskResult.objects.filter(pk=older.id).update(enqueued_at=now - timedelta(seconds=90))

    assert queue_seconds(client) == pytest.approx(90, abs=5)

    # A retry in its back-off is not waiting; one due 300 s ago waits since then.
    retry = send_order_paid_task.using(run_after=now + timedelta(minutes=5)).enqueue(order_id=3)
    assert queue_seconds(client) == pytest.approx(90, abs=5)
    DBTaskResult.objects.filter(pk=retry.id).update(run_after=now - timedelta(seconds=300))
    assert queue_seconds(client) == pytest.approx(300, abs=5)


@pytest.mark.django_db
def test_healthz_ignores_finished_tasks(client: Client, run_tasks) -> None:
    result = send_order_paid_task.enqueue(order_id=1)
    DBTaskResult.objects.filter(pk=result.id).update(
        enqueued_at=timezone.now() - timedelta(hours=1)
    )
    run_tasks()

    assert queue_seconds(client) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # SET LOCAL must end with the check's own transaction
def test_healthz_answers_in_time_while_the_task_table_is_locked(client: Client) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("LOCK TABLE and statement_timeout are PostgreSQL features")
    table = DBTaskResult._meta.db_table

    with table_locked(shared_database_url(), table, release_after=10):
        started = time.monotonic()
        response = client.get("/healthz")
        took = time.monotonic() - started

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "oldest_queued_task_seconds": None}
    assert took < 2, f"/healthz took {took:.1f} s behind a locked task table"
