"""Helpers for tests that run the project as it is deployed: subprocesses with production env."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import connection

REPO_DIR = Path(__file__).resolve().parent.parent
PRODUCTION_HOST = "backoffice.example.com"
# Generated once per test run: the subprocesses share them, nothing is stored.
PRODUCTION_SECRET_KEY = Fernet.generate_key().decode() + Fernet.generate_key().decode()
PRODUCTION_ENCRYPTION_KEY = Fernet.generate_key().decode()


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production deployment behind a TLS-terminating proxy."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "BACKOFFICE_", "GUNICORN_", "PYTEST_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": PRODUCTION_SECRET_KEY,
            "DJANGO_ALLOWED_HOSTS": PRODUCTION_HOST,
            "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{PRODUCTION_HOST}",
            "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "BACKOFFICE_ENCRYPTION_KEYS": PRODUCTION_ENCRYPTION_KEY,
            "BACKOFFICE_SITE_URL": f"https://{PRODUCTION_HOST}",
            "DJANGO_EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
        }
    )
    env.update(overrides)
    return env


def run_manage(*args: str, env: dict[str, str], timeout: int = 180) -> subprocess.CompletedProcess:
    """Run ``python manage.py <args>`` in the repository with the given environment."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def collect_static(root: Path) -> Path:
    """Run ``collectstatic`` into ``root`` with the production (manifest) storage; return it."""
    result = run_manage(
        "collectstatic", "--noinput", env=production_env(DJANGO_STATIC_ROOT=str(root))
    )
    assert result.returncode == 0, result.stderr
    assert (root / "staticfiles.json").exists()
    return root


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_database_url() -> str:
    """A DATABASE_URL for a server process sharing this test's PostgreSQL test database."""
    settings = connection.settings_dict
    user = settings["USER"] or "postgres"
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


@contextmanager
def running_gunicorn(env: dict[str, str], log: Path, *, workers: int = 2) -> Iterator[int]:
    """Start `gunicorn --config gunicorn.conf.py` on a free port; yield the port; stop it."""
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
            cwd=REPO_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{log.read_text()}")
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
