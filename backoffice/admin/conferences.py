"""Conferences in the admin; Stripe secrets are write-only (a masked hint, never the value).

Nobody sees a stored secret again, whether they may edit the conference or only
view it: the edit form has an empty password input with the hint beside it, the
read-only page shows the hint in place of the field.
"""

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.decorators import display
from unfold.widgets import UnfoldAdminPasswordWidget, UnfoldBooleanWidget

from backoffice.admin.model_admin import ModelAdmin
from backoffice.encryption import mask
from backoffice.models import Conference
from backoffice.services import stripe_keys

# Each secret field: its label, the rule a new value must meet, and how its prefix reads.
SECRET_FIELDS = {
    "stripe_secret_key": (
        "Stripe secret key",
        stripe_keys.validate_secret_key,
        "sk_test_, sk_live_, rk_test_ or rk_live_",
    ),
    "stripe_webhook_secret": (
        "Stripe webhook signing secret",
        stripe_keys.validate_webhook_secret,
        "whsec_",
    ),
}
# On the read-only page each secret field is replaced by its hint; removal boxes are dropped.
READ_ONLY_FIELDS = {
    **{name: f"{name}_hint" for name in SECRET_FIELDS},
    **{f"clear_{name}": None for name in SECRET_FIELDS},
}


def stored_secrets(conference: Conference | None) -> set[str]:
    """The secret fields that hold a value on a saved conference (their removal is offered)."""
    if conference is None or not conference.pk:
        return set()
    return {name for name in SECRET_FIELDS if getattr(conference, name)}


def secret_hint(stored: str) -> str:
    """How the admin shows a stored secret: its last 4 characters at most."""
    if not stored:
        return str(_("Not set."))
    return str(_("Stored: %(hint)s.")) % {"hint": mask(stored)}


class ConferenceForm(forms.ModelForm):
    """Edits a conference; each secret field takes a new value, blank keeps the stored one."""

    clear_stripe_secret_key = forms.BooleanField(
        required=False, label=_("Remove the stored secret key"), widget=UnfoldBooleanWidget
    )
    clear_stripe_webhook_secret = forms.BooleanField(
        required=False, label=_("Remove the stored webhook secret"), widget=UnfoldBooleanWidget
    )

    class Meta:
        model = Conference
        fields = [
            "name",
            "slug",
            "currency",
            "stripe_publishable_key",
            "stripe_secret_key",
            "stripe_webhook_secret",
            "organiser_name",
            "organiser_address",
            "contact_email",
            "reply_to_email",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        stored = stored_secrets(self.instance)
        for name, (label, _rule, prefixes) in SECRET_FIELDS.items():
            hint = secret_hint(getattr(self.instance, name) if self.instance.pk else "")
            self.fields[name] = forms.CharField(
                label=label,
                required=False,
                strip=True,
                widget=UnfoldAdminPasswordWidget(render_value=False),
                help_text=f"{hint} Enter a new value to replace it (starts with "
                f"{prefixes}); leave blank to keep the stored one.",
            )
            self.initial.pop(name, None)
            if name not in stored:  # nothing to remove
                del self.fields[f"clear_{name}"]

    def _check(self, name: str) -> str:
        """A new secret must look like the kind of secret the field holds."""
        value = self.cleaned_data.get(name, "")
        if value:
            SECRET_FIELDS[name][1](value)
        return value

    def clean_stripe_publishable_key(self) -> str:
        """Check the prefix of a publishable key."""
        value = self.cleaned_data.get("stripe_publishable_key", "")
        if value:
            if stripe_keys.is_secret(value):
                self._forget_typed("stripe_publishable_key")
            stripe_keys.validate_publishable_key(value)
        return value

    def _forget_typed(self, name: str) -> None:
        """Redraw the field empty: a secret typed in a visible field is not echoed back."""
        self.data = self.data.copy()
        self.data[name] = ""

    def clean_stripe_secret_key(self) -> str:
        """Check the prefix of a new secret key."""
        return self._check("stripe_secret_key")

    def clean_stripe_webhook_secret(self) -> str:
        """Check the prefix of a new webhook secret."""
        return self._check("stripe_webhook_secret")

    def clean(self) -> dict:
        """A new value replaces the stored one; blank keeps it, unless removal is ticked."""
        cleaned = super().clean()
        for name in SECRET_FIELDS:
            if name not in cleaned or cleaned[name]:  # an error, or a new value
                continue
            if cleaned.get(f"clear_{name}"):
                cleaned[name] = ""
            elif self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        self._check_modes(cleaned)
        return cleaned

    def _check_modes(self, cleaned: dict) -> None:
        """When either key changes, the two kept must both be test keys, or both live keys."""
        if "stripe_publishable_key" not in cleaned or "stripe_secret_key" not in cleaned:
            return  # one of them already has an error
        if self.instance.pk and not {"stripe_publishable_key", "stripe_secret_key"} & set(
            self.changed_data
        ):
            return  # a pair stored before this check must not block editing the name
        try:
            stripe_keys.validate_key_pair(
                cleaned["stripe_publishable_key"], cleaned["stripe_secret_key"]
            )
        except forms.ValidationError as error:
            # On the field the clerk just changed: a new secret, else the publishable key.
            changed = "stripe_secret_key" if self.data.get("stripe_secret_key") else None
            self.add_error(changed or "stripe_publishable_key", error)


@admin.register(Conference)
class ConferenceAdmin(ModelAdmin):
    """The events whose registrations are paid here, with their currency and Stripe account."""

    form = ConferenceForm
    list_display = ("name", "slug", "currency", "order_count", "stripe_configured")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "currency")}),
        (
            _("E-mails to attendees"),
            {
                "fields": (
                    "organiser_name",
                    "organiser_address",
                    "contact_email",
                    "reply_to_email",
                ),
                "description": _(
                    "Shown on every e-mail to attendees (payment links, receipts, refund and "
                    "cancellation confirmations); the organiser's name is the sender's name."
                ),
            },
        ),
        (
            _("Stripe"),
            {
                "fields": (
                    "stripe_publishable_key",
                    "stripe_secret_key",
                    "clear_stripe_secret_key",
                    "stripe_webhook_secret",
                    "clear_stripe_webhook_secret",
                    "webhook_url",
                ),
                "description": _(
                    "Leave blank to take payments only at the desk. In Stripe's dashboard, "
                    "add a webhook endpoint at the URL below for the events "
                    "payment_intent.succeeded, payment_intent.payment_failed, "
                    "payment_intent.processing, payment_intent.canceled, charge.refunded, "
                    "charge.refund.updated, refund.created and refund.updated, and paste "
                    "its signing secret (whsec_…) here. Secrets are stored "
                    "encrypted and never shown again, only their last 4 characters."
                ),
            },
        ),
    )

    readonly_fields = ("webhook_url", "stripe_secret_key_hint", "stripe_webhook_secret_hint")

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

    @display(description=_("Stripe secret key"))
    def stripe_secret_key_hint(self, conference: Conference) -> str:
        """The stored secret key, masked (read-only page)."""
        return secret_hint(conference.stripe_secret_key)

    @display(description=_("Stripe webhook signing secret"))
    def stripe_webhook_secret_hint(self, conference: Conference) -> str:
        """The stored webhook signing secret, masked (read-only page)."""
        return secret_hint(conference.stripe_webhook_secret)

    def get_fieldsets(self, request: HttpRequest, obj: Conference | None = None) -> list:
        """Who may not edit the conference sees each secret as its masked hint.

        Who may edit it is offered to remove a secret only when one is stored.

        Django renders a read-only model field by reading the attribute, which
        here is the decrypted secret: so the field itself is never listed then.
        """
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            # "Remove the stored …" only beside a secret that is stored.
            stored = stored_secrets(obj)
            replaced = {f"clear_{name}": None for name in SECRET_FIELDS if name not in stored}
        else:
            replaced = READ_ONLY_FIELDS
        shown_fieldsets = []
        for title, options in fieldsets:
            shown = (replaced.get(name, name) for name in options["fields"])
            shown_fieldsets.append(
                (title, {**options, "fields": tuple(name for name in shown if name)})
            )
        return shown_fieldsets

    def get_readonly_fields(
        self, request: HttpRequest, obj: Conference | None = None
    ) -> tuple[str, ...]:
        """The currency is fixed once the conference has orders (their amounts are in it)."""
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and obj.pk and obj.orders.exists():
            fields += ("currency",)
        return fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conference]:
        """Conferences with their number of orders (one query for the whole list)."""
        return super().get_queryset(request).annotate(order_total=Count("orders"))

    @display(description=_("Orders"), ordering="order_total")
    def order_count(self, conference: Conference) -> int:
        """How many orders the conference has."""
        return conference.order_total

    @display(description=_("Stripe keys set"), boolean=True)
    def stripe_configured(self, conference: Conference) -> bool:
        """Whether the conference can take card payments (without decrypting anything)."""
        # The raw attribute is a StoredCiphertext (truthy) or "": no need to decrypt.
        return bool(
            conference.stripe_publishable_key and conference.__dict__.get("stripe_secret_key")
        )
