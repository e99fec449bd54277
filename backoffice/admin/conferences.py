"""Conferences in the admin."""

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
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
                ),
                "description": _("Leave blank to take payments only at the desk."),
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conference]:
        """Conferences with their number of orders (one query for the whole list)."""
        return super().get_queryset(request).annotate(order_total=Count("orders"))

    @display(description=_("Orders"), ordering="order_total")
    def order_count(self, conference: Conference) -> int:
        """How many orders the conference has."""
        return conference.order_total
