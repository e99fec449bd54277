"""What the order actions share: the order acted on, a dialog closed or shown again, a summary."""

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from backoffice.admin.dialogs import close_dialog, render_dialog
from backoffice.admin.forms import OrderActionForm
from backoffice.models import Order


class OrderActionMixin:
    """Responses shared by OrderAdmin's dialog and bulk actions (mixed into OrderAdmin)."""

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
