"""The date filters for templates: ``|moment`` and ``|day``."""

import datetime

from django.template import Context, Template

WHEN = datetime.datetime(2026, 11, 29, 12, 30, tzinfo=datetime.UTC)


def render(source: str, **context: object) -> str:
    """Render a template using the filters."""
    return Template("{% load backoffice_dates %}" + source).render(Context(context))


def test_moment_and_day_render_the_site_format(settings):
    settings.TIME_ZONE = "Europe/Paris"
    assert render("{{ when|moment }}", when=WHEN) == "29 Nov 2026, 13:30 CET"
    assert render("{{ when|day }}", when=WHEN) == "29 Nov 2026"


def test_a_missing_date_is_a_dash():
    assert render("{{ when|moment }}/{{ when|day }}", when=None) == "—/—"
