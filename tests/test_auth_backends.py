"""Admin login brute-force protection (django-axes)."""

import pytest
from axes.models import AccessAttempt
from django.test import Client


def login(client: Client, password: str, ip: str = "203.0.113.7"):
    """Post the admin login form from the given address."""
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "clerk", "password": password},
        REMOTE_ADDR=ip,
    )


@pytest.mark.django_db
def test_admin_login_locks_out_after_the_configured_failures(staff_user, settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        response = login(client, "wrong")
        assert response.status_code == 200  # the form again, with its error
    assert login(client, "wrong").status_code == 429
    # Locked out: even the right password is refused now.
    response = login(client, "clerk-pass-123")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.get(username="clerk").failures_since_start >= 3


@pytest.mark.django_db
def test_lockout_is_per_username_and_address(staff_user, settings) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    client = Client()
    login(client, "wrong")
    login(client, "wrong")
    assert login(client, "clerk-pass-123").status_code == 429
    other = Client()
    response = login(other, "clerk-pass-123", ip="198.51.100.9")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


@pytest.mark.django_db
def test_a_successful_login_before_the_limit_resets_the_count(staff_user, settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    login(client, "wrong")
    login(client, "wrong")
    assert login(client, "clerk-pass-123").status_code == 302
    client.logout()
    login(client, "wrong")
    assert login(client, "clerk-pass-123").status_code == 302


@pytest.mark.django_db
def test_logins_without_a_request_are_not_blocked(staff_user) -> None:
    assert Client().login(username="clerk", password="clerk-pass-123")
