"""gunicorn.conf.py reads its settings from the environment, with sensible defaults."""

import os
import runpy

from tests.deploy_env import REPO_DIR


def load(monkeypatch, **env: str) -> dict:
    """Execute gunicorn.conf.py with the given environment and return its settings."""
    for name in list(os.environ):
        if name.startswith("GUNICORN_") or name == "PORT":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(REPO_DIR / "gunicorn.conf.py"))


def test_defaults(monkeypatch) -> None:
    conf = load(monkeypatch)
    cpus = len(os.sched_getaffinity(0))
    assert conf["workers"] == 2 * cpus + 1
    assert conf["threads"] == 4  # gthread: one stuck request cannot starve /healthz
    assert conf["bind"] == "0.0.0.0:8000"
    assert conf["timeout"] == 30
    assert conf["loglevel"] == "info"
    assert conf["accesslog"] == "-" and conf["errorlog"] == "-"
    assert conf["wsgi_app"] == "config.wsgi:application"


def test_environment_overrides(monkeypatch) -> None:
    conf = load(
        monkeypatch,
        GUNICORN_WORKERS="3",
        GUNICORN_THREADS="1",
        GUNICORN_BIND="127.0.0.1:9000",
        GUNICORN_TIMEOUT="90",
        GUNICORN_GRACEFUL_TIMEOUT="20",
        GUNICORN_LOG_LEVEL="warning",
        GUNICORN_FORWARDED_ALLOW_IPS="*",
    )
    assert (conf["workers"], conf["threads"], conf["bind"]) == (3, 1, "127.0.0.1:9000")
    assert (conf["timeout"], conf["graceful_timeout"]) == (90, 20)
    assert conf["loglevel"] == "warning"
    assert conf["forwarded_allow_ips"] == "*"
    assert conf["logconfig_dict"]["loggers"]["gunicorn.error"]["level"] == "WARNING"


def test_port_variable_sets_the_bind_port(monkeypatch) -> None:
    assert load(monkeypatch, PORT="5000")["bind"] == "0.0.0.0:5000"
