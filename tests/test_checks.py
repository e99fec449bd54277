"""The start-up check that a hung Stripe cannot keep a request past the worker timeout."""

import runpy

from backoffice.checks import stripe_calls_fit_the_worker_timeout
from backoffice.stripe_client import longest_call_seconds
from tests.deploy_env import REPO_DIR, production_env, run_manage


def check_env(**overrides: str) -> dict[str, str]:
    """Production's environment with every Stripe setting at its default."""
    env = {k: v for k, v in production_env().items() if not k.startswith("STRIPE_")}
    return {**env, **overrides}


def test_the_default_settings_pass_the_check_in_production() -> None:
    result = run_manage("check", "--fail-level", "WARNING", env=check_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "backoffice.E001" not in result.stdout + result.stderr


def test_the_old_defaults_fail_start_up_in_production() -> None:
    """20 s × 3 tries was longer than gunicorn's 30 s: the attendee got a bare 500.

    Plain ``check`` (and so ``migrate`` and ``runserver``) fails on an error without
    any ``--fail-level``.
    """
    env = check_env(STRIPE_TIMEOUT_SECONDS="20", STRIPE_MAX_NETWORK_RETRIES="2")

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "backoffice.E001" in result.stderr
    assert "61.5 s" in result.stderr


def test_a_budget_just_past_the_margin_fails_start_up() -> None:
    """8 s × 2 tries + 0.5 s is 16.5 s: fits 30 s less 10 s, not 25 s less 10 s."""
    env = check_env(GUNICORN_TIMEOUT="25")

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "backoffice.E001" in result.stderr


def test_a_shorter_worker_timeout_is_read_from_gunicorns_variable(settings) -> None:
    settings.STRIPE_TIMEOUT_SECONDS = 8
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    settings.GUNICORN_TIMEOUT = 30
    assert stripe_calls_fit_the_worker_timeout() == []

    settings.GUNICORN_TIMEOUT = 20

    [error] = stripe_calls_fit_the_worker_timeout()
    assert error.id == "backoffice.E001"
    assert error.is_serious()
    assert "GUNICORN_TIMEOUT=20" in error.msg


def test_the_default_worker_timeout_is_gunicorns(monkeypatch) -> None:
    monkeypatch.delenv("GUNICORN_TIMEOUT", raising=False)
    conf = runpy.run_path(str(REPO_DIR / "gunicorn.conf.py"))
    script = "from django.conf import settings; print(settings.GUNICORN_TIMEOUT)"

    result = run_manage("shell", "-c", script, env=check_env())

    assert result.stdout.strip().splitlines()[-1] == str(conf["timeout"])


def test_the_longest_call_counts_every_try_and_the_backoff_between() -> None:
    assert longest_call_seconds(8, 1) == 8 * 2 + 0.5
    assert longest_call_seconds(20, 2) == 20 * 3 + 0.5 + 1.0
    assert longest_call_seconds(1, 5) == 6 + 0.5 + 1 + 2 + 4 + 5  # backoff is capped at 5 s
    assert longest_call_seconds(10, 0) == 10
