"""E-mails to attendees in the admin: the list on the order page, the message itself, Resend.

Records are written only by ``backoffice.services.notifications``; here they
are read, opened (the plain-text part on the page, the HTML part on its own,
sandboxed) and sent again.
"""

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import TabularInline
from unfold.decorators import display

from backoffice.admin.inline_tables import TableInlineMixin
from backoffice.admin.model_admin import ModelAdmin
from backoffice.admin.pagination import LargeListMixin
from backoffice.admin.permissions import action
from backoffice.models import Order, OrderEmail, actor_name
from backoffice.services import notifications
from backoffice.services.search import search_order_emails

EMAIL_STATUS_LABELS = {
    OrderEmail.Status.QUEUED: "warning",
    OrderEmail.Status.SENT: "success",
    OrderEmail.Status.FAILED: "danger",
}

# The HTML part is the attendee's message, not a page of ours: shown without scripts,
# forms or remote content beyond images, in a sandbox of its own.
HTML_PART_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:"


def _can_see_orders(request: HttpRequest) -> bool:
    """Whoever may see orders sees the e-mails sent about them."""
    return request.user.has_perm("backoffice.view_order") or request.user.has_perm(
        "backoffice.change_order"
    )


def email_url(email: OrderEmail) -> str:
    """The admin page showing one e-mail."""
    return reverse("admin:backoffice_orderemail_change", args=[email.pk])


class OrderEmailInline(TableInlineMixin, TabularInline):
    """The order's e-mails, newest first, each with a link to open it."""

    model = OrderEmail
    fields = ("kind", "recipient", "subject", "status_label", "queued_at", "sent_at", "open")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_title = False
    verbose_name = _("e-mail")
    verbose_name_plural = _("E-mails")

    def has_view_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """Anyone who may see the order sees its e-mails."""
        return _can_see_orders(request)

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """E-mails are written by the services only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """E-mails are never edited."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """E-mails are a record of what the attendee was sent."""
        return False

    @display(description=_("Status"), label=EMAIL_STATUS_LABELS)
    def status_label(self, email: OrderEmail) -> tuple[str, str]:
        """The status as a coloured label."""
        return email.status, email.get_status_display()

    @display(description=_("Message"))
    def open(self, email: OrderEmail) -> str:
        """A link to the e-mail's page (its text, HTML part and Resend)."""
        return format_html(
            '<a href="{}" class="text-primary-600">{}</a>', email_url(email), _("Open")
        )


@admin.register(OrderEmail)
class OrderEmailAdmin(LargeListMixin, ModelAdmin):
    """One e-mail to an attendee as it was sent: envelope, status, both parts; Resend."""

    list_display = ("subject", "kind", "recipient", "status_label", "queued_at", "sent_at")
    list_filter = ("kind", "status")
    search_fields = ("recipient", "subject", "order__reference")
    list_select_related = ("order",)
    list_per_page = 50
    actions_detail = ("resend", "open_html")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "order_link",
                    "kind",
                    "status_label",
                    "recipient",
                    "from_email",
                    "reply_to",
                    "subject",
                )
            },
        ),
        (_("Delivery"), {"fields": ("queued_at", "sent_at", "attempts", "error", "sent_by")}),
        (_("Message (plain-text part)"), {"fields": ("text_part",)}),
    )
    readonly_fields = (
        "order_link",
        "kind",
        "status_label",
        "recipient",
        "from_email",
        "reply_to",
        "subject",
        "queued_at",
        "sent_at",
        "attempts",
        "error",
        "sent_by",
        "text_part",
    )

    def has_module_permission(self, request: HttpRequest) -> bool:
        """Reached from the order page, not the sidebar."""
        return False

    def has_view_permission(self, request: HttpRequest, obj: OrderEmail | None = None) -> bool:
        """Whoever may see orders may read the e-mails sent about them."""
        return _can_see_orders(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        """E-mails are written by the services only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: OrderEmail | None = None) -> bool:
        """E-mails are never edited."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: OrderEmail | None = None) -> bool:
        """E-mails are a record of what the attendee was sent."""
        return False

    def has_send_payment_link_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may e-mail attendees (payment links, and Resend)."""
        return request.user.has_perm("backoffice.send_payment_link")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderEmail]:
        """E-mails with their order (for the link) and author."""
        return super().get_queryset(request).select_related("order", "created_by")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """A pasted order reference through its index; substring search for the rest."""
        found = search_order_emails(queryset, search_term)
        if found is not None:
            return found, False
        return super().get_search_results(request, queryset, search_term)

    @display(description=_("Order"))
    def order_link(self, email: OrderEmail) -> str:
        """The order the e-mail is about, linked."""
        url = reverse("admin:backoffice_order_change", args=[email.order_id])
        return format_html('<a href="{}" class="text-primary-600">{}</a>', url, email.order)

    @display(description=_("Status"), label=EMAIL_STATUS_LABELS)
    def status_label(self, email: OrderEmail) -> tuple[str, str]:
        """The status as a coloured label."""
        return email.status, email.get_status_display()

    @display(description=_("Sent by"))
    def sent_by(self, email: OrderEmail) -> str:
        """The staff member who sent it (a dash when it went out on its own, e.g. a receipt)."""
        return actor_name(email.created_by if email.created_by_id is not None else None)

    @display(description=_("Text"))
    def text_part(self, email: OrderEmail) -> str:
        """The plain-text part as the attendee reads it."""
        return format_html('<pre class="whitespace-pre-wrap text-sm">{}</pre>', email.text_body)

    @action(description=_("Resend"), permissions=["send_payment_link"], icon="forward_to_inbox")
    def resend(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Send this e-mail again, rendered afresh, to the order's current address."""
        email = self.get_object(request, object_id)
        if email is None:
            return HttpResponseRedirect(reverse("admin:backoffice_order_changelist"))
        try:
            again = notifications.resend(email, staff_user=request.user)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(email_url(email))
        self.log_change(request, email.order, f"Resent {email.get_kind_display().lower()}.")
        self.message_user(
            request,
            _("%(kind)s queued again for %(recipient)s.")
            % {"kind": again.get_kind_display(), "recipient": again.recipient},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(email_url(again))

    @action(description=_("Open HTML part"), icon="html")
    def open_html(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The HTML part on its own page, sandboxed (no scripts, no forms, no tracking)."""
        email = self.get_object(request, object_id)
        if email is None:
            return HttpResponseRedirect(reverse("admin:backoffice_order_changelist"))
        response = HttpResponse(email.html_body, content_type="text/html; charset=utf-8")
        # Django's CSP middleware keeps a policy the view set itself.
        response["Content-Security-Policy"] = HTML_PART_POLICY
        return response
