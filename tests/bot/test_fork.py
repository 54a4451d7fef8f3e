"""Queue workers start in the server's worker processes, and only there.

An app with queue workers used to register ``os.register_at_fork``: a hook
that cannot be taken back, so every process forked afterwards from the one
that built the app (pytest's multi-process tests, a library's helper
process) started queue workers of its own on the app's queue."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from flask import Flask

from model_assigner.bot.web.app import START_WORKERS, create_app
from tests.bot.handler_support import make_settings


def _forked_child_runs_queue_workers(start_workers: Callable[[], None] | None = None) -> bool:
    """Fork; the child (after calling ``start_workers``, if given) answers
    b"1" or b"0": queue workers run there or not. A child that dies before
    answering fails the test instead of reading as "no workers"."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether queue workers run here, then exit
        try:
            if start_workers is not None:
                start_workers()
            time.sleep(0.3)
            names = [t.name for t in threading.enumerate()]
            os.write(write, b"1" if any(n.startswith("queue-worker") for n in names) else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer in (b"0", b"1"), f"the child died without answering ({answer!r})"
    return answer == b"1"


def _shut_down(app: Flask) -> None:
    """Stop whatever the app started in this process and let go of its store."""
    start = app.extensions.get(START_WORKERS)
    worker = getattr(getattr(start, "__self__", None), "_worker", None)
    if worker is not None:
        worker.stop()
    release = getattr(app.extensions.get("model_assigner.store"), "release", None)
    if callable(release):
        release()


def test_a_process_forked_after_an_app_was_built_starts_no_queue_workers(
    tmp_path: Path,
) -> None:
    settings = replace(make_settings(tmp_path), app_id=None, private_key=None,
                       inline_delivery=False)  # dry-run: no GitHub
    app = create_app(settings)
    try:
        assert not _forked_child_runs_queue_workers()
        # What the server's worker class calls in each of its processes.
        start = app.extensions[START_WORKERS]
        assert callable(start)
        # The positive control: a child that calls the hook does run them, so
        # the probe above can tell the two apart.
        assert _forked_child_runs_queue_workers(start)
        # Nothing started in this (the test's) process either.
        assert not any(t.name.startswith("queue-worker") for t in threading.enumerate())
    finally:
        _shut_down(app)
