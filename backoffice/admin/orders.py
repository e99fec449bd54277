"""Orders in the admin: the list, the order page with its payment history, and the desk actions.

The actions ("Mark comp", "Record manual payment", "Cancel order") call one
``PaymentService`` method per order and turn its ``ValidationError`` into a form error or a
message; they hold no business rule of their own.
"""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.widgets import UnfoldAdminTextareaWidget

from backoffice.admin.date_filters import InclusiveDateRangeFilter
from backoffice.admin.dialogs import add_service_error, close_dialog, render_dialog
from backoffice.admin.exporting import LedgerImportExportMixin
from backoffice.admin.forms import (
    CancelOrderForm,
    MarkCompForm,
    OrderActionForm,
    RecordManualPaymentForm,
    RefundForm,
    RegeneratePaymentLinkForm,
    ResolveAttentionForm,
    SendPaymentLinkForm,
    SyncFromStripeForm,
)
from backoffice.admin.model_admin import ModelAdmin
from backoffice.admin.navigation import ATTENTION_PARAMETER, ATTENTION_VALUE
from backoffice.admin.order_columns import OrderColumnsMixin
from backoffice.admin.order_emails import OrderEmailInline
from backoffice.admin.order_filters import DeskWorkFilter, HoldFilter, NeedsAttentionFilter
from backoffice.admin.order_inlines import (
    OrderHistoryInline,
    OrderLineItemInline,
    PaymentHistoryInline,
)
from backoffice.admin.pagination import LargeListMixin
from backoffice.admin.permissions import action
from backoffice.exports import OrderResource
from backoffice.models import Order, Payment, Refund
from backoffice.services import notifications
from backoffice.services.attention import attention_reasons
from backoffice.services.ledger import search_orders
from backoffice.services.payment import (
    OrderAction,
    PaymentProviderError,
    PaymentService,
    StripeUnreachable,
    allowed_actions,
)
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

MARK_COMP_DIALOG = {
    "title": _("Mark order as complimentary"),
    "description": _(
        "Records a complimentary (zero) payment and marks the order paid. "
        "Only pending orders with a total of zero can be comped."
    ),
    "form_class": MarkCompForm,
    "form_submit_text": _("Mark comp"),
}

REGENERATE_LINK_DIALOG = {
    "title": _("Regenerate payment link"),
    "description": _(
        "Gives the order a new payment link. The old link stops working at once, "
        "so send the new one to the attendee."
    ),
    "form_class": RegeneratePaymentLinkForm,
    "form_submit_text": _("Regenerate link"),
}

SEND_PAYMENT_LINK_DIALOG = {
    "title": _("Email payment link"),
    "description": _(
        "E-mails the attendee the order's items, balance due and its payment link "
        "(to the billing e-mail, else the account's). The e-mail is listed under E-mails."
    ),
    "form_class": SendPaymentLinkForm,
    "form_submit_text": _("Send e-mail"),
}

CANCEL_ORDER_DIALOG = {
    "title": _("Cancel order"),
    "description": _(
        "Cancels a pending order that holds no money: its payment link then shows the "
        "order as cancelled and takes no payment. An order holding money must be refunded first."
    ),
    "form_class": CancelOrderForm,
    "form_submit_text": _("Cancel order"),
}

# The same form for a selection from the list, on a page of its own.
CANCEL_ORDERS_PAGE = {
    **CANCEL_ORDER_DIALOG,
    "title": _("Cancel orders"),
    "description": _(
        "Cancels each selected order that is pending and holds no money, with the reason "
        "below; the others are left as they are and listed with why."
    ),
    "form_submit_text": _("Cancel orders"),
}

# The columns the Needs attention preset leaves out to make room for its reasons.
ATTENTION_DROPS = ("total_display", "paid_display")

# How many of the selected orders the bulk cancel page names before "and N more".
BULK_PREVIEW = 20

RECORD_MANUAL_DIALOG = {
    "title": _("Record manual payment"),
    "description": _(
        "Record money taken off-platform (cash at the door, bank transfer). "
        "The order becomes paid when its payments reach the total."
    ),
    "form_class": RecordManualPaymentForm,
    "form_submit_text": _("Record payment"),
}

REFUND_DIALOG = {
    "title": _("Refund"),
    "description": _(
        "Give money back on one payment. A card payment is refunded through Stripe "
        "(to the attendee's card); for a manual payment, record how you paid it back. "
        "The order's status follows the money it still holds."
    ),
    "form_class": RefundForm,
    "form_submit_text": _("Refund"),
}


RESOLVE_ATTENTION_DIALOG = {
    "title": _("Resolve attention"),
    "description": _(
        "Clears the order's Needs attention flag once its cause was dealt with (the "
        "difference refunded, the attendee contacted). Your note goes in the order's "
        "timeline. New money arriving later raises the flag again."
    ),
    "form_class": ResolveAttentionForm,
    "form_submit_text": _("Resolve"),
}

SYNC_FROM_STRIPE_DIALOG = {
    "title": _("Re-sync from Stripe"),
    "description": _(
        "Asks Stripe for each card payment of this order, its refunds and disputes, and "
        "applies whatever the site missed (a webhook that never arrived), as the webhook would "
        "have. Nothing is sent to the attendee's card; running it again changes nothing."
    ),
    "form_class": SyncFromStripeForm,
    "form_submit_text": _("Re-sync"),
}


def _sync_refusal(order: Order, exc: ValidationError | PaymentProviderError) -> str:
    """Why an order could not be re-synced, naming the order."""
    text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
    return text if text.startswith(order.reference) else f"{order.reference}: {text}"


@admin.register(Order)
class OrderAdmin(OrderColumnsMixin, LargeListMixin, LedgerImportExportMixin, ModelAdmin):
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

    def has_mark_comp_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may mark orders as complimentary."""
        return request.user.has_perm("backoffice.mark_comp")

    def has_record_manual_payment_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may record payments taken off-platform."""
        return request.user.has_perm("backoffice.record_manual_payment")

    def has_refund_payment_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may give money back (Finance)."""
        return request.user.has_perm("backoffice.refund_payment")

    def has_regenerate_payment_link_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may replace an order's payment link (those who may change orders)."""
        return request.user.has_perm("backoffice.change_order")

    def has_send_payment_link_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may e-mail attendees their payment links (Desk and Finance)."""
        return request.user.has_perm("backoffice.send_payment_link")

    def has_resolve_attention_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may clear an order's attention flag (those who may change orders)."""
        return request.user.has_perm("backoffice.change_order")

    def has_cancel_order_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may cancel orders."""
        return request.user.has_perm("backoffice.cancel_order")

    def has_sync_stripe_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may re-sync orders from Stripe (Finance)."""
        return request.user.has_perm("backoffice.sync_stripe")

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

    # --- Actions: Mark comp -------------------------------------------------

    @action(description=_("Mark comp"), permissions=["mark_comp"], icon="redeem")
    def mark_comp_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """Comp each selected order on its own; report how many were comped and why others not."""
        comped = 0
        skipped: list[str] = []
        for order in queryset.select_related("conference", "user").order_by("pk"):
            try:
                PaymentService.record_comp(order, staff_user=request.user)
            except ValidationError as exc:
                skipped.append(" ".join(exc.messages))
                continue
            comped += 1
            self.log_change(request, order, _("Marked comp (0 paid, order is now paid)."))

        summary = ngettext(
            "%(count)d order was marked comp.",
            "%(count)d orders were marked comp.",
            comped,
        ) % {"count": comped}
        skipped_intro = ngettext(
            "%(count)d order was skipped:",
            "%(count)d orders were skipped:",
            len(skipped),
        ) % {"count": len(skipped)}
        self._report_bulk(
            request, summary, done=comped, skipped_intro=skipped_intro, skipped=skipped
        )

    @action(
        description=_("Mark comp"),
        permissions=["mark_comp"],
        icon="redeem",
        dialog=MARK_COMP_DIALOG,
    )
    def mark_comp(self, request: HttpRequest, form: MarkCompForm, object_id: str) -> HttpResponse:
        """Comp this order (dialog on the order page)."""
        order = self._get_order(request, object_id)
        try:
            PaymentService.record_comp(order, staff_user=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
            return self._render_dialog(request, self.mark_comp, form)
        return self._finish_dialog(
            request,
            order,
            logged=_("Marked comp (0 paid, order is now paid)."),
            message=_("%(reference)s was marked comp; the order is now paid.")
            % {"reference": order.reference},
        )

    # --- Actions: Record manual payment -------------------------------------

    @action(
        description=_("Record manual payment"),
        permissions=["record_manual_payment"],
        icon="payments",
        dialog=RECORD_MANUAL_DIALOG,
    )
    def record_manual(
        self, request: HttpRequest, form: RecordManualPaymentForm, object_id: str
    ) -> HttpResponse:
        """Record a payment taken off-platform on this order (dialog on the order page)."""
        order = self._get_order(request, object_id)
        if self._apply_record_manual(request, order, form):
            return self._close_dialog(request, order)
        return self._render_dialog(request, self.record_manual, form)

    @action(
        description=_("Record manual payment"),
        permissions=["record_manual_payment"],
        icon="payments",
    )
    def record_manual_selected(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> HttpResponse | None:
        """From the list, for exactly one selected order: show the payment form, then record it."""
        count = queryset.count()
        if count != 1:
            self.message_user(
                request,
                ngettext(
                    "Select exactly one order to record a manual payment "
                    "(%(count)d order is selected).",
                    "Select exactly one order to record a manual payment "
                    "(%(count)d orders are selected).",
                    count,
                )
                % {"count": count},
                messages.WARNING,
            )
            return None
        order = queryset.select_related("conference", "user").get()
        submitted = "_form_submitted" in request.POST
        form = RecordManualPaymentForm(request, order.pk, data=request.POST if submitted else None)
        if submitted and form.is_valid() and self._apply_record_manual(request, order, form):
            return HttpResponseRedirect(self._change_url(order))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Record manual payment for %(reference)s") % {"reference": order.reference},
            "subtitle": None,
            "opts": self.opts,
            "order": order,
            "form": form,
            "dialog": RECORD_MANUAL_DIALOG,
            "action_name": "record_manual_selected",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/backoffice/order/record_manual.html", context)

    def _apply_record_manual(
        self, request: HttpRequest, order: Order, form: RecordManualPaymentForm
    ) -> bool:
        """Call the service with the form's data; on refusal put its message on the form's field.

        The same form posted again (its one-time key) records nothing more: the
        clerk is told the payment is already recorded.
        """
        data = form.cleaned_data
        try:
            payment, created = PaymentService.record_manual_once(
                order,
                amount=data["amount"],
                reference=data["reference"],
                note=data["note"],
                channel=data["channel"],
                idempotency_key=data["idempotency_key"],
                staff_user=request.user,
            )
        except ValidationError as exc:
            add_service_error(form, exc)
            return False
        paid = order.format(payment.amount)
        if not created:
            self.message_user(
                request,
                _(
                    "%(amount)s (%(channel)s) on %(reference)s was already recorded from this "
                    "form; it was not recorded twice."
                )
                % {
                    "amount": paid,
                    "channel": payment.get_channel_display(),
                    "reference": order.reference,
                },
                messages.INFO,
            )
            return True
        log_message = _("Recorded manual payment of %(amount)s") % {"amount": paid}
        if payment.reference:
            log_message += _(" (reference %(reference)s)") % {"reference": payment.reference}
        self.log_change(request, order, f"{log_message}.")
        if order.status == Order.Status.PAID:
            message = _("Recorded %(amount)s on %(reference)s; the order is now paid.")
        else:
            message = _("Recorded %(amount)s on %(reference)s; balance due: %(balance)s.")
        self.message_user(
            request,
            message
            % {
                "amount": paid,
                "reference": order.reference,
                "balance": order.format(order.balance_due),
            },
            messages.SUCCESS,
        )
        return True

    # --- Actions: Refund -----------------------------------------------------

    @action(
        description=_("Refund"),
        permissions=["refund_payment"],
        icon="undo",
        dialog=REFUND_DIALOG,
    )
    def refund(self, request: HttpRequest, form: RefundForm, object_id: str) -> HttpResponse:
        """Refund part or all of one of this order's payments (dialog on the order page)."""
        order = self._get_order(request, object_id)
        payment: Payment = form.cleaned_data["payment"]
        try:
            refund = PaymentService.refund(
                payment,
                amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                note=form.cleaned_data["note"],
                staff_user=request.user,
                channel=form.cleaned_data.get("channel", ""),
            )
        except ValidationError as exc:
            add_service_error(form, exc)
            return self._render_dialog(request, self.refund, form)
        amount = order.format(refund.amount)
        order.refresh_from_db()
        if refund.status == Refund.Status.SUCCEEDED:
            message = _("Refunded %(amount)s on %(reference)s; the order is now %(status)s.")
        else:
            message = _(
                "Asked Stripe to refund %(amount)s on %(reference)s; it shows as pending "
                "until Stripe confirms it."
            )
        return self._finish_dialog(
            request,
            order,
            logged=_("Refunded %(amount)s (%(reason)s).")
            % {"amount": amount, "reason": refund.get_reason_display().lower()},
            message=message
            % {
                "amount": amount,
                "reference": order.reference,
                "status": order.get_status_display().lower(),
            },
        )

    # --- Actions: Regenerate payment link -----------------------------------

    @action(
        description=_("Regenerate payment link"),
        permissions=["regenerate_payment_link"],
        icon="link",
        dialog=REGENERATE_LINK_DIALOG,
    )
    def regenerate_payment_link(
        self, request: HttpRequest, form: RegeneratePaymentLinkForm, object_id: str
    ) -> HttpResponse:
        """Replace this order's payment link; the old one stops working."""
        order = self._get_order(request, object_id)
        try:
            PaymentService.regenerate_payment_link(order, staff_user=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
            return self._render_dialog(request, self.regenerate_payment_link, form)
        return self._finish_dialog(
            request,
            order,
            logged=_("Regenerated the payment link; the old link no longer works."),
            message=_("%(reference)s has a new payment link; the old link no longer works.")
            % {"reference": order.reference},
        )

    # --- Actions: Email payment link ---------------------------------------

    @action(
        description=_("Email payment link"),
        permissions=["send_payment_link"],
        icon="forward_to_inbox",
        dialog=SEND_PAYMENT_LINK_DIALOG,
    )
    def send_payment_link(
        self, request: HttpRequest, form: SendPaymentLinkForm, object_id: str
    ) -> HttpResponse:
        """E-mail this order's payment link to the attendee (sent by the worker)."""
        order = self._get_order(request, object_id)
        try:
            email = notifications.send_payment_link(order, staff_user=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
            return self._render_dialog(request, self.send_payment_link, form)
        return self._finish_dialog(
            request,
            order,
            logged=_("E-mailed the payment link to %(recipient)s.")
            % {"recipient": email.recipient},
            message=_("The payment link of %(reference)s is on its way to %(recipient)s.")
            % {"reference": order.reference, "recipient": email.recipient},
        )

    @action(
        description=_("Email payment link"),
        permissions=["send_payment_link"],
        icon="forward_to_inbox",
    )
    def send_payment_link_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """E-mail each selected order's payment link; one message saying which were skipped."""
        sent = 0
        skipped: list[str] = []
        for order in queryset.select_related("conference", "user").order_by("pk"):
            try:
                email = notifications.send_payment_link(order, staff_user=request.user)
            except ValidationError as exc:
                skipped.extend(exc.messages)
                continue
            sent += 1
            self.log_change(
                request,
                order,
                _("E-mailed the payment link to %(recipient)s.") % {"recipient": email.recipient},
            )
        summary = ngettext(
            "E-mailed the payment link of %(count)d order.",
            "E-mailed the payment links of %(count)d orders.",
            sent,
        ) % {"count": sent}
        skipped_intro = ngettext(
            "%(count)d order was skipped:", "%(count)d orders were skipped:", len(skipped)
        ) % {"count": len(skipped)}
        self._report_bulk(request, summary, done=sent, skipped_intro=skipped_intro, skipped=skipped)

    # --- Actions: Resolve attention ----------------------------------------

    @action(
        description=_("Resolve attention"),
        permissions=["resolve_attention"],
        icon="task_alt",
        dialog=RESOLVE_ATTENTION_DIALOG,
    )
    def resolve_attention(
        self, request: HttpRequest, form: ResolveAttentionForm, object_id: str
    ) -> HttpResponse:
        """Clear this order's attention flag with the clerk's note (dialog on the order page)."""
        order = self._get_order(request, object_id)
        try:
            PaymentService.resolve_attention(
                order, note=form.cleaned_data["note"], staff_user=request.user
            )
        except ValidationError as exc:
            form.add_error(None, exc)
            return self._render_dialog(request, self.resolve_attention, form)
        return self._finish_dialog(
            request,
            order,
            logged=_("Resolved the attention flag."),
            message=_("%(reference)s no longer needs attention.") % {"reference": order.reference},
        )

    # --- Actions: Cancel order ----------------------------------------------

    @action(
        description=_("Cancel order"),
        permissions=["cancel_order"],
        icon="cancel",
        dialog=CANCEL_ORDER_DIALOG,
    )
    def cancel_order(
        self, request: HttpRequest, form: CancelOrderForm, object_id: str
    ) -> HttpResponse:
        """Cancel this order, giving a reason (dialog on the order page)."""
        order = self._get_order(request, object_id)
        reason: str = form.cleaned_data["reason"]
        try:
            PaymentService.cancel_order(order, reason=reason, staff_user=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
            return self._render_dialog(request, self.cancel_order, form)
        return self._finish_dialog(
            request,
            order,
            logged=_("Cancelled: %(reason)s") % {"reason": reason},
            message=_("%(reference)s was cancelled.") % {"reference": order.reference},
        )

    @action(description=_("Cancel orders"), permissions=["cancel_order"], icon="cancel")
    def cancel_selected(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> HttpResponse | None:
        """Ask for one reason, then cancel each selected order on its own and report each refusal.

        The reason page posts back through this action with the same selection
        (``select_across`` included), so it works on a filtered list across pages.
        """
        orders = queryset.select_related("conference", "user").order_by("pk")
        submitted = "_form_submitted" in request.POST
        form = CancelOrderForm(request, None, data=request.POST if submitted else None)
        if not (submitted and form.is_valid()):
            return self._cancel_selected_page(request, orders, form)
        reason: str = form.cleaned_data["reason"]
        cancelled = 0
        skipped: list[str] = []
        for order in orders:
            try:
                PaymentService.cancel_order(order, reason=reason, staff_user=request.user)
            except ValidationError as exc:
                skipped.append(" ".join(exc.messages))
                continue
            cancelled += 1
            self.log_change(request, order, _("Cancelled: %(reason)s") % {"reason": reason})
        summary = ngettext(
            "Cancelled %(count)d order.", "Cancelled %(count)d orders.", cancelled
        ) % {"count": cancelled}
        skipped_intro = ngettext(
            "%(count)d order was not cancelled:",
            "%(count)d orders were not cancelled:",
            len(skipped),
        ) % {"count": len(skipped)}
        self._report_bulk(
            request, summary, done=cancelled, skipped_intro=skipped_intro, skipped=skipped
        )
        return None

    def _cancel_selected_page(
        self, request: HttpRequest, orders: QuerySet[Order], form: CancelOrderForm
    ) -> TemplateResponse:
        """The page asking for the batch's reason, posting back the same selection."""
        count = orders.count()
        references = [order.reference for order in orders[:BULK_PREVIEW]]
        context = {
            **self.admin_site.each_context(request),
            "title": ngettext("Cancel %(count)d order", "Cancel %(count)d orders", count)
            % {"count": count},
            "subtitle": None,
            "opts": self.opts,
            "form": form,
            "dialog": CANCEL_ORDERS_PAGE,
            "references": references,
            "count": count,
            "more": count - len(references),
            "action_name": "cancel_selected",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/backoffice/order/cancel_selected.html", context)

    # --- Actions: Re-sync from Stripe ---------------------------------------

    @action(
        description=_("Re-sync from Stripe"),
        permissions=["sync_stripe"],
        icon="sync",
        dialog=SYNC_FROM_STRIPE_DIALOG,
    )
    def sync_from_stripe(
        self, request: HttpRequest, form: SyncFromStripeForm, object_id: str
    ) -> HttpResponse:
        """Apply what Stripe holds for this order's card payments (dialog on the order page)."""
        order = self._get_order(request, object_id)
        try:
            report = PaymentService.sync_from_stripe(order)
        # A Stripe outage is the clerk's to read (the message is safe to show), not a 500.
        except (ValidationError, PaymentProviderError) as exc:
            form.add_error(None, _sync_refusal(order, exc))
            return self._render_dialog(request, self.sync_from_stripe, form)
        return self._finish_dialog(
            request,
            order,
            logged=_("Re-synced from Stripe: %(summary)s") % {"summary": report.summary()},
            message=report.summary(),
        )

    @action(description=_("Re-sync from Stripe"), permissions=["sync_stripe"], icon="sync")
    def sync_from_stripe_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """Re-sync each selected order on its own; one message saying what each found."""
        lines: list[str] = []
        changed = in_order = 0
        skipped: list[str] = []
        unreachable = False
        for order in queryset.select_related("conference", "user").order_by("pk"):
            if unreachable:  # each further try would wait for the same time-out
                skipped.append(_("%(reference)s: not checked.") % {"reference": order.reference})
                continue
            try:
                report = PaymentService.sync_from_stripe(order)
            except (ValidationError, PaymentProviderError) as exc:
                skipped.append(_sync_refusal(order, exc))
                unreachable = isinstance(exc, StripeUnreachable)
                continue
            lines.append(report.summary())
            if report.changed:
                changed += 1
                self.log_change(
                    request, order, _("Re-synced from Stripe: %(summary)s") % {"summary": lines[-1]}
                )
            else:
                in_order += 1
        summary = " ".join(
            [
                ngettext(
                    "Re-synced %(count)d order from Stripe:",
                    "Re-synced %(count)d orders from Stripe:",
                    changed + in_order,
                )
                % {"count": changed + in_order},
                ngettext("%(count)d changed,", "%(count)d changed,", changed) % {"count": changed},
                ngettext("%(count)d in order.", "%(count)d in order.", in_order)
                % {"count": in_order},
            ]
        )
        if lines:
            summary = format_html(
                "{}<ul class='list-disc ms-5 mt-1'>{}</ul>",
                summary,
                format_html_join("", "<li>{}</li>", ((line,) for line in lines)),
            )
        skipped_intro = ngettext(
            "%(count)d order could not be re-synced:",
            "%(count)d orders could not be re-synced:",
            len(skipped),
        ) % {"count": len(skipped)}
        self._report_bulk(
            request, summary, done=len(lines), skipped_intro=skipped_intro, skipped=skipped
        )

    # --- Plumbing shared by the dialogs ------------------------------------

    def _report_bulk(
        self, request: HttpRequest, summary: str, *, done: int, skipped_intro: str, skipped: list
    ) -> None:
        """One message for a bulk action: what was done, then each order skipped and why."""
        if not skipped:
            self.message_user(request, summary, messages.SUCCESS)
            return
        message = format_html(
            "{} {}<ul class='list-disc ms-5 mt-1'>{}</ul>",
            summary,
            skipped_intro,
            format_html_join("", "<li>{}</li>", ((reason,) for reason in skipped)),
        )
        self.message_user(request, message, messages.WARNING if done else messages.ERROR)

    def _get_order(self, request: HttpRequest, object_id: str) -> Order:
        """The order of a detail action, or 404 (``@action`` has checked the permissions)."""
        order = self.get_object(request, object_id)
        if order is None:
            raise Http404(_("This order does not exist."))
        return order

    def _change_url(self, order: Order) -> str:
        """The order page."""
        return reverse(f"{self.admin_site.name}:backoffice_order_change", args=[order.pk])

    def _finish_dialog(
        self, request: HttpRequest, order: Order, *, logged: str, message: str
    ) -> HttpResponse:
        """After a dialog's action succeeded: log it, tell the clerk, show the order page."""
        self.log_change(request, order, logged)
        self.message_user(request, message, messages.SUCCESS)
        return self._close_dialog(request, order)

    def _close_dialog(self, request: HttpRequest, order: Order) -> HttpResponse:
        """Close the dialog and show the order page."""
        return close_dialog(request, self._change_url(order))

    def _render_dialog(
        self, request: HttpRequest, dialog_action: Any, form: OrderActionForm
    ) -> HttpResponse:
        """Render the action's dialog again, now showing the form's errors."""
        return render_dialog(request, dialog_action.dialog, form)
