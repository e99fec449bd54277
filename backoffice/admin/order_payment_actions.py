"""Money taken at the desk: the Mark comp and Record manual payment actions of orders."""

from typing import Any

from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from backoffice.admin.dialogs import add_service_error
from backoffice.admin.forms import MarkCompForm, RecordManualPaymentForm
from backoffice.admin.order_actions import OrderActionMixin
from backoffice.admin.permissions import action
from backoffice.models import Order
from backoffice.services.payment import PaymentService

MARK_COMP_DIALOG = {
    "title": _("Mark order as complimentary"),
    "description": _(
        "Records a complimentary (zero) payment and marks the order paid. "
        "Only pending orders with a total of zero can be comped."
    ),
    "form_class": MarkCompForm,
    "form_submit_text": _("Mark comp"),
}

RECORD_MANUAL_DIALOG = {
    "title": _("Record manual payment"),
    "description": _(
        "Record money taken off-platform (cash at the door, bank transfer). "
        "The order becomes paid when its payments reach the total."
    ),
    "form_class": RecordManualPaymentForm,
    "form_submit_text": _("Record payment"),
}


class OrderPaymentActionsMixin(OrderActionMixin):
    """Mark comp and Record manual payment, on the order page and for a selection."""

    def has_mark_comp_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may mark orders as complimentary."""
        return request.user.has_perm("backoffice.mark_comp")

    def has_record_manual_payment_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may record payments taken off-platform."""
        return request.user.has_perm("backoffice.record_manual_payment")

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
