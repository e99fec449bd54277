"""Cancelling orders: the order page's dialog and the list's page asking for one reason."""

from typing import Any

from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from backoffice.admin.forms import CancelOrderForm
from backoffice.admin.order_actions import OrderActionMixin
from backoffice.admin.permissions import action
from backoffice.models import Order
from backoffice.services.payment import PaymentService

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

# How many of the selected orders the bulk cancel page names before "and N more".
BULK_PREVIEW = 20


class OrderCancelActionsMixin(OrderActionMixin):
    """Cancel order (dialog on the order page) and Cancel orders (a selection)."""

    def has_cancel_order_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may cancel orders."""
        return request.user.has_perm("backoffice.cancel_order")

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
