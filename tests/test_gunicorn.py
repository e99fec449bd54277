"""The production stack for real: collectstatic, then gunicorn (2 workers) with production settings.

The same commands as the Dockerfile: `manage.py collectstatic --noinput` and
`gunicorn --config gunicorn.conf.py`. On PostgreSQL the server uses the test
database (data committed through ``transactional_db``); SQLite's test database
lives in this process's memory, so there the server gets its own migrated file.
"""

import http.client
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

from tests.deploy_env import (
    PRODUCTION_HOST,
    collect_static,
    free_port,
    production_env,
    run_manage,
    running_gunicorn,
    shared_database_url,
)

pytestmark = pytest.mark.django_db(transaction=True)

SEED = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from backoffice.models import Conference, Order
User = get_user_model()
User.objects.create_superuser("ops", "ops@example.com", "ops-pass-123")
attendee = User.objects.create_user("ada", "ada@example.com", "ada-pass-123")
conference = Conference.objects.create(
    name="PyCon Deploy", slug="pycon-deploy", currency="USD",
    stripe_publishable_key="pk_test_deploy", stripe_secret_key="sk_test_deploysecret1234",
    stripe_webhook_secret="whsec_deploysecret5678",
)
order = Order.objects.create(conference=conference, user=attendee, subtotal=Decimal("50.00"),
                             total=Decimal("50.00"))
print("TOKEN=" + order.payment_token)
"""


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Static files collected with the production (manifest, compressed) storage."""
    return collect_static(tmp_path_factory.mktemp("staticfiles"))


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A DATABASE_URL the server process can share with this test."""
    if connection.vendor == "postgresql":
        return shared_database_url()
    url = f"sqlite:///{tmp_path / 'server.sqlite3'}"
    result = run_manage("migrate", "--noinput", env=production_env(DATABASE_URL=url))
    assert result.returncode == 0, result.stderr
    return url


@dataclass
class Server:
    """A running gunicorn and what the test needs to talk to it."""

    port: int
    payment_token: str
    log: Path

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        """GET a path as the TLS-terminating proxy would forward it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = {"Host": PRODUCTION_HOST, "X-Forwarded-Proto": "https", **(headers or {})}
        conn.request("GET", path, headers=sent)
        response = conn.getresponse()
        response.body = response.read()
        conn.close()
        return response


@pytest.fixture
def gunicorn_server(
    static_root: Path, database_url: str, tmp_path: Path, localstripe
) -> Iterator[Server]:
    """gunicorn with gunicorn.conf.py, 2 workers, production settings, seeded data.

    Stripe's API is the tests' localstripe (STRIPE_API_BASE), as in local development.
    """
    env = production_env(
        DATABASE_URL=database_url,
        DJANGO_STATIC_ROOT=str(static_root),
        STRIPE_API_BASE=localstripe.url,
        STRIPE_MAX_NETWORK_RETRIES="0",
    )
    seeded = run_manage("shell", "-c", SEED, env=env)
    assert seeded.returncode == 0, seeded.stderr
    token = re.search(r"TOKEN=(\S+)", seeded.stdout).group(1)

    log = tmp_path / "gunicorn.log"
    with running_gunicorn(env, log) as port:
        yield Server(port=port, payment_token=token, log=log)


def test_gunicorn_runs_two_workers_and_healthz_answers(gunicorn_server: Server) -> None:
    # As the container HEALTHCHECK calls it: plain http, Host 127.0.0.1.
    conn = http.client.HTTPConnection("127.0.0.1", gunicorn_server.port, timeout=10)
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read()) == {"status": "ok", "oldest_queued_task_seconds": None}
    conn.close()
    booted = re.findall(r"Booting worker with pid", gunicorn_server.log.read_text())
    assert len(booted) == 2


def test_admin_login_and_its_css_come_through_whitenoise_with_cache_headers(
    gunicorn_server: Server,
) -> None:
    page = gunicorn_server.get("/admin/login/")
    assert page.status == 200
    html = page.body.decode()
    stylesheets = re.findall(r'href="(/static/[^"]+\.css)"', html)
    assert stylesheets, html[:2000]
    # Manifest storage: every stylesheet has a content hash in its name.
    assert all(re.search(r"\.[0-9a-f]{12}\.css$", href) for href in stylesheets), stylesheets
    for href in stylesheets:
        css = gunicorn_server.get(href, headers={"Accept-Encoding": "gzip"})
        assert css.status == 200, href
        assert css.getheader("Content-Type").startswith("text/css")
        assert "max-age=315360000" in css.getheader("Cache-Control")
        assert "immutable" in css.getheader("Cache-Control")
        assert css.getheader("Content-Encoding") == "gzip"


def test_pages_behind_the_proxy_are_hardened(gunicorn_server: Server) -> None:
    page = gunicorn_server.get("/admin/login/")
    assert page.getheader("Strict-Transport-Security").startswith("max-age=31536000")
    assert page.getheader("X-Frame-Options") == "DENY"
    assert page.getheader("Referrer-Policy") == "same-origin"
    assert "Secure" in page.getheader("Set-Cookie")
    # Plain http without the proxy's header is redirected to https.
    plain = gunicorn_server.get("/admin/login/", headers={"X-Forwarded-Proto": "http"})
    assert plain.status == 301
    assert plain.getheader("Location") == f"https://{PRODUCTION_HOST}/admin/login/"


def test_checkout_page_and_its_assets_come_through_whitenoise(gunicorn_server: Server) -> None:
    page = gunicorn_server.get(f"/pay/{gunicorn_server.payment_token}/")
    assert page.status == 200
    html = page.body.decode()
    assert 'src="https://js.stripe.com/v3/"' in html
    assets = re.findall(r'(?:href|src)="(/static/[^"]+\.(?:css|js))"', html)
    assert any(a.endswith(".css") for a in assets) and any(a.endswith(".js") for a in assets)
    for href in assets:
        assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", href), href
        asset = gunicorn_server.get(href)
        assert asset.status == 200, href
        assert "max-age=315360000" in asset.getheader("Cache-Control"), href


def test_checkout_csp_allows_stripe_and_nothing_else_external(gunicorn_server: Server) -> None:
    response = gunicorn_server.get(f"/pay/{gunicorn_server.payment_token}/")
    assert response.status == 200
    policy = response.getheader("Content-Security-Policy")
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
    )
    assert "https://js.stripe.com" in directives["script-src"]
    assert "https://api.stripe.com" in directives["connect-src"]
    assert "https://js.stripe.com" in directives["frame-src"]
    external = {s for sources in directives.values() for s in sources if "://" in s}
    assert external
    assert all(re.fullmatch(r"https://([a-z*]+\.)*stripe\.com", s) for s in external), external
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]


def test_access_log_is_json_with_the_request_id(gunicorn_server: Server) -> None:
    response = gunicorn_server.get("/admin/login/", headers={"X-Request-ID": "deploy-test-0001"})
    assert response.getheader("X-Request-ID") == "deploy-test-0001"
    time.sleep(0.3)
    lines = [json.loads(line) for line in gunicorn_server.log.read_text().splitlines() if line]
    access = [x for x in lines if x.get("logger") == "gunicorn.access"]
    assert any(
        x["request_id"] == "deploy-test-0001" and x["path"] == "/admin/login/" for x in access
    ), access
    # Secrets seeded into the database never reach the log.
    text = gunicorn_server.log.read_text()
    assert "sk_test_deploysecret1234" not in text
    assert "whsec_deploysecret5678" not in text


def test_healthz_answers_503_when_the_database_does_not(static_root: Path, tmp_path: Path) -> None:
    """A real outage: nothing listens where DATABASE_URL points."""
    dead = f"postgres://postgres@127.0.0.1:{free_port()}/backoffice"
    env = production_env(DATABASE_URL=dead, DJANGO_STATIC_ROOT=str(static_root))
    with running_gunicorn(env, tmp_path / "gunicorn.log") as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.status == 503
        assert json.loads(response.read()) == {"status": "unavailable"}
        conn.close()
