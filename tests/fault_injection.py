"""Faults the tests inject on 127.0.0.1: a locked table, a database that refuses, a hung peer.

Used by the ordinary tests of the fault handling and by tests/load/test_faults.py
(where gunicorn's DATABASE_URL and STRIPE_API_BASE point at these).
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.deploy_env import free_port


@contextmanager
def table_locked(database_url: str, table: str, *, release_after: float = 60.0) -> Iterator[None]:
    """Hold ``LOCK TABLE <table> IN ACCESS EXCLUSIVE MODE`` on a connection of its own.

    Released when the block ends, or after ``release_after`` seconds at the latest,
    so code that waits for the lock without a bound still ends (and its test fails).
    """
    with psycopg.connect(database_url, autocommit=False) as conn:
        conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # test-chosen name
        timer = threading.Timer(release_after, conn.rollback)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            conn.rollback()


class TcpProxy:
    """A TCP proxy on 127.0.0.1 that forwards to a target, refuses, or accepts and never answers.

    ``forward()``: connections reach the target. ``refuse()``: the listening socket is
    closed (connects are refused) and open connections are dropped. ``hang()``:
    connections are accepted and never answered (and open ones dropped).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = "refuse"
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None

    def forward(self) -> None:
        """Pass connections to the target."""
        self._switch("forward")

    def hang(self) -> None:
        """Accept connections and never answer them."""
        self._switch("hang")

    def refuse(self) -> None:
        """Refuse new connections and drop open ones."""
        self._switch("refuse")

    def _switch(self, mode: str) -> None:
        """Drop open connections and listen (or not) in the new mode."""
        self._stop_listening()
        self._drop_connections()
        self.mode = mode
        if mode != "refuse":
            self._listen()

    def _listen(self) -> None:
        """Open the listening socket on our port and accept in a thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def _stop_listening(self) -> None:
        """Close the listening socket once the accept loop has noticed."""
        listener, self._listener = self._listener, None
        if self._accepting is not None:
            self._accepting.join(timeout=5)
            self._accepting = None
        if listener is not None:
            listener.close()

    def _drop_connections(self) -> None:
        """Close every open connection, both sides."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        """Accept until the listener is retired; forward or hold each connection."""
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._sockets.add(client)
            if self.mode == "forward":
                threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        """Open the upstream connection and pump bytes both ways."""
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets.add(upstream)
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy bytes from source to sink until either side closes."""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self.refuse()


def proxied_url(url: str, port: int) -> str:
    """The same URL with its host and port replaced by 127.0.0.1:<port>."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def wait_for(condition, *, timeout: float, interval: float = 0.1) -> bool:  # noqa: ANN001
    """Poll ``condition()`` until it is true or ``timeout`` seconds pass; return the last value."""
    deadline = time.monotonic() + timeout
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(interval)
    return bool(result)
