"""The admin site as a whole: entry points, login, sidebar."""

import datetime
import re

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from backoffice.fields import EncryptedTextField

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


def test_no_admin_displays_or_searches_an_encrypted_field_by_name(rf, django_user_model):
    """Django would render such a field decrypted: admins show a masked hint instead."""
    viewer = django_user_model.objects.create_user("viewer-of-all", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    request = rf.get("/")
    request.user = django_user_model.objects.get(pk=viewer.pk)  # fresh permission cache
    checked = []
    for model, model_admin in admin.site._registry.items():
        secret = {f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)}
        if not secret:
            continue
        read_only_page = flatten_fieldsets(model_admin.get_fieldsets(request, model()))
        named = [
            *model_admin.get_list_display(request),
            *model_admin.get_search_fields(request),
            *model_admin.get_readonly_fields(request, model()),
            *read_only_page,
            *(f if isinstance(f, str) else f[0] for f in model_admin.get_list_filter(request)),
        ]
        assert not secret & set(named), model.__name__
        checked.append(model.__name__)
    assert checked == ["Conference"]


def test_every_history_page_dates_and_names_like_the_rest_of_the_site(
    admin_client, conference, settings
):
    """A conference's History: "29 Nov 2026, 13:30 CET" and "Dana Desk", not "dana (Dana Desk)"."""
    settings.TIME_ZONE = "Europe/Paris"
    dana = get_user_model().objects.create_user(
        "dana", first_name="Dana", last_name="Desk", is_staff=True
    )
    entry = LogEntry.objects.log_actions(
        user_id=dana.pk, queryset=[conference], action_flag=CHANGE, change_message="Renamed."
    )[0]
    LogEntry.objects.filter(pk=entry.pk).update(
        action_time=datetime.datetime(2026, 11, 29, 12, 30, tzinfo=datetime.UTC)
    )
    url = reverse("admin:backoffice_conference_history", args=[conference.pk])
    page = admin_client.get(url).content.decode()
    row = re.search(r'<table id="admin-changes".*?</table>', page, re.S).group(0)
    assert "29 Nov 2026, 13:30 CET" in row
    assert "Dana Desk" in row and "dana" not in row
