"""Date-range list filters that include whole days in the site's time zone."""

import datetime

from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.contrib.filters.admin import RangeDateFilter
from unfold.utils import parse_date_str

from backoffice.services.exports import filter_created_between


class InclusiveDateRangeFilter(RangeDateFilter):
    """From/to date filter on a datetime: both days included whole, in the site's zone.

    unfold's ``RangeDateFilter`` compares a datetime with ``to`` as midnight, which
    drops the last day; this one ends at the start of the day after ``to``.
    """

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """Keep the rows created between the chosen days (inclusive)."""
        since, until = self.bounds()
        return filter_created_between(queryset, since, until, field=self.field_path)

    def bounds(self) -> tuple[datetime.date | None, datetime.date | None]:
        """The chosen first and last days (None when open)."""
        return self._date(f"{self.parameter_name}_from"), self._date(f"{self.parameter_name}_to")

    def describe(self) -> str:
        """The chosen days in words: "2026-10-01 to 2026-10-31", "from …", "until …"."""
        since, until = self.bounds()
        if since and until:
            return f"{since.isoformat()} to {until.isoformat()}"
        if since:
            return f"from {since.isoformat()}"
        return f"until {until.isoformat()}" if until else ""

    def _date(self, key: str) -> datetime.date | None:
        """Parse one bound, or None when it is empty; a bad date is a bad lookup."""
        value = self.used_parameters.get(key)
        if value in (None, ""):
            return None
        parsed = parse_date_str(value) if isinstance(value, str) else None
        if parsed is None:
            raise IncorrectLookupParameters(f"Not a date: {value!r}")
        return parsed
