"""The load and fault tests' server: gunicorn, 4 workers, production settings, PostgreSQL.

One server per test module (``load_server``, module-scoped), started with
``tests.deploy_env.running_gunicorn`` against the pytest-django PostgreSQL test
database (throwaway; tests commit their data through ``transaction=True``), with
two background workers (``manage.py run_worker``) beside it that send ``order_paid``.
Stripe's API is the session's localstripe. The settings module is
``tests.load.server_settings``: production settings plus a test-only app
(``tests/load/probe``) that writes one row per ``order_paid`` into
``PROBE_TABLE``, since the workers are separate processes.

Tests use it through ``tests/load/conftest.py``. ``start_load_server`` starts
another one (e.g. with other settings) for a scenario that must restart or
reconfigure the server. Every request targets 127.0.0.1 only.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.tasks import TaskResultStatus
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from backoffice.models import Conference
from tests.deploy_env import (
    PRODUCTION_HOST,
    REPO_DIR,
    collect_static,
    production_env,
    run_manage,
    running_gunicorn,
    shared_database_url,
)
from tests.load.probe.apps import PROBE_TABLE
from tests.smtp_server import shared_smtp_server
from tests.stripe_fixtures import LocalStripe, sign_payload

WORKERS = 4
# Background workers beside gunicorn: two, so tasks are claimed by competing processes.
TASK_WORKERS = 2
# How long the workers may take to run what the requests enqueued.
DRAIN_TIMEOUT = 120
SKIP_REASON = (
    "load and fault tests run gunicorn against PostgreSQL (SQLite is one file, one writer)"
)
ORIGIN = f"https://{PRODUCTION_HOST}"
# What the TLS-terminating proxy adds to every request it forwards.
PROXY_HEADERS = {"Host": PRODUCTION_HOST, "X-Forwarded-Proto": "https"}
REQUEST_TIMEOUT = 30
# One line per scenario; tests/load/conftest.py prints them at the end of every run.
SUMMARIES: list[str] = []


def report(line: str) -> None:
    """Print a scenario's one-line summary now (``-s``) and again in the run's summary."""
    print(line)
    SUMMARIES.append(line)


def _children(pid: int) -> list[int]:
    """Pids of the direct children of a process (Linux /proc)."""
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def _gunicorn_master(port: int) -> int:
    """The pid of this process's gunicorn child that binds ``port``."""
    bind = f"GUNICORN_BIND=127.0.0.1:{port}".encode()
    for pid in _children(os.getpid()):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if bind in environ:
            return pid
    raise RuntimeError(f"no gunicorn master of this test process binds port {port}")


class AdminSession(requests.Session):
    """A staff member's logged-in browser session talking to the server through the proxy."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.headers.update({**PROXY_HEADERS, "Origin": ORIGIN, "Referer": f"{ORIGIN}/admin/"})

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        """Send a request; then let the session send back Secure cookies over plain http.

        Production cookies are Secure (the proxy speaks https to the browser); the
        test talks to gunicorn directly, as the proxy does, so it clears the flag.
        """
        response = super().request(*args, **kwargs)
        for cookie in self.cookies:
            cookie.secure = False
        return response

    @property
    def csrf_token(self) -> str:
        """This session's CSRF token (Django accepts the cookie's secret in the form)."""
        return self.cookies["csrftoken"]

    def get_path(self, path: str, **kwargs: Any) -> requests.Response:
        """GET a path of the site, without following redirects."""
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        return self.get(self.base_url + path, allow_redirects=False, **kwargs)

    def post_form(self, path: str, data: dict[str, Any], **kwargs: Any) -> requests.Response:
        """POST a form with this session's CSRF token, without following redirects."""
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        return self.post(
            self.base_url + path,
            data={"csrfmiddlewaretoken": self.csrf_token, **data},
            allow_redirects=False,
            **kwargs,
        )


@dataclass
class Server:
    """A running gunicorn (4 workers) and the helpers the load and fault tests need."""

    port: int
    log: Path
    env: dict[str, str]
    task_workers: list[subprocess.Popen] = field(default_factory=list)
    task_log: Path | None = None

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>, the address gunicorn binds."""
        return f"http://127.0.0.1:{self.port}"

    def get(
        self, path: str, *, headers: dict[str, str] | None = None, timeout: float = REQUEST_TIMEOUT
    ) -> requests.Response:
        """GET a path as the proxy forwards it (no redirects followed)."""
        return requests.get(
            self.base_url + path,
            headers={**PROXY_HEADERS, **(headers or {})},
            allow_redirects=False,
            timeout=timeout,
        )

    def post_webhook(
        self,
        conference: Conference,
        event: dict[str, Any],
        *,
        session: requests.Session | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> requests.Response:
        """Sign ``event`` with the conference's webhook secret and POST it, as Stripe does."""
        body = json.dumps(event)
        headers = {
            **PROXY_HEADERS,
            "Content-Type": "application/json",
            "Stripe-Signature": sign_payload(body, conference.stripe_webhook_secret),
        }
        path = reverse("backoffice:stripe_webhook", args=[conference.slug])
        return (session or requests).post(
            self.base_url + path, data=body, headers=headers, timeout=timeout
        )

    def admin_session(self, username: str, password: str) -> AdminSession:
        """Log a staff user in through /admin/login/ (CSRF and all); return the session."""
        session = AdminSession(self.base_url)
        page = session.get_path("/admin/login/")
        assert page.status_code == 200, page.text[:500]
        response = session.post_form(
            "/admin/login/",
            {"username": username, "password": password, "next": "/admin/"},
            headers={"Referer": f"{ORIGIN}/admin/login/"},
        )
        assert response.status_code == 302, f"login of {username} failed: {response.status_code}"
        assert "sessionid" in session.cookies, "no session cookie after login"
        return session

    def worker_pids(self) -> list[int]:
        """Pids of the gunicorn workers alive right now."""
        return _children(_gunicorn_master(self.port))

    def kill_worker(self) -> int | None:
        """SIGKILL one worker picked at random (gunicorn starts another); return its pid."""
        pids = self.worker_pids()
        if not pids:
            return None
        pid = random.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

    def wait_for_workers(self, count: int = WORKERS, timeout: float = 60) -> None:
        """Wait until ``count`` workers run and /healthz answers 200."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                healthy = self.get("/healthz", timeout=5).status_code == 200
            except requests.RequestException:
                healthy = False
            if healthy and len(self.worker_pids()) >= count:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn is not ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def drain_tasks(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait until the background workers have run every queued task (retries included)."""
        deadline = time.monotonic() + timeout
        pending = DBTaskResult.objects.filter(
            status__in=(TaskResultStatus.READY, TaskResultStatus.RUNNING)
        )
        while pending.exists():
            dead = [w.pid for w in self.task_workers if w.poll() is not None]
            if dead or time.monotonic() > deadline:
                log = self.task_log.read_text()[-3000:] if self.task_log else ""
                pytest.fail(f"tasks not drained ({pending.count()} left, dead: {dead}):\n{log}")
            time.sleep(0.2)

    def send_due_order_paid(self) -> int:
        """Run the ``send_order_paid`` sweep once the task workers are done; return how many."""
        self.drain_tasks()
        result = run_manage("send_order_paid", env=self.env)
        assert result.returncode == 0, result.stderr
        match = re.search(r"Sent order_paid for (\d+) order", result.stdout)
        assert match, result.stdout
        return int(match.group(1))

    def order_paid_counts(self, order_ids: list[int]) -> dict[int, int]:
        """How many ``order_paid`` signals were sent for each order (0 when none), once sent."""
        self.drain_tasks()
        counts = dict.fromkeys(order_ids, 0)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT order_id, COUNT(*) FROM {PROBE_TABLE} "  # noqa: S608
                "WHERE order_id = ANY(%s) GROUP BY order_id",
                [list(order_ids)],
            )
            counts.update(dict(cursor.fetchall()))
        return counts


def create_probe_table() -> None:
    """Create the table the probe app writes one row per ``order_paid`` into."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} ("
            "id bigserial PRIMARY KEY, order_id bigint NOT NULL, pid integer NOT NULL, "
            "sent_at timestamptz NOT NULL DEFAULT now())"
        )


def load_server_env(
    static_root: Path, localstripe: LocalStripe, **overrides: str
) -> dict[str, str]:
    """Production environment for the load server, sharing this test's PostgreSQL database.

    ``overrides`` may replace any of these too (e.g. DATABASE_URL or STRIPE_API_BASE
    pointed at a fault-injecting proxy).
    """
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.load.server_settings",
        "DATABASE_URL": shared_database_url(),
        "DJANGO_STATIC_ROOT": str(static_root),
        "STRIPE_API_BASE": localstripe.url,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        # The test process encrypts the conferences' Stripe keys it creates; the server reads them.
        "BACKOFFICE_ENCRYPTION_KEYS": ",".join(settings.BACKOFFICE_ENCRYPTION_KEYS),
        # Receipts go to a real SMTP server of the test process.
        "DJANGO_EMAIL_URL": f"smtp://127.0.0.1:{shared_smtp_server()[1]}",
    }
    return production_env(**{**env, **overrides})


@contextmanager
def running_task_workers(env: dict[str, str], log: Path) -> Iterator[list[subprocess.Popen]]:
    """Run ``TASK_WORKERS`` ``manage.py run_worker`` processes; stop them with SIGTERM.

    They reach the database directly, not through a fault test's proxy: the fault
    tests break the web processes' connections, not the workers'.
    """
    worker_env = {**env, "DATABASE_URL": shared_database_url()}
    command = [sys.executable, "manage.py", "run_worker", "--no-reload", "--interval", "0.2"]
    processes: list[subprocess.Popen] = []
    with log.open("w") as out:
        try:
            for _ in range(TASK_WORKERS):
                processes.append(
                    subprocess.Popen(
                        command, cwd=REPO_DIR, env=worker_env, stdout=out, stderr=subprocess.STDOUT
                    )
                )
            yield processes
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def start_load_server(
    env: dict[str, str], log: Path, *, workers: int = WORKERS
) -> Iterator[Server]:
    """Run gunicorn and the task workers with ``env``; yield the Server once it answers; stop."""
    task_log = log.with_name(f"{log.stem}-tasks.log")
    with (
        running_task_workers(env, task_log) as task_workers,
        running_gunicorn(env, log, workers=workers) as port,
    ):
        server = Server(port=port, log=log, env=env, task_workers=task_workers, task_log=task_log)
        server.wait_for_workers(workers)
        yield server


@pytest.fixture(scope="session")
def load_static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Static files collected with the production (manifest) storage, once per session."""
    return collect_static(tmp_path_factory.mktemp("load-staticfiles"))


@pytest.fixture(scope="module")
def load_server(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    django_db_blocker: Any,
    localstripe: LocalStripe,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """gunicorn, 4 workers, production settings + the probe, on the PostgreSQL test database."""
    if connection.vendor != "postgresql":
        pytest.skip(SKIP_REASON)
    static_root = request.getfixturevalue("load_static_root")  # not collected on SQLite
    with django_db_blocker.unblock():
        create_probe_table()
        env = load_server_env(static_root, localstripe)
    log = tmp_path_factory.mktemp("load-server") / "gunicorn.log"
    with start_load_server(env, log) as server:
        yield server
