"""The one date format: "29 Nov 2026" and "29 Nov 2026, 13:30 CET", as Django renders it too."""

import datetime

import pytest
from django.template import Context, Template
from django.utils import timezone
from django.utils.formats import localize

from backoffice.dates import format_day, format_moment, format_time

UTC = datetime.UTC
WINTER = datetime.datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
SUMMER = datetime.datetime(2026, 7, 1, 22, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def paris(settings):
    """The site in Paris: times move and the zone's name changes with the season."""
    settings.TIME_ZONE = "Europe/Paris"


def test_a_moment_is_day_month_year_and_time_with_the_zone_named():
    assert format_moment(WINTER) == "29 Nov 2026, 13:30 CET"
    assert format_moment(SUMMER) == "2 Jul 2026, 00:05 CEST"


def test_a_day_is_the_local_day():
    assert format_day(SUMMER) == "2 Jul 2026"  # 22:05 UTC is past midnight in Paris
    assert format_day(datetime.date(2026, 5, 3)) == "3 May 2026"


def test_a_time_names_its_zone():
    assert format_time(WINTER) == "13:30 CET"


def test_nothing_reads_as_a_dash():
    assert (format_moment(None), format_day(None)) == ("—", "—")


def test_the_site_time_zone_is_named_whatever_it_is(settings):
    settings.TIME_ZONE = "UTC"
    assert format_moment(WINTER) == "29 Nov 2026, 12:30 UTC"


def test_django_renders_dates_the_same_way():
    """Read-only fields and list columns of date fields go through localize()."""
    assert localize(timezone.localtime(WINTER)) == format_moment(WINTER)
    assert localize(datetime.date(2026, 11, 29)) == "29 Nov 2026"
    rendered = Template('{{ when }}|{{ when|date:"DATETIME_FORMAT" }}').render(
        Context({"when": WINTER})
    )
    assert rendered == "29 Nov 2026, 13:30 CET|29 Nov 2026, 13:30 CET"
