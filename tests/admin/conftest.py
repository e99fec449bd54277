"""Admin fixtures: staff users with and without the desk permissions, logged-in clients."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client


def _staff_with(username: str, *codenames: str):
    """Create a staff user holding exactly the given backoffice permissions."""
    user = get_user_model().objects.create_user(
        username=username,
        email=f"{username}@example.com",
        password=f"{username}-pass-123",
        is_staff=True,
        first_name=username.title(),
    )
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="backoffice", codename__in=codenames)
    )
    return user


@pytest.fixture
def desk_user(db):
    """Front-desk staff: may view orders, record manual payments and mark comp."""
    return _staff_with("desk", "view_order", "record_manual_payment", "mark_comp")


@pytest.fixture
def viewer_user(db):
    """Staff who may only look at orders."""
    return _staff_with("viewer", "view_order")


@pytest.fixture
def desk_client(desk_user) -> Client:
    """A client logged in as front-desk staff."""
    client = Client()
    client.force_login(desk_user)
    return client


@pytest.fixture
def viewer_client(viewer_user) -> Client:
    """A client logged in as view-only staff."""
    client = Client()
    client.force_login(viewer_user)
    return client


@pytest.fixture
def finance_user(db):
    """Finance staff: may view orders and refund payments."""
    return _staff_with("finance", "view_order", "refund_payment")


@pytest.fixture
def finance_client(finance_user) -> Client:
    """A client logged in as finance staff."""
    client = Client()
    client.force_login(finance_user)
    return client
