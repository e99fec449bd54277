"""The admin site as a whole: entry points, login, sidebar."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_root_redirects_to_the_admin(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_logging_in_at_the_login_page_lands_on_the_admin(client, admin_user):
    response = client.post(
        reverse("admin:login"), {"username": admin_user.username, "password": "password"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_sidebar_shows_orders_to_front_desk_staff(desk_client):
    html = desk_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:backoffice_order_changelist") in html
    assert reverse("admin:auth_user_changelist") not in html


def test_development_badge_only_with_debug(admin_client, settings):
    settings.DEBUG = False
    assert "Development" not in admin_client.get(reverse("admin:index")).content.decode()
    settings.DEBUG = True
    assert "Development" in admin_client.get(reverse("admin:index")).content.decode()
