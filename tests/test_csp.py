"""Content Security Policy per area: strict default, admin (unfold), checkout (Stripe)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.test import Client, RequestFactory

from backoffice.csp import (
    STRIPE_CONNECT_SRC,
    STRIPE_FRAME_SRC,
    STRIPE_SCRIPT_SRC,
    checkout_policy,
)


def directives(header: str) -> dict[str, list[str]]:
    """Parse a CSP header into {directive: sources}."""
    parts = [p.split() for p in header.split(";") if p.strip()]
    return {p[0]: p[1:] for p in parts}


@pytest.mark.django_db
def test_default_pages_get_the_strict_policy(client: Client) -> None:
    response = client.get("/", follow=False)  # the redirect to /admin/
    policy = directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]


@pytest.mark.django_db
def test_admin_pages_allow_eval_and_inline_styles_but_nothing_external(client: Client) -> None:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client.force_login(user)
    for url in ("/admin/login/", "/admin/", "/admin/backoffice/conference/"):
        response = client.get(url)
        policy = directives(response["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'", "'unsafe-eval'"], url
        assert policy["style-src"] == ["'self'", "'unsafe-inline'"], url
        assert "'unsafe-inline'" not in policy["script-src"]
        assert not re.search(r"https?://", response["Content-Security-Policy"]), url


@pytest.mark.django_db
def test_checkout_paths_allow_exactly_stripes_documented_origins(client: Client) -> None:
    response = client.get("/pay/some-token/")
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'", *STRIPE_SCRIPT_SRC]
    assert policy["frame-src"] == STRIPE_FRAME_SRC
    assert policy["connect-src"] == ["'self'", *STRIPE_CONNECT_SRC]
    assert policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]


def test_checkout_policy_adds_the_origin_of_a_configured_stripe_js_double(settings) -> None:
    settings.STRIPE_JS_URL = "http://127.0.0.1:8123/static/stripe-double.js"
    policy = checkout_policy()
    assert policy["script-src"][-1] == "http://127.0.0.1:8123"
    assert "http://127.0.0.1:8123" in policy["connect-src"]
    settings.STRIPE_JS_URL = "/static/tests/stripe-double.js"  # same origin: 'self' covers it
    assert checkout_policy()["script-src"] == ["'self'", *STRIPE_SCRIPT_SRC]


def test_a_views_own_csp_override_wins(rf: RequestFactory) -> None:
    from django.views.decorators.csp import csp_override

    from backoffice.csp import ContentSecurityPolicyMiddleware

    @csp_override({"default-src": ["'none'"]})
    def view(request):
        return HttpResponse("ok")

    request = rf.get("/pay/x/")
    middleware = ContentSecurityPolicyMiddleware(view)
    response = middleware(request)
    assert response["Content-Security-Policy"] == "default-src 'none'"


def test_project_templates_have_no_inline_scripts() -> None:
    from pathlib import Path

    from django.conf import settings

    roots = [Path(settings.BASE_DIR) / "templates", Path(settings.BASE_DIR) / "backoffice"]
    offenders = []
    for root in roots:
        for path in root.rglob("*.html"):
            text = path.read_text()
            for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", text, re.S | re.I):
                attrs, body = match.groups()
                if "application/json" in attrs or "json_script" in body:
                    continue
                if body.strip() or "src=" not in attrs:
                    offenders.append(f"{path}: inline <script>")
            if re.search(r"\son[a-z]+\s*=", text):
                offenders.append(f"{path}: inline event handler")
    assert not offenders, offenders
