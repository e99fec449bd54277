"""Public URLs: attendee checkout and Stripe webhooks."""

from django.urls import path

from backoffice.views import checkout, local_stripe, webhooks

app_name = "backoffice"

urlpatterns = [
    path("pay/<slug:token>/", checkout.pay, name="pay"),
    path("pay/<slug:token>/complete/", checkout.pay_complete, name="pay_complete"),
    path(
        "stripe/webhook/<slug:conference_slug>/",
        webhooks.stripe_webhook,
        name="stripe_webhook",
    ),
    # Development only: 404 unless DEBUG is on and STRIPE_API_BASE is local (views/local_stripe.py).
    path("local-stripe/v3/", local_stripe.stripe_js, name="local_stripe_js"),
    path(
        "local-stripe/v1/payment_intents/<str:intent_id>/confirm",
        local_stripe.confirm_payment,
        name="local_stripe_confirm",
    ),
]
