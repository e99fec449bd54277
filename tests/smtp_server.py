"""A real SMTP server for tests (aiosmtpd on a free port of 127.0.0.1) and its inbox."""

import asyncio
import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.deploy_env import free_port


class Inbox:
    """An aiosmtpd handler keeping every message it accepts.

    ``refuse`` answers 451 instead; ``stall`` holds every message unanswered (its
    sender waits mid-send, ``reached`` is set) until ``stall`` is cleared, then
    answers 451: a message the server never acknowledged is not delivered.
    """

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.refuse = False
        self.stall = False
        self.reached = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.stall:
            self.reached.set()
            while self.stall:
                await asyncio.sleep(0.05)
            return "451 Requested action aborted: the sender went away"
        if self.refuse:
            return "451 Requested action aborted: local error in processing"
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@contextmanager
def running_smtp_server() -> Iterator[tuple[Inbox, int]]:
    """Run an SMTP server for the block; yield its inbox and port."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


_shared: tuple[Inbox, int] | None = None


def shared_smtp_server() -> tuple[Inbox, int]:
    """One SMTP server for the whole test process (e.g. for gunicorn servers' workers)."""
    global _shared
    if _shared is None:
        server = running_smtp_server()
        _shared = server.__enter__()
        atexit.register(server.__exit__, None, None, None)
    return _shared
