"""Running a command in a pseudo-terminal of its own, as a developer's shell runs it."""

import fcntl
import os
import pty
import subprocess
import termios
from pathlib import Path


def start_in_terminal(
    args: list[str], *, cwd: Path, env: dict[str, str]
) -> tuple[subprocess.Popen, int]:
    """Start ``args`` in a new session whose controlling terminal is a new pseudo-terminal.

    Returns the process and the terminal's side to read its output from (and to type
    Ctrl-C into). Job control (``set -m``) and Ctrl-C then work as in a shell.
    """
    terminal, child_side = pty.openpty()
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=child_side,
        stdout=child_side,
        stderr=child_side,
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(child_side)
    return process, terminal
