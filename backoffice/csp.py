"""Content Security Policies per area of the site, on top of Django's built-in CSP support.

- Everything: ``settings.SECURE_CSP``, strict (only this origin, no inline script, no eval).
- The admin (URL namespace ``admin``): ``admin_policy()``, what django-unfold needs.
- The checkout pages (``/pay/…``): ``checkout_policy()``, the Stripe origins for Stripe.js
  and the Payment Element, plus the origin of ``settings.STRIPE_JS_URL``.
A view decorated with ``django.views.decorators.csp.csp_override`` keeps its own policy.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csp import ContentSecurityPolicyMiddleware as DjangoCSPMiddleware
from django.utils.csp import CSP

CHECKOUT_PATH_PREFIX = "/pay/"
DEFAULT_STRIPE_JS_URL = "https://js.stripe.com/v3/"

# Stripe's "Integration security guide", section "Content Security Policy"
# (https://docs.stripe.com/security/guide#content-security-policy), lists what
# Stripe.js and Elements (the Payment Element included) need:
#   script-src  https://js.stripe.com https://*.js.stripe.com
#   frame-src   https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com
#   connect-src https://api.stripe.com
# (hooks.stripe.com serves the 3-D Secure / redirect frames.) The guide's
# https://maps.googleapis.com entries are only for the Address Element's autocomplete,
# which the checkout page does not use, so they are left out.
STRIPE_SCRIPT_SRC = ["https://js.stripe.com", "https://*.js.stripe.com"]
STRIPE_FRAME_SRC = ["https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"]
STRIPE_CONNECT_SRC = ["https://api.stripe.com"]


def _extend(policy: dict[str, list[str]], directive: str, sources: list[str]) -> None:
    """Add sources to a directive, dropping 'none' and keeping order without duplicates."""
    current = [s for s in policy.get(directive, []) if s != CSP.NONE]
    policy[directive] = current + [s for s in sources if s not in current]


def _origin(url: str) -> str:
    """The scheme://host[:port] of an absolute URL, or "" for a relative one."""
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return ""


def admin_policy() -> dict[str, list[str]]:
    """The strict policy plus what unfold's admin needs, nothing external.

    Measured in Chromium (tests/e2e/test_csp_admin.py): unfold runs Alpine.js
    expressions (x-data, @click, …), which Alpine evaluates with ``new Function``,
    so scripts need 'unsafe-eval'; unfold and Django's admin widgets set inline
    ``style`` attributes, so styles need 'unsafe-inline'. Inline <script> stays blocked.
    """
    policy = {k: list(v) for k, v in settings.SECURE_CSP.items()}
    _extend(policy, "script-src", [CSP.SELF, CSP.UNSAFE_EVAL])
    _extend(policy, "style-src", [CSP.SELF, CSP.UNSAFE_INLINE])
    return policy


def checkout_policy() -> dict[str, list[str]]:
    """The strict policy plus Stripe's documented origins and STRIPE_JS_URL's origin."""
    policy = {k: list(v) for k, v in settings.SECURE_CSP.items()}
    stripe_js = _origin(getattr(settings, "STRIPE_JS_URL", "") or DEFAULT_STRIPE_JS_URL)
    extra = [stripe_js] if stripe_js and stripe_js not in STRIPE_SCRIPT_SRC else []
    _extend(policy, "script-src", STRIPE_SCRIPT_SRC + extra)
    _extend(policy, "frame-src", STRIPE_FRAME_SRC)
    _extend(policy, "connect-src", STRIPE_CONNECT_SRC + extra)
    return policy


def policy_for(request: HttpRequest) -> dict[str, list[str]] | None:
    """The policy for this request's area, or None for the default ``SECURE_CSP``."""
    match = getattr(request, "resolver_match", None)
    if match is not None and "admin" in match.namespaces:
        return admin_policy()
    if request.path_info.startswith(CHECKOUT_PATH_PREFIX):
        return checkout_policy()
    return None


class ContentSecurityPolicyMiddleware(DjangoCSPMiddleware):
    """Django's CSP middleware, choosing the policy by area unless the view chose one."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Attach the area's policy, then let Django build the header."""
        if not hasattr(response, "_csp_config"):
            policy = policy_for(request)
            if policy is not None:
                response._csp_config = policy
        return super().process_response(request, response)
