"""Helpers for tests that run the project as it is deployed: subprocesses with production env."""

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

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
