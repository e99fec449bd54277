"""Orders in the admin: ``OrderAdmin``, composed of the modules beside it.

The list's filters are in ``order_filters``, its columns in ``order_columns``, the order
page's tables in ``order_inlines`` and the desk actions, one module per workflow, in
``order_*_actions``. Each action calls one ``PaymentService`` method per order and turns
its ``ValidationError`` into a form error or a message; none holds a business rule.
"""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.widgets import UnfoldAdminTextareaWidget

from backoffice.admin.date_filters import InclusiveDateRangeFilter
from backoffice.admin.exporting import LedgerImportExportMixin
from backoffice.admin.model_admin import ModelAdmin
from backoffice.admin.navigation import ATTENTION_PARAMETER, ATTENTION_VALUE
from backoffice.admin.order_attention_actions import OrderAttentionActionsMixin
from backoffice.admin.order_cancel_actions import OrderCancelActionsMixin
from backoffice.admin.order_columns import OrderColumnsMixin
from backoffice.admin.order_emails import OrderEmailInline
from backoffice.admin.order_filters import DeskWorkFilter, HoldFilter, NeedsAttentionFilter
from backoffice.admin.order_inlines import (
    OrderHistoryInline,
    OrderLineItemInline,
    PaymentHistoryInline,
)
from backoffice.admin.order_link_actions import OrderLinkActionsMixin
from backoffice.admin.order_payment_actions import OrderPaymentActionsMixin
from backoffice.admin.order_refund_actions import OrderRefundActionsMixin
from backoffice.admin.order_stripe_actions import OrderStripeActionsMixin
from backoffice.admin.pagination import LargeListMixin
from backoffice.exports import OrderResource
from backoffice.models import Order
from backoffice.services.attention import attention_reasons
from backoffice.services.ledger import search_orders
from backoffice.services.payment import OrderAction, allowed_actions
from backoffice.services.search import search_orders_text

# The order page's buttons and the service action each one runs.
DETAIL_ACTIONS = {
    "mark_comp": OrderAction.RECORD_COMP,
    "record_manual": OrderAction.RECORD_MANUAL,
    "regenerate_payment_link": OrderAction.REGENERATE_PAYMENT_LINK,
    "send_payment_link": OrderAction.SEND_PAYMENT_LINK,
    "resolve_attention": OrderAction.RESOLVE_ATTENTION,
    "cancel_order": OrderAction.CANCEL,
    "refund": OrderAction.REFUND,
    "sync_from_stripe": OrderAction.SYNC_STRIPE,
}

# The columns the Needs attention preset leaves out to make room for its reasons.
ATTENTION_DROPS = ("total_display", "paid_display")


@admin.register(Order)
class OrderAdmin(
    OrderPaymentActionsMixin,
    OrderRefundActionsMixin,
    OrderLinkActionsMixin,
    OrderAttentionActionsMixin,
    OrderCancelActionsMixin,
    OrderStripeActionsMixin,
    OrderColumnsMixin,
    LargeListMixin,
    LedgerImportExportMixin,
    ModelAdmin,
):
    """Orders: find one, see what was paid, comp it or record a payment taken at the desk."""

    # Export (CSV/XLSX of the filtered list) and import (new orders from another
    # system, previewed as a dry run): see backoffice/exports.py.
    resource_classes = [OrderResource]

    # Status and balance due right after the reference: on a phone those three fit the
    # screen (admin.css tightens list cells there) and the rest scrolls.
    list_display = (
        "order_reference",
        "status_label",
        "balance_display",
        "attendee",
        "total_display",
        "paid_display",
        "conference",
        "created",
    )
    list_display_links = ("order_reference",)
    formfield_overrides = {
        models.TextField: {"widget": UnfoldAdminTextareaWidget(attrs={"rows": 3})},
    }
    list_filter = (
        ("status", ChoicesDropdownFilter),
        ("conference", RelatedDropdownFilter),
        ("created_at", InclusiveDateRangeFilter),
        NeedsAttentionFilter,
        DeskWorkFilter,
        HoldFilter,
    )
    list_filter_submit = True
    search_fields = ("reference", "billing_name", "billing_email", "user__email")
    search_help_text = _("Reference, billing name or e-mail, or the attendee's e-mail.")
    list_select_related = ("conference", "user")
    list_per_page = 50
    inlines = (OrderLineItemInline, PaymentHistoryInline, OrderEmailInline, OrderHistoryInline)
    actions = (
        "mark_comp_selected",
        "record_manual_selected",
        "cancel_selected",
        "sync_from_stripe_selected",
        "send_payment_link_selected",
    )
    actions_detail = (
        "record_manual",
        "mark_comp",
        "send_payment_link",
        "regenerate_payment_link",
        "refund",
        "cancel_order",
        "resolve_attention",
        "sync_from_stripe",
    )
    fieldsets = (
        (
            None,
            {"fields": ("reference", "status_badge", "conference", "account", "created_on")},
        ),
        (
            _("Amounts"),
            {
                "fields": (
                    "subtotal_display",
                    "discount_display",
                    "total_display",
                    "paid_display",
                    "balance_display",
                )
            },
        ),
        (
            _("Online payment"),
            {
                "fields": ("payment_link",),
                "description": _(
                    "Send this link to the attendee: it opens the card payment page for "
                    "this order, no login needed. Anyone with the link can pay."
                ),
            },
        ),
        (_("Billing"), {"fields": ("billing_name", "billing_email", "hold_expires_at")}),
        (
            _("Follow-up"),
            {"fields": ("attention_now", "needs_attention", "attention_reason", "updated")},
        ),
    )
    readonly_fields = (
        "reference",
        "status_badge",
        "conference",
        "account",
        "created_on",
        "updated",
        "subtotal_display",
        "discount_display",
        "total_display",
        "paid_display",
        "balance_display",
        "payment_link",
        "attention_now",
        # Only the ledger's rule raises the flag, and "Resolve attention" clears it.
        "needs_attention",
        "attention_reason",
    )

    class Media:
        js = ("backoffice/copy-link.js",)

    # --- Queries ------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        """Orders with their paid amount and balance annotated (one subquery, no per-row query)."""
        return super().get_queryset(request).with_amounts()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        """Pasted identifiers exactly; names and e-mail fragments through trigram indexes."""
        found = search_orders(queryset, search_term)
        if found is None:
            found = search_orders_text(queryset, search_term)
        return found, False

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        """The Needs attention preset says why each order is on it, in place of total and paid.

        The reasons are long (they name Stripe ids): with the total and paid columns
        too, the list ran off a 1440 px window; the balance due stays.
        """
        columns = tuple(super().get_list_display(request))
        if request.GET.get(ATTENTION_PARAMETER) == ATTENTION_VALUE:
            kept = [name for name in columns if name not in ATTENTION_DROPS]
            return (*kept, "attention_reasons_column")
        return columns

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        """The list; on the Needs attention preset, each shown order's reasons (fixed queries)."""
        changelist = super().get_changelist_instance(request)
        if "attention_reasons_column" in changelist.list_display:
            reasons = attention_reasons(changelist.result_list)
            for order in changelist.result_list:
                order.attention_reasons = reasons.get(order.pk, [])
        return changelist

    # --- Permissions --------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Orders come from registration; the back office does not create them."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """Orders are financial records: cancel or refund them, never delete."""
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Answer 403 to a list action the user may not run (Django would ignore it silently)."""
        if request.method == "POST":
            allowed = self.get_actions(request)
            for name in request.POST.getlist("action"):
                if name in self.actions and name not in allowed:
                    raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Django's History page, with the order's timeline beside the admin's own log.

        ``LogEntry`` needs a user, so changes made by Stripe, the checkout or a
        command appear only in the order's history entries.
        """
        response = super().history_view(request, object_id, extra_context)
        if isinstance(response, TemplateResponse):  # not a redirect for a missing order
            timeline = OrderHistoryInline(self.model, self.admin_site)
            entries = timeline.get_queryset(request).filter(order=response.context_data["object"])
            table = timeline.table(entries)
            response.context_data["timeline_headers"] = table["headers"]
            response.context_data["timeline_rows"] = table["rows"]
        return response

    def get_actions_detail(self, request: HttpRequest, object_id: int | str) -> list:
        """Show on the order page only the buttons that can apply to this order."""
        permitted = super().get_actions_detail(request, object_id)
        order = self.get_queryset(request).filter(pk=object_id).first()
        if order is None:
            return []
        applicable = allowed_actions(order)
        return [
            unfold_action
            for unfold_action in permitted
            if applicable[DETAIL_ACTIONS[unfold_action.method.original_function_name]].allowed
        ]
