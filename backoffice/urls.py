"""Public URLs: attendee checkout and Stripe webhooks."""

from django.urls import path

from backoffice.views import checkout, webhooks

app_name = "backoffice"

urlpatterns = [
    path("pay/<slug:token>/", checkout.pay, name="pay"),
    path("pay/<slug:token>/complete/", checkout.pay_complete, name="pay_complete"),
    path(
        "stripe/webhook/<slug:conference_slug>/",
        webhooks.stripe_webhook,
        name="stripe_webhook",
    ),
]
