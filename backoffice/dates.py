"""The one rendering of a day and of a moment for people: "29 Nov 2026", "29 Nov 2026, 13:30 CET".

The formats are the locale's (``config/formats/en/formats.py``), so these agree
with what Django and unfold render themselves (read-only fields, list columns
of date fields). Moments are shown in the site's time zone (``TIME_ZONE``),
named. Exports are for machines and keep ISO 8601 (``backoffice/exports.py``).
"""

import datetime

from django.utils import timezone
from django.utils.formats import date_format

#: What a missing date reads as.
NO_DATE = "—"


def format_moment(value: datetime.datetime | None) -> str:
    """A moment in the site's time zone, e.g. "29 Nov 2026, 13:30 CET"."""
    if value is None:
        return NO_DATE
    return date_format(timezone.localtime(value), "DATETIME_FORMAT")


def format_day(value: datetime.date | datetime.datetime | None) -> str:
    """A day, e.g. "29 Nov 2026" (a moment's day in the site's time zone)."""
    if value is None:
        return NO_DATE
    if isinstance(value, datetime.datetime):
        value = timezone.localtime(value)
    return date_format(value, "DATE_FORMAT")


def format_time(value: datetime.datetime) -> str:
    """A moment's time of day in the site's time zone, e.g. "13:30 CET"."""
    return date_format(timezone.localtime(value), "TIME_FORMAT")
