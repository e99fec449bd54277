"""/healthz: the database answers → 200, it doesn't → 503; no auth, no host or TLS trouble."""

from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test import Client


@pytest.mark.django_db
def test_healthz_answers_200_with_a_tiny_json_body(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
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
