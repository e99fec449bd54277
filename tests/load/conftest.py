"""Fixtures of the load and fault tests: the shared gunicorn server (see server.py)."""

import pytest

from tests.load.server import SUMMARIES, load_server, load_static_root

__all__ = ["load_server", "load_static_root"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show every scenario's one-line summary at the end of the run, pass or fail."""
    if SUMMARIES:
        terminalreporter.section("load and fault scenarios")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
