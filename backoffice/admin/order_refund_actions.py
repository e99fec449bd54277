"""Money given back: the order page's Refund action."""

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from backoffice.admin.dialogs import add_service_error
from backoffice.admin.forms import RefundForm
from backoffice.admin.order_actions import OrderActionMixin
from backoffice.admin.permissions import action
from backoffice.models import Payment, Refund
from backoffice.services.payment import PaymentService

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


class OrderRefundActionsMixin(OrderActionMixin):
    """Refund one of the order's payments (dialog on the order page)."""

    def has_refund_payment_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may give money back (Finance)."""
        return request.user.has_perm("backoffice.refund_payment")

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
