"""The gunicorn worker the Procfile runs: gthread, with a deadline on reading
each request.

gthread hands a connection to a thread as soon as its first bytes arrive, and
the thread then reads the rest of the request (headers, then the body, when
Flask asks for it) with blocking reads that never time out. A client that
sends ``Content-Length: 1000000`` and five bytes, then nothing, holds that
thread for as long as it keeps the socket open; ten such clients held every
thread of a 2 x 4 server, and /healthz and GitHub's deliveries waited with
them. Here every read of a request must finish within READ_SECONDS of the
request's start (``MODEL_ASSIGNER_READ_TIMEOUT``; GitHub sends a delivery's
body at once), after which the read fails, the app answers 408 and the
connection is closed: a stalled client costs one thread for a few seconds,
not for ever. What must still stand in front of the server in production (a
buffering proxy, connection limits per client) is in docs/security.md.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import ThreadWorker

ENV = "MODEL_ASSIGNER_READ_TIMEOUT"
DEFAULT_READ_SECONDS = 5.0
# A response goes to a client that has sent a whole request: it may be slow to
# read it, but not this slow.
WRITE_SECONDS = 30.0


def read_seconds(env: dict[str, str] | None = None) -> float:
    """The deadline from the environment: a positive number of seconds, at
    most 60; anything else is the default (the server must start)."""
    raw = (env if env is not None else os.environ).get(ENV, "").strip()
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_READ_SECONDS
    return value if 0 < value <= 60 else DEFAULT_READ_SECONDS


class RequestTimeout(NoMoreData):  # type: ignore[misc]
    """The request was not read within its deadline. gunicorn's NoMoreData (an
    OSError): while gunicorn reads the headers, it closes the connection as
    for a client gone; while the app reads the body, the app answers 408."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"request not read within {seconds:g}s")


class DeadlineSocket:
    """A client socket whose reads share one deadline per request (``start``).

    A timeout per ``recv`` would not do: a client sending a byte every few
    seconds would never trip it. Everything else is the socket's own."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    def start(self) -> None:
        self._deadline = time.monotonic() + self._seconds

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RequestTimeout(self._seconds)
        return left

    def recv(self, size: int, *flags: int) -> bytes:
        self._sock.settimeout(self._left())
        try:
            return self._sock.recv(size, *flags)
        except TimeoutError:
            raise RequestTimeout(self._seconds) from None

    def recv_into(self, buffer: Any, *args: int) -> int:
        self._sock.settimeout(self._left())
        try:
            return self._sock.recv_into(buffer, *args)
        except TimeoutError:
            raise RequestTimeout(self._seconds) from None

    def sendall(self, data: bytes, *flags: int) -> None:
        self._sock.settimeout(WRITE_SECONDS)
        self._sock.sendall(data, *flags)

    def send(self, data: bytes, *flags: int) -> int:
        self._sock.settimeout(WRITE_SECONDS)
        return self._sock.send(data, *flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BoundedReadWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, each request read within READ_SECONDS (see the module's doc)."""

    def handle(self, conn: Any) -> Any:
        sock = conn.sock
        if not isinstance(sock, DeadlineSocket):
            # Before the connection's parser is made: it reads through this.
            sock = conn.sock = DeadlineSocket(sock, read_seconds())
        sock.start()
        return super().handle(conn)

    def load_wsgi(self) -> None:
        """In the worker process, once it has the app (after the fork under
        --preload): settle the heap (bot/heap.py: no full collection walks the
        modules' objects again), then start the app's queue workers, so that a
        process that receives no request still works the queue (bot/web/app.py)."""
        from model_assigner.bot.heap import settle
        from model_assigner.bot.web.app import START_WORKERS, STRATEGY

        super().load_wsgi()
        settle(getattr(self.wsgi, "extensions", {}).get(STRATEGY))
        start = getattr(self.wsgi, "extensions", {}).get(START_WORKERS)
        if callable(start):
            start()
