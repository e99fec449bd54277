"""Stripe webhook events in the admin: read-only, filterable, with a "Reprocess" action.

Events are stored by the webhook exactly as Stripe sent them; staff look at
them to see what arrived and what failed, and reprocess a failed one once its
cause is fixed. The action calls one service per event.
"""

import json
from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.contrib.filters.admin import RelatedDropdownFilter
from unfold.decorators import display

from backoffice.admin.dialogs import close_dialog, render_dialog
from backoffice.admin.forms import ReprocessStripeEventForm
from backoffice.admin.ledger import order_link
from backoffice.admin.model_admin import ModelAdmin
from backoffice.admin.pagination import LargeListMixin
from backoffice.admin.permissions import action
from backoffice.admin.stripe_links import stripe_link
from backoffice.dates import format_moment
from backoffice.models import StripeEvent
from backoffice.request_logging import redact, redact_data
from backoffice.services.search import search_stripe_events
from backoffice.services.webhooks import reprocess_stripe_event

REPROCESS_PERMISSION = "backoffice.reprocess_stripeevent"

REPROCESS_DIALOG = {
    "title": _("Reprocess Stripe event"),
    "description": _(
        "Applies this event to the orders and payments again. Safe to repeat: an event "
        "that was already applied changes nothing."
    ),
    "form_class": ReprocessStripeEventForm,
    "form_submit_text": _("Reprocess"),
}


class ProcessedFilter(admin.SimpleListFilter):
    """Whether the event was applied."""

    title = _("processed")
    parameter_name = "processed"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        """Yes / No."""
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """Filter on ``processed_at``."""
        if self.value() == "yes":
            return queryset.filter(processed_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(processed_at__isnull=True)
        return queryset


class ErrorFilter(admin.SimpleListFilter):
    """Whether applying the event raised an error (kept until it succeeds)."""

    title = _("error")
    parameter_name = "error"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        """With / without an error."""
        return [("yes", _("With an error")), ("no", _("Without an error"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """Filter on ``last_error``."""
        if self.value() == "yes":
            return queryset.exclude(last_error="")
        if self.value() == "no":
            return queryset.filter(last_error="")
        return queryset


class CustomerEventsFilter(admin.SimpleListFilter):
    """``customer.*`` events (Stripe's bookkeeping of its customers) are hidden unless asked for.

    They change no order, so by default the list leaves out those applied without
    an error; a failed one stays (it is counted on the dashboard's "could not be
    applied"). A filter on the type or a search shows them too, as asked.
    """

    title = _("customer events")
    parameter_name = "customer_events"
    SHOW = "show"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        """Hidden (the default) or shown."""
        return [(self.SHOW, _("Shown"))]

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        """ "Hidden" in place of Django's "All" for no choice: the list's default."""
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": _("Hidden"),
        }
        yield {
            "selected": self.value() == self.SHOW,
            "query_string": changelist.get_query_string({self.parameter_name: self.SHOW}),
            "display": _("Shown"),
        }

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """Leave out applied ``customer.*`` events unless shown, filtered by type or searched."""
        if self.value() == self.SHOW or _asks_for_types(request):
            return queryset
        applied = Q(last_error="") & Q(processed_at__isnull=False)
        return queryset.exclude(Q(type__startswith="customer.") & applied)


def _asks_for_types(request: HttpRequest) -> bool:
    """Whether the list is filtered on an event type or searched (then nothing is hidden)."""
    return bool(request.GET.get("q", "").strip()) or any(
        name == "type" or name.startswith("type__") for name in request.GET
    )


@admin.register(StripeEvent)
class StripeEventAdmin(LargeListMixin, ModelAdmin):
    """What Stripe told us, read-only; failed events can be reprocessed."""

    list_display = (
        "type",
        "event_id",
        "order_link",
        "conference",
        "processed",
        "error_summary",
        "received",
    )
    # The id is a link to Stripe's dashboard; the type opens the event's page here.
    list_display_links = ("type",)
    list_filter = (
        CustomerEventsFilter,
        "type",
        ProcessedFilter,
        ErrorFilter,
        ("conference", RelatedDropdownFilter),
    )
    search_fields = ("stripe_event_id", "type")
    list_select_related = ("conference", "order")
    list_per_page = 50
    actions = ("reprocess_selected",)
    actions_detail = ("reprocess",)
    fields = (
        "event_id",
        "type",
        "stripe_object",
        "order_link",
        "conference",
        "livemode",
        "received",
        "processed_on",
        "error",
        "note",
        "payload_pretty",
    )
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """A pasted event id through its index; substring search for the rest."""
        found = search_stripe_events(queryset, search_term)
        if found is not None:
            return found, False
        return super().get_search_results(request, queryset, search_term)

    # --- Read-only ------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Events come only from Stripe's webhook."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: StripeEvent | None = None) -> bool:
        """Events are a record of what Stripe sent: never edited."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StripeEvent | None = None) -> bool:
        """Deleting an event would let a replay of it be applied as new."""
        return False

    def has_reprocess_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Whether the user may apply stored events again."""
        return request.user.has_perm(REPROCESS_PERMISSION)

    # --- Columns --------------------------------------------------------------

    @display(description=_("Event id"), ordering="stripe_event_id")
    def event_id(self, event: StripeEvent) -> str:
        """The event's id, a link to it in Stripe's dashboard (test or live, as the event)."""
        return stripe_link(event.stripe_event_id, livemode=event.livemode)

    @display(description=_("Order"), ordering="order__reference")
    def order_link(self, event: StripeEvent) -> str:
        """The order the event is about, a link to its page; a dash for none."""
        return order_link(event.order) if event.order_id is not None else "—"

    @display(description=_("Stripe object"))
    def stripe_object(self, event: StripeEvent) -> str:
        """What the event is about at Stripe (and its customer), links to Stripe's dashboard."""
        obj = (event.payload.get("data") or {}).get("object") or {}
        ids = [obj.get("id"), obj.get("customer")]
        links = [
            (stripe_link(stripe_id, livemode=event.livemode),)
            for stripe_id in ids
            if isinstance(stripe_id, str) and stripe_id
        ]
        if not links:
            return "—"
        return format_html_join(" · ", "{}", links)

    @display(description=_("Processed"), boolean=True, ordering="processed_at")
    def processed(self, event: StripeEvent) -> bool:
        """Whether the event was applied."""
        return event.processed_at is not None

    @display(description=_("Error"))
    def error_summary(self, event: StripeEvent) -> str:
        """The first line of the last error, shortened."""
        if not event.last_error:
            return "—"
        first = redact(event.last_error).splitlines()[0]
        return first if len(first) <= 100 else first[:99] + "…"

    @display(description=_("Received"), ordering="received_at")
    def received(self, event: StripeEvent) -> str:
        """When the event arrived."""
        return format_moment(event.received_at)

    @display(description=_("Processed at"))
    def processed_on(self, event: StripeEvent) -> str:
        """When the event was applied."""
        return format_moment(event.processed_at)

    @display(description=_("Last error"))
    def error(self, event: StripeEvent) -> str:
        """Why applying the event failed, with any secret in the message redacted."""
        return redact(event.last_error) or "—"

    @display(description=_("Payload"))
    def payload_pretty(self, event: StripeEvent) -> str:
        """The event as Stripe sent it, indented, with client secrets and keys redacted.

        Only the display is redacted: the stored payload stays whole for reprocessing.
        """
        return format_html(
            '<pre class="whitespace-pre-wrap break-all text-xs">{}</pre>',
            json.dumps(redact_data(event.payload), indent=2, sort_keys=True),
        )

    # --- Actions --------------------------------------------------------------

    @action(
        description=_("Reprocess"),
        permissions=["reprocess"],
        icon="replay",
        dialog=REPROCESS_DIALOG,
    )
    def reprocess(
        self, request: HttpRequest, form: ReprocessStripeEventForm, object_id: str
    ) -> HttpResponse:
        """Apply this event again (dialog on the event page)."""
        event = self.get_object(request, object_id)
        if event is None:
            raise Http404(_("This event does not exist."))
        try:
            reprocess_stripe_event(event)
        except ValidationError as exc:
            form.add_error(None, redact(" ".join(exc.messages)))
            return render_dialog(request, REPROCESS_DIALOG, form)
        self.log_change(request, event, _("Reprocessed."))
        self.message_user(
            request, _("%(event)s was processed.") % {"event": event}, messages.SUCCESS
        )
        url = reverse(f"{self.admin_site.name}:backoffice_stripeevent_change", args=[event.pk])
        return close_dialog(request, url)

    @action(description=_("Reprocess"), permissions=["reprocess"], icon="replay")
    def reprocess_selected(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        """Apply each selected event again; one failure never stops the others."""
        done = 0
        failed: list[str] = []
        for event in queryset.order_by("received_at", "id"):
            try:
                reprocess_stripe_event(event)
            except ValidationError as exc:
                failed.append(redact(" ".join(exc.messages)))
                continue
            done += 1
            self.log_change(request, event, _("Reprocessed."))
        summary = ngettext(
            "%(count)d event was processed.", "%(count)d events were processed.", done
        ) % {"count": done}
        if not failed:
            self.message_user(request, summary, messages.SUCCESS)
            return
        failed_intro = ngettext(
            "%(count)d event failed:", "%(count)d events failed:", len(failed)
        ) % {"count": len(failed)}
        self.message_user(
            request,
            format_html(
                "{} {}<ul class='list-disc ms-5 mt-1'>{}</ul>",
                summary,
                failed_intro,
                format_html_join("", "<li>{}</li>", ((reason,) for reason in failed)),
            ),
            messages.WARNING if done else messages.ERROR,
        )
