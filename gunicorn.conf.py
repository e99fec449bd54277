"""Gunicorn settings, read from the environment (see README "Deploying").

Run: gunicorn --config gunicorn.conf.py
"""

import os

from gunicorn.glogging import Logger


def _int(name: str, default: int) -> int:
    """An integer from the environment, or the default when unset or empty."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cpu_count() -> int:
    """CPUs this process may run on (respects container CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


wsgi_app = "config.wsgi:application"
bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_int('PORT', 8000)}"
# 2 × CPUs + 1 workers of 4 threads each (gthread): a request stuck on a lock holds
# one thread, not a whole worker, so /healthz and other pages still find a free one
# (README "Deploying"). GUNICORN_THREADS=1 switches back to sync workers.
workers = _int("GUNICORN_WORKERS", 2 * _cpu_count() + 1)
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# A gthread worker takes new connections only while it has a free thread: one whose
# threads are all stuck (on a lock, say) leaves /healthz and other pages to workers
# that can answer them, instead of queueing them behind the stuck ones. Kept-alive
# idle connections would count against that, so they are off by default (a proxy in
# front keeps its own client connections alive).
worker_connections = threads
keepalive = _int("GUNICORN_KEEPALIVE", 0 if threads > 1 else 5)
# Recycle workers now and then (0 = never), jittered so they don't restart together.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 0)
# Addresses of the proxy allowed to set X-Forwarded-Proto (e.g. "*" inside a private network).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# The heartbeat file in memory, not on the container's overlay filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# No runtime control socket: containers are managed from outside.
control_socket_disable = True

loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = "-"
errorlog = "-"


class JsonAccessLogger(Logger):
    """Gunicorn's logger, writing each access-log line as JSON fields (with the request id)."""

    def access(self, resp, req, environ, request_time) -> None:  # noqa: ANN001
        """Log one request: method, path, status, size, duration, request id, client."""
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        status = int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"]
        self.access_log.info(
            "%s %s %s",
            atoms["m"],
            atoms["U"],
            status,
            extra={
                "remote": atoms["h"],
                "method": atoms["m"],
                "path": atoms["U"],
                "query": atoms["q"],
                "status": status,
                "bytes": atoms["B"],
                "duration_ms": atoms["M"],
                "request_id": atoms.get("{x-request-id}o", "-"),
                "user_agent": atoms["a"],
            },
        )


logger_class = JsonAccessLogger
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "backoffice.request_logging.JsonFormatter"},
    },
    "handlers": {
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        },
        "access_console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        },
    },
    # Django configures the root logger (config/settings.py LOGGING) when it loads.
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"]},
        "gunicorn.access": {"level": "INFO", "handlers": ["access_console"]},
    },
}
