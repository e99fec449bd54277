"""Conferences in the admin."""

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin
from unfold.decorators import display

from backoffice.models import Conference


@admin.register(Conference)
class ConferenceAdmin(ModelAdmin):
    """The events whose registrations are paid here, with their currency and Stripe account."""

    list_display = ("name", "slug", "currency", "order_count")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "currency")}),
        (
            _("Stripe"),
            {
                "fields": (
                    "stripe_publishable_key",
                    "stripe_secret_key",
                    "stripe_webhook_secret",
                    "webhook_url",
                ),
                "description": _(
                    "Leave blank to take payments only at the desk. In Stripe's dashboard, "
                    "add a webhook endpoint at the URL below for the events "
                    "payment_intent.succeeded, payment_intent.payment_failed, "
                    "payment_intent.processing, payment_intent.canceled and charge.refunded, "
                    "and paste its signing secret (whsec_…) here."
                ),
            },
        ),
    )

    readonly_fields = ("webhook_url",)

    class Media:
        js = ("backoffice/copy-link.js",)

    @display(description=_("Webhook URL"))
    def webhook_url(self, conference: Conference) -> str:
        """Where Stripe must send this conference's events (shown once the slug is saved)."""
        if not conference.pk:
            return _("Save the conference first.")
        url = reverse("backoffice:stripe_webhook", args=[conference.slug])
        return format_html(
            '<span class="flex flex-wrap items-center gap-2">'
            '<a id="webhook-url" href="{}" data-absolute-link class="break-all">{}</a>'
            '<button type="button" data-copy-link="webhook-url" '
            'class="border border-base-200 rounded-default px-2 py-1 font-medium '
            'hover:bg-base-50 dark:border-base-700 dark:hover:bg-base-800">{}</button>'
            '<span data-copy-status role="status" aria-live="polite"></span>'
            "</span>",
            url,
            url,
            _("Copy URL"),
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conference]:
        """Conferences with their number of orders (one query for the whole list)."""
        return super().get_queryset(request).annotate(order_total=Count("orders"))

    @display(description=_("Orders"), ordering="order_total")
    def order_count(self, conference: Conference) -> int:
        """How many orders the conference has."""
        return conference.order_total
