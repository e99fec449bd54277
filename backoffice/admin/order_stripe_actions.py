"""Re-sync from Stripe: apply what Stripe holds for an order's card payments."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from backoffice.admin.forms import SyncFromStripeForm
from backoffice.admin.order_actions import OrderActionMixin
from backoffice.admin.permissions import action
from backoffice.models import Order
from backoffice.services.payment import PaymentProviderError, PaymentService, StripeUnreachable

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


class OrderStripeActionsMixin(OrderActionMixin):
    """Re-sync from Stripe, on the order page and for a selection."""

    def has_sync_stripe_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may re-sync orders from Stripe (Finance)."""
        return request.user.has_perm("backoffice.sync_stripe")

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
