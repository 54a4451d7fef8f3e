"""bot.web.worker: one deadline for reading a whole request, on a real socket pair."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from model_assigner.bot.web.worker import (
    DEFAULT_READ_SECONDS,
    DeadlineSocket,
    RequestTimeout,
    read_seconds,
)


def test_the_deadline_is_for_the_whole_request_not_each_read() -> None:
    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def trickle() -> None:  # a byte every 0.1 s: no single read waits long
        while not stop.is_set():
            try:
                theirs.send(b"x")
            except OSError:
                return
            time.sleep(0.1)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        sock = DeadlineSocket(ours, 0.5)
        sock.start()
        started = time.monotonic()
        received = b""
        with pytest.raises(RequestTimeout):
            while True:
                received += sock.recv(10)
        assert 0.4 < time.monotonic() - started < 2
        assert received  # it did read while in time
        sock.start()  # the next request on the connection has its own deadline
        assert sock.recv(10)
    finally:
        stop.set()
        sender.join()
        ours.close()
        theirs.close()


def test_a_read_that_waits_past_the_deadline_fails() -> None:
    ours, theirs = socket.socketpair()
    try:
        sock = DeadlineSocket(ours, 0.3)
        sock.start()
        with pytest.raises(RequestTimeout):
            sock.recv(10)
        assert isinstance(RequestTimeout(1), OSError)  # gunicorn closes such a connection
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("", DEFAULT_READ_SECONDS), ("2", 2.0), ("0.5", 0.5), ("0", DEFAULT_READ_SECONDS),
     ("-1", DEFAULT_READ_SECONDS), ("nan", DEFAULT_READ_SECONDS), ("1e400", DEFAULT_READ_SECONDS),
     ("61", DEFAULT_READ_SECONDS), ("x", DEFAULT_READ_SECONDS)],
)
def test_the_read_timeout_setting(value: str, seconds: float) -> None:
    assert read_seconds({"MODEL_ASSIGNER_READ_TIMEOUT": value}) == seconds
