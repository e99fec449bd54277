"""The dashboard (admin index) for a superuser and for a finance user, on the bench database.

``measure_dashboard(db_name)`` runs inside a Django process already pointed at
``db_name`` and returns one row per user: ``{"what", "median_ms", "queries",
"slowest_sql_ms", "cpu_ms"}``.
"""

from page_timing import plain_static_files, time_get


def finance_user():  # noqa: ANN201 (a User)
    """The bench's finance clerk (staff, in the Finance group), created once."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from backoffice.services.staff_groups import FINANCE, create_staff_groups

    create_staff_groups()
    user, created = get_user_model().objects.get_or_create(
        username="bench-finance", defaults={"is_staff": True, "email": "finance@example.com"}
    )
    if created:
        user.groups.add(Group.objects.get(name=FINANCE))
    return user


def measure_dashboard(db_name: str) -> list[dict]:
    """Time the admin index as a superuser and as a finance user."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    assert connection.settings_dict["NAME"] == db_name, connection.settings_dict["NAME"]
    rows = []
    users = [
        ("Dashboard, superuser", get_user_model().objects.get(username="bench-admin")),
        ("Dashboard, finance user", finance_user()),
    ]
    with plain_static_files():
        for what, user in users:
            client = Client()
            client.force_login(user)
            rows.append(time_get(what, client, "/admin/"))
    return rows
