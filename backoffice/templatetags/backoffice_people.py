"""Template filter naming a person as the site does everywhere: ``{{ user|person }}``."""

from django import template
from django.contrib.auth.base_user import AbstractBaseUser

from backoffice.models import actor_name

register = template.Library()


@register.filter
def person(user: AbstractBaseUser | None) -> str:
    """The user's full name, else the username (a dash for nobody)."""
    return actor_name(user)
