"""Paginating lists of a million rows without counting them.

Django's paginator runs ``COUNT(*)`` over the filtered list on every page view:
at a million payments that is most of the page's time. Here an unfiltered list
shows PostgreSQL's estimate of the table's size ("about 1,000,000"), and a
filtered one counts at most ``BACKOFFICE_LIST_COUNT_CAP`` rows + 1 (through a
``LIMIT`` subquery) and shows "10,000+" beyond it. The requested page's rows
are fetched first, one more than a page: when they end the list (a search with
a few results, the last page) they give the exact count, and the page needs
no second query.
"""

import sys
from typing import Any

from django.conf import settings
from django.contrib.admin.views.main import PAGE_VAR
from django.core.paginator import Page, Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from unfold.views import ChangeList


class AtLeast(int):
    """A count known only to be at least this many: shown as "10,000+"."""

    def __str__(self) -> str:
        return f"{int(self):,}+"


class About(int):
    """A count estimated from the database's statistics: shown as "about 1,000,000"."""

    def __str__(self) -> str:
        return f"about {int(self):,}"


def is_unfiltered(queryset: QuerySet) -> bool:
    """Whether the queryset is the whole table (no filter, search, distinct or slice)."""
    query = queryset.query
    return (
        not query.where
        and not query.distinct
        and query.combinator is None
        and not query.low_mark
        and query.high_mark is None
    )


def estimated_rows(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the model's table size (as its planner makes it), else None.

    ``reltuples`` per page of the last ANALYZE times the table's pages now, so
    rows added since are counted; None on other databases or before any ANALYZE.
    """
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT CASE WHEN reltuples < 0 THEN NULL
                        WHEN relpages = 0 THEN reltuples
                        ELSE reltuples / relpages
                             * (pg_relation_size(oid) / current_setting('block_size')::int)
                   END
            FROM pg_class WHERE oid = to_regclass(%s)
            """,
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def with_rows(queryset: QuerySet, rows: list) -> QuerySet:
    """The queryset holding already fetched rows (no query when iterated)."""
    holder = queryset.none() if not rows else queryset.filter(pk__in=[row.pk for row in rows])
    holder._result_cache = rows
    holder._prefetch_done = True
    return holder


class LargeTablePaginator(Paginator):
    """Counts with an estimate or a cap, fetching the requested page's rows with the count."""

    def __init__(self, *args: Any, page_number: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requested = page_number
        self.fetched: list | None = None

    @property
    def count_cap(self) -> int:
        """How many filtered rows are counted at most (always more than a page, to page on)."""
        return max(settings.BACKOFFICE_LIST_COUNT_CAP, self.per_page + 1)

    @cached_property
    def count(self) -> int:
        """The estimate, the exact count, or AtLeast(cap) when there are more."""
        queryset = self.object_list
        if is_unfiltered(queryset):
            estimate = estimated_rows(queryset)
            if estimate is not None and estimate > self.count_cap:
                return About(estimate)
        if self.requested is not None:
            bottom = (self.requested - 1) * self.per_page
            rows = list(queryset[bottom : bottom + self.per_page + 1])
            if rows or bottom == 0:
                self.fetched = rows[: self.per_page]
            if len(rows) <= self.per_page and (rows or bottom == 0):
                return bottom + len(rows)
        counted = queryset.order_by().values("pk")[: self.count_cap + 1].count()
        return AtLeast(self.count_cap) if counted > self.count_cap else counted

    @property
    def exact(self) -> bool:
        """Whether ``count`` is the list's true size."""
        return not isinstance(self.count, AtLeast | About)

    def validate_number(self, number: Any) -> int:
        """A page number; beyond the last counted page when the count is not exact."""
        if self.exact:
            return super().validate_number(number)
        return self._validate_number(number, sys.maxsize)

    def page(self, number: Any) -> Page:
        """The page, from the rows fetched with the count when it is the requested one."""
        number = self.validate_number(number)
        if self.fetched is not None and number == self.requested:
            return self._get_page(with_rows(self.object_list, self.fetched), number, self)
        if self.exact:
            return super().page(number)
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)


class LargeTableChangeList(ChangeList):
    """The admin's list, reusing the rows the paginator fetched with its count."""

    def get_results(self, request: HttpRequest) -> None:
        """Django's results; a list of one page takes the rows already fetched."""
        super().get_results(request)
        fetched = getattr(self.paginator, "fetched", None)
        if fetched is not None and not self.multi_page and self.paginator.requested == 1:
            self.result_list = with_rows(self.queryset, fetched)


def requested_page(request: HttpRequest) -> int:
    """The page number the list was asked for (as Django's ChangeList reads it)."""
    try:
        return max(int(request.GET.get(PAGE_VAR, 1)), 1)
    except ValueError:
        return 1


class LargeListMixin:
    """For a ModelAdmin whose list may hold a million rows: no full count, ever."""

    paginator = LargeTablePaginator
    show_full_result_count = False

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> LargeTablePaginator:
        """The paginator, told which page is wanted so it can fetch it with the count."""
        return self.paginator(
            queryset,
            per_page,
            orphans,
            allow_empty_first_page,
            page_number=requested_page(request),
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """The list that reuses the paginator's rows."""
        return LargeTableChangeList
