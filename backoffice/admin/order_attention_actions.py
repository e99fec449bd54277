"""Clearing an order's Needs attention flag: the Resolve attention action."""

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from backoffice.admin.forms import ResolveAttentionForm
from backoffice.admin.order_actions import OrderActionMixin
from backoffice.admin.permissions import action
from backoffice.services.payment import PaymentService

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


class OrderAttentionActionsMixin(OrderActionMixin):
    """Resolve attention, with the clerk's note (dialog on the order page)."""

    def has_resolve_attention_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may clear an order's attention flag (those who may change orders)."""
        return request.user.has_perm("backoffice.change_order")

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
