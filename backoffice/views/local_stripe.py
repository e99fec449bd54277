"""The local card form that stands in for Stripe.js when the site runs against the fake Stripe.

Development only: both views answer 404 unless ``stand_in_enabled()`` (DEBUG on
and a local ``STRIPE_API_BASE``), so production settings never serve them.
"""

from collections.abc import Callable
from functools import wraps
from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from backoffice.services.local_stripe import TestCard, pay_with_test_card, stand_in_enabled

STAND_IN_JS = Path(__file__).with_name("local_stripe.js")
CARD_FIELDS = ("number", "exp_month", "exp_year", "cvc")


def _only_with_local_stripe(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer 404 unless the local card form is on."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not stand_in_enabled():
            raise Http404("The local card form is only served in development.")
        return view(request, *args, **kwargs)

    return wrapped


@never_cache
@require_safe
@_only_with_local_stripe
def stripe_js(request: HttpRequest) -> HttpResponse:
    """The stand-in for Stripe.js v3 (``local_stripe.js``)."""
    return FileResponse(STAND_IN_JS.open("rb"), content_type="text/javascript")


# Like Stripe's API, authorised by the PaymentIntent's client secret, not by a cookie.
@csrf_exempt
@require_POST
@_only_with_local_stripe
def confirm_payment(request: HttpRequest, intent_id: str) -> HttpResponse:
    """Pay a PaymentIntent at the fake with the posted test card; Stripe.js's JSON answer."""
    card = TestCard(**{name: request.POST.get(name, "") for name in CARD_FIELDS})
    result = pay_with_test_card(
        intent_id=intent_id, client_secret=request.POST.get("client_secret", ""), card=card
    )
    return JsonResponse(result, status=200 if "paymentIntent" in result else 402)
