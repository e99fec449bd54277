"""Forms behind the order actions: they check syntax only; the service decides."""

import re
import secrets
from decimal import Decimal
from typing import Any

from django import forms
from django.http import Http404, HttpRequest
from django.utils.translation import gettext_lazy as _
from unfold.forms import BaseDialogForm
from unfold.widgets import (
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from backoffice.dates import format_day
from backoffice.models import MONEY, Order, Payment, Refund, StripeEvent
from backoffice.money import quantum
from backoffice.request_logging import redact
from backoffice.services.payment import refundable_payments


def load_order(object_id: int | str | None) -> Order | None:
    """Return the order with its paid/balance amounts, or None when the id matches nothing."""
    if object_id in (None, ""):
        return None
    try:
        return (
            Order.objects.with_amounts()
            .select_related("conference", "user")
            .filter(pk=object_id)
            .first()
        )
    except (TypeError, ValueError):
        return None


class OrderActionForm(BaseDialogForm):
    """A dialog form about one order; shows the order summary and non-field errors on top."""

    form_before_template = "admin/backoffice/order/action_summary.html"

    def __init__(
        self,
        request: HttpRequest,
        object_id: int | str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(request, object_id, *args, **kwargs)
        self.order = load_order(object_id)
        if object_id is not None and self.order is None:
            raise Http404(_("This order does not exist."))

    def get_before_template_context(
        self, request: HttpRequest, object_id: int | str | None = None
    ) -> dict[str, Any]:
        """Give the summary template the order and the errors not tied to a field."""
        context: dict[str, Any] = {"order": self.order, "errors": self.non_field_errors()}
        if self.order is not None:
            context.update(
                total=self.order.format(self.order.total),
                paid=self.order.format(self.order.amount_paid),
                balance=self.order.format(self.order.balance_due),
            )
        return context


class MarkCompForm(OrderActionForm):
    """Confirmation for marking one order complimentary (no fields of its own)."""


class RegeneratePaymentLinkForm(OrderActionForm):
    """Confirmation for replacing an order's payment link (no fields of its own)."""


class SendPaymentLinkForm(OrderActionForm):
    """Confirmation for e-mailing an order's payment link (no fields of its own)."""


class SyncFromStripeForm(OrderActionForm):
    """Confirmation for re-syncing an order from Stripe (no fields of its own)."""


def amount_field(help_text: str) -> forms.DecimalField:
    """A money amount the clerk types; its decimal places depend on the currency."""
    return forms.DecimalField(
        label=_("Amount"),
        # The ledger's size; decimal places depend on the currency: the service checks them.
        max_digits=MONEY["max_digits"],
        widget=UnfoldAdminTextInputWidget(attrs={"inputmode": "decimal", "autofocus": True}),
        help_text=help_text,
    )


def note_field() -> forms.CharField:
    """An optional free-text note about the action."""
    return forms.CharField(
        label=_("Note"), required=False, widget=UnfoldAdminTextareaWidget(attrs={"rows": 3})
    )


# A form's one-time key: what ``secrets.token_urlsafe`` makes (URL-safe base64), 16 to 64 long.
FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_form_key() -> str:
    """A fresh one-time key for a form shown to a clerk (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


class RecordManualPaymentForm(OrderActionForm):
    """Amount, channel, reference and note of a payment taken off-platform (cash, wire).

    It carries a one-time key made when it is shown: the same form posted
    twice (a double click, a resubmit) records one payment.
    """

    amount = amount_field(_("At most the balance due. A partial payment leaves the order pending."))
    channel = forms.ChoiceField(
        label=_("Paid by"),
        choices=[("", _("Choose how it was paid…")), *Payment.Channel.choices],
        widget=UnfoldAdminSelectWidget,
        error_messages={
            "required": _(
                "Choose how the money was paid: cash, bank transfer, cheque, card terminal "
                "or other."
            )
        },
    )
    reference = forms.CharField(
        label=_("Reference"),
        required=False,
        max_length=255,
        widget=UnfoldAdminTextInputWidget,
        help_text=_("Receipt number, bank transfer id…"),
    )
    note = note_field()
    # Checked in ``clean``: a hidden field's own errors would not be shown.
    idempotency_key = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(
        self,
        request: HttpRequest,
        object_id: int | str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(request, object_id, *args, **kwargs)
        if self.order is not None:
            currency = self.order.currency
            balance: Decimal = self.order.balance_due.quantize(quantum(currency))
            self.fields["amount"].initial = balance
            self.fields["amount"].widget.attrs["suffix"] = currency
        self.fields["idempotency_key"].initial = new_form_key()

    def clean(self) -> dict[str, Any]:
        """Refuse a form without its one-time key, or with one it could not have been given."""
        cleaned = super().clean()
        if not FORM_KEY.fullmatch(cleaned.get("idempotency_key", "")):
            raise forms.ValidationError(
                _("This form is incomplete or was altered; close it and open it again.")
            )
        return cleaned


class ReprocessStripeEventForm(BaseDialogForm):
    """Confirmation for applying a stored Stripe event again (no fields of its own)."""

    form_before_template = "admin/backoffice/stripeevent/reprocess_summary.html"

    def get_before_template_context(
        self, request: HttpRequest, object_id: int | str | None = None
    ) -> dict[str, Any]:
        """Give the summary template the event and the errors not tied to a field."""
        event = StripeEvent.objects.filter(pk=object_id).first() if object_id else None
        last_error = redact(event.last_error) if event else ""
        return {"event": event, "last_error": last_error, "errors": self.non_field_errors()}


class ResolveAttentionForm(OrderActionForm):
    """The clerk's note on how an order's attention flag was dealt with."""

    form_before_template = "admin/backoffice/order/attention_summary.html"

    note = forms.CharField(
        label=_("What was done"),
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3, "autofocus": True}),
        help_text=_("Shown in the order's timeline, e.g. “Refunded 30.00 by bank transfer”."),
        error_messages={"required": _("Say what was done about it: a note is required.")},
    )


class CancelOrderForm(OrderActionForm):
    """The reason for cancelling one order (the order page) or a batch (the orders list)."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2, "autofocus": True}),
        help_text=_("Kept on the order's timeline, e.g. “Hold expired, no reply to reminders”."),
    )


def describe_refundable(order: Order, payment: Payment, rest: Decimal) -> str:
    """A payment as the clerk picks it: method, date, amount and what is left to refund."""
    when = format_day(payment.created_at)
    return str(
        _("%(method)s, %(date)s, %(amount)s (%(rest)s left to refund)")
        % {
            "method": payment.get_method_display(),
            "date": when,
            "amount": order.format(payment.amount),
            "rest": order.format(rest),
        }
    )


class RefundForm(OrderActionForm):
    """Which payment, how much, why; and how the money went back for a manual payment."""

    payment = forms.TypedChoiceField(
        label=_("Payment"),
        coerce=int,
        widget=UnfoldAdminSelectWidget,
        help_text=_("Only payments with something left to refund are listed."),
    )
    amount = amount_field(_("At most what is left to refund on that payment."))
    reason = forms.ChoiceField(
        label=_("Reason"),
        choices=Refund.Reason.choices,
        initial=Refund.Reason.REQUESTED_BY_CUSTOMER,
        widget=UnfoldAdminSelectWidget,
    )
    channel = forms.ChoiceField(
        label=_("Paid back by"),
        choices=[("", _("Same as the payment")), *Payment.Channel.choices],
        required=False,
        widget=UnfoldAdminSelectWidget,
        help_text=_("Manual payments only: how the money went back. Card refunds go to the card."),
    )
    note = note_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.order is None:
            return
        refundable = refundable_payments(self.order)
        self.payments = {payment.pk: payment for payment, _rest in refundable}
        self.fields["payment"].choices = [
            (payment.pk, describe_refundable(self.order, payment, rest))
            for payment, rest in refundable
        ]
        if refundable:
            first, rest = refundable[0]
            self.fields["payment"].initial = first.pk
            self.fields["amount"].initial = rest.quantize(quantum(self.order.currency))
        self.fields["amount"].widget.attrs["suffix"] = self.order.currency
        if all(payment.method == Payment.Method.STRIPE for payment, _rest in refundable):
            del self.fields["channel"]

    def clean_payment(self) -> Payment:
        """The chosen payment, which must be one of this order's refundable ones."""
        payment = self.payments.get(self.cleaned_data["payment"])
        if payment is None:
            raise forms.ValidationError(_("Choose one of the payments listed."))
        return payment
