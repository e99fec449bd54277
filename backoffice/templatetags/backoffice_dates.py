"""Template filters for the site's one date format: ``{{ value|moment }}``, ``{{ value|day }}``."""

import datetime

from django import template

from backoffice.dates import format_day, format_moment

register = template.Library()


@register.filter(expects_localtime=False)
def moment(value: datetime.datetime | None) -> str:
    """A moment as "29 Nov 2026, 13:30 CET" (site's time zone)."""
    return format_moment(value)


@register.filter(expects_localtime=False)
def day(value: datetime.date | datetime.datetime | None) -> str:
    """A day as "29 Nov 2026"."""
    return format_day(value)
