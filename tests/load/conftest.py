"""Fixtures of the load and fault tests: the shared gunicorn server (see server.py)."""

from tests.load.server import load_server, load_static_root

__all__ = ["load_server", "load_static_root"]
