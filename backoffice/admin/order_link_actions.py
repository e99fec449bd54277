"""An order's payment link: regenerate it, or e-mail it to the attendee."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from backoffice.admin.forms import RegeneratePaymentLinkForm, SendPaymentLinkForm
from backoffice.admin.order_actions import OrderActionMixin
from backoffice.admin.permissions import action
from backoffice.models import Order
from backoffice.services import notifications
from backoffice.services.payment import PaymentService

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


class OrderLinkActionsMixin(OrderActionMixin):
    """Regenerate payment link and Email payment link (order page and selection)."""

    def has_regenerate_payment_link_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may replace an order's payment link (those who may change orders)."""
        return request.user.has_perm("backoffice.change_order")

    def has_send_payment_link_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may e-mail attendees their payment links (Desk and Finance)."""
        return request.user.has_perm("backoffice.send_payment_link")

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
