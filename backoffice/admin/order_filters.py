"""The orders list's own filters: hold state, Needs attention and the desk's presets."""

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import RadioFilter

from backoffice.admin.navigation import (
    ATTENTION_PARAMETER,
    ATTENTION_VALUE,
    BALANCE_DUE_VALUE,
    DESK_WORK_PARAMETER,
    TO_COMP_VALUE,
)
from backoffice.models import Order
from backoffice.services.attention import needing_attention
from backoffice.services.desk_work import to_comp, with_balance_due
from backoffice.services.payment.cancellation import HoldState, with_hold


class HoldFilter(RadioFilter):
    """Pending orders by their hold: expired (ready to cancel), still active, or none set."""

    title = _("hold")
    parameter_name = "hold"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """The hold states a pending order can be in."""
        return [
            (HoldState.EXPIRED, _("Expired (pending)")),
            (HoldState.ACTIVE, _("Active (pending)")),
            (HoldState.NONE, _("None (pending)")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Order]) -> QuerySet[Order]:
        """Keep the pending orders in the chosen hold state; all orders when none is chosen."""
        value = self.value()
        if value not in set(HoldState):
            return queryset
        return with_hold(queryset, HoldState(value))


class NeedsAttentionFilter(RadioFilter):
    """The "Needs attention" preset: every order staff must look at (services/attention.py)."""

    title = _("attention")
    parameter_name = ATTENTION_PARAMETER

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """One choice: the orders that need attention."""
        return [(ATTENTION_VALUE, _("Needs attention"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Order]) -> QuerySet[Order]:
        """Keep the orders that need attention when chosen; all orders otherwise."""
        if self.value() != ATTENTION_VALUE:
            return queryset
        return needing_attention(queryset)


class DeskWorkFilter(RadioFilter):
    """The desk's presets: pending orders to comp, or pending orders with a balance due."""

    title = _("to do")
    parameter_name = DESK_WORK_PARAMETER

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """The desk's two lists of work."""
        return [(TO_COMP_VALUE, _("To comp")), (BALANCE_DUE_VALUE, _("Balance due"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Order]) -> QuerySet[Order]:
        """Keep the orders of the chosen list; all orders when none is chosen."""
        if self.value() == TO_COMP_VALUE:
            return to_comp(queryset)
        if self.value() == BALANCE_DUE_VALUE:
            return with_balance_due(queryset)
        return queryset
