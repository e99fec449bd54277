"""The ``|person`` filter: people named as everywhere on the site."""

import pytest
from django.contrib.auth import get_user_model
from django.template import Context, Template

pytestmark = pytest.mark.django_db


def render(user: object) -> str:
    """Render ``{{ user|person }}``."""
    return Template("{% load backoffice_people %}{{ user|person }}").render(Context({"user": user}))


def test_a_person_is_their_full_name_else_their_username():
    User = get_user_model()  # noqa: N806
    assert render(User.objects.create_user("dana", first_name="Dana", last_name="Desk")) == (
        "Dana Desk"
    )
    assert render(User.objects.create_user("nemo")) == "nemo"


def test_nobody_is_a_dash():
    assert render(None) == "—"
