"""scripts/run-dev.sh's wiring (`make run`): which Stripe the site and the worker get, and when.

The script runs as it is, in a pseudo-terminal like a developer's (its `set -m` job
control needs one), with a stand-in for Python that records each command it is given
and the STRIPE_API_BASE it sees, instead of migrating, serving and faking Stripe (the
real commands have tests of their own; tests/e2e/test_first_run.py runs it all for
real). Its `runserver` returns once the worker and the link printer have started, so
the script goes on to stop everything.
"""

import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.terminal import start_in_terminal

REPO_DIR = Path(__file__).resolve().parents[2]
FAKE_PORT = "54321"
RUN_SECONDS = 30

# Records "<argv> | STRIPE_API_BASE=<value>" per call; plays each command's part.
STAND_IN_PYTHON = f"""#!/bin/sh
echo "$* | STRIPE_API_BASE=${{STRIPE_API_BASE:-}}" >>"$STUB_CALLS"
case "$*" in
    -c*) echo {FAKE_PORT} ;;
    scripts/local_stripe.py*|"manage.py run_worker"*)
        trap 'echo "stopped: $1 $2" >>"$STUB_CALLS"; exit 0' TERM
        echo "fake's log line"
        while :; do sleep 0.1; done ;;
    "manage.py runserver"*)
        # Serves a while, like the real one: the worker and the link printer get going.
        until grep -q run_worker "$STUB_CALLS" && grep -q show_demo_links "$STUB_CALLS"; do
            sleep 0.05
        done
        echo "serving" >>"$STUB_CALLS"
        # STUB_SERVE_FOREVER: serve until the terminal goes (or a signal comes).
        while [ -n "${{STUB_SERVE_FOREVER:-}}" ]; do sleep 0.1; done
        sleep 0.5 ;;
    "manage.py use_local_stripe"*)
        # Like the real command, which waits for the fake to answer.
        while [ ! -s "$LOCAL_STRIPE_LOG" ]; do sleep 0.05; done
        if [ "$STUB_WIRING" != ok ]; then
            echo "PyCon Demo 2026 has Stripe keys of its own" >&2
            exit 1
        fi ;;
esac
exit 0
"""


@dataclass
class Run:
    """What one run of the script did: its exit status, output and the commands it ran."""

    status: int
    output: str
    calls: list[str]

    def called(self, command: str) -> list[str]:
        """The recorded calls that start with ``command``."""
        return [call for call in self.calls if call.startswith(command)]


def run_dev(tmp_path: Path, **env: str) -> Run:
    """Run scripts/run-dev.sh in a pseudo-terminal with the stand-in Python; what it did."""
    python = tmp_path / "python"
    python.write_text(STAND_IN_PYTHON)
    python.chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.touch()
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "LOCAL_STRIPE"))
    }
    environment.update({"STUB_CALLS": str(calls), "STUB_WIRING": "ok", "DJANGO_DEBUG": "1"})
    environment.update(env)
    process, terminal = start_in_terminal(
        ["sh", "scripts/run-dev.sh", str(python), "127.0.0.1:8765"], cwd=REPO_DIR, env=environment
    )
    output = bytearray()
    deadline = time.monotonic() + RUN_SECONDS
    try:
        while time.monotonic() < deadline:
            if not select.select([terminal], [], [], 0.5)[0]:
                continue
            try:
                data = os.read(terminal, 65536)
            except OSError:  # the script and all it started have closed the terminal
                break
            if not data:
                break
            output.extend(data)
        else:
            pytest.fail(f"run-dev.sh or a process it started still runs:\n{output.decode()}")
    finally:
        os.close(terminal)
        for pid in _in_session(process.pid):  # nothing outlives the test, even on failure
            os.kill(pid, signal.SIGKILL)
    status = process.wait(timeout=10)
    return Run(status, output.decode(errors="replace"), calls.read_text().splitlines())


def _in_session(session: int) -> list[int]:
    """The processes still running in a session (the script's, started with a new one)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(entry.name))
    return found


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script")


def test_by_default_the_site_and_the_worker_use_the_fake_and_its_log_is_where_asked(
    tmp_path: Path,
) -> None:
    log = tmp_path / "logs" / "fake.log"

    run = run_dev(tmp_path, LOCAL_STRIPE_LOG=str(log))

    api_base = f"http://127.0.0.1:{FAKE_PORT}"
    assert run.status == 0, run.output
    assert run.called(f"scripts/local_stripe.py {FAKE_PORT}")
    assert run.called(f"manage.py use_local_stripe --api-base {api_base}")
    assert run.called("manage.py runserver 127.0.0.1:8765") == [
        f"manage.py runserver 127.0.0.1:8765 | STRIPE_API_BASE={api_base}"
    ]
    assert f"Fake Stripe server (localstripe) at {api_base}; its log is {log}." in run.output
    assert log.read_text() == "fake's log line\n"
    assert f"stopped: scripts/local_stripe.py {FAKE_PORT}" in run.calls  # at the end
    assert "Done" not in run.output


def test_a_demo_conference_with_keys_of_its_own_stops_the_fake_and_talks_to_stripe(
    tmp_path: Path,
) -> None:
    run = run_dev(tmp_path, STUB_WIRING="refused", LOCAL_STRIPE_LOG=str(tmp_path / "fake.log"))

    assert run.status == 0, run.output
    assert "PyCon Demo 2026 has Stripe keys of its own" in run.output
    assert "Not using the fake Stripe server: card payments go to Stripe." in run.output
    stopped = run.calls.index(f"stopped: scripts/local_stripe.py {FAKE_PORT}")
    assert stopped < run.calls.index("manage.py run_worker --no-reload | STRIPE_API_BASE=")
    assert run.called("manage.py runserver") == [
        "manage.py runserver 127.0.0.1:8765 | STRIPE_API_BASE="
    ]
    assert "Fake Stripe server (localstripe) at" not in run.output
    assert "Done" not in run.output  # no "[1] + Done …" from the shell for the stopped fake


def test_local_stripe_0_starts_no_fake_and_wires_nothing(tmp_path: Path) -> None:
    run = run_dev(tmp_path, LOCAL_STRIPE="0")

    assert run.status == 0, run.output
    assert "LOCAL_STRIPE=0: no fake Stripe server; card payments go to Stripe." in run.output
    assert run.called("scripts/local_stripe.py") == []
    assert run.called("manage.py use_local_stripe") == []
    assert run.called("manage.py runserver") == [
        "manage.py runserver 127.0.0.1:8765 | STRIPE_API_BASE="
    ]


def test_a_stripe_api_base_of_your_own_is_kept_and_no_fake_is_started(tmp_path: Path) -> None:
    run = run_dev(tmp_path, STRIPE_API_BASE="http://127.0.0.1:8420")

    assert run.status == 0, run.output
    assert "STRIPE_API_BASE=http://127.0.0.1:8420 is set: no fake Stripe server started." in (
        run.output
    )
    assert run.called("scripts/local_stripe.py") == []
    assert run.called("manage.py use_local_stripe") == []
    assert run.called("manage.py runserver") == [
        "manage.py runserver 127.0.0.1:8765 | STRIPE_API_BASE=http://127.0.0.1:8420"
    ]


def test_closing_the_terminal_stops_the_worker_and_the_fake_too(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text(STAND_IN_PYTHON)
    python.chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.touch()
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "LOCAL_STRIPE"))
    }
    environment.update(
        STUB_CALLS=str(calls),
        STUB_WIRING="ok",
        STUB_SERVE_FOREVER="1",
        DJANGO_DEBUG="1",
        LOCAL_STRIPE_LOG=str(tmp_path / "fake.log"),
    )
    # As from a terminal's shell: the session leader (here `sh -c`) dies of the hang-up
    # and the kernel then sends SIGHUP to the foreground group, the script and its server.
    process, terminal = start_in_terminal(
        ["sh", "-c", 'sh scripts/run-dev.sh "$0" 127.0.0.1:8765; exit $?', str(python)],
        cwd=REPO_DIR,
        env=environment,
    )
    try:
        deadline = time.monotonic() + RUN_SECONDS
        while "serving" not in calls.read_text().splitlines():
            assert time.monotonic() < deadline, calls.read_text()
            if select.select([terminal], [], [], 0.1)[0]:
                os.read(terminal, 65536)
        os.close(terminal)  # the terminal window is closed: the session gets SIGHUP
        terminal = -1
        deadline = time.monotonic() + 15
        while _in_session(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _in_session(process.pid)
    finally:
        if terminal >= 0:
            os.close(terminal)
        for pid in _in_session(process.pid):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert left == [], calls.read_text()
    assert f"stopped: scripts/local_stripe.py {FAKE_PORT}" in calls.read_text().splitlines()
    assert "stopped: manage.py run_worker" in calls.read_text().splitlines()


def test_the_links_wait_for_the_site_and_for_the_worker_to_empty_its_queue(
    tmp_path: Path,
) -> None:
    run = run_dev(tmp_path, LOCAL_STRIPE="0")

    assert [call.split(" | ")[0] for call in run.called("manage.py show_demo_links")] == [
        "manage.py show_demo_links --site-url http://127.0.0.1:8765 --wait 120 --wait-for-worker 90"
    ]
