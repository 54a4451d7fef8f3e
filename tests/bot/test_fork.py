"""Queue workers start in the server's worker processes, and only there.

An app with queue workers used to register ``os.register_at_fork``: a hook
that cannot be taken back, so every process forked afterwards from the one
that built the app (pytest's multi-process tests, a library's helper
process) started queue workers of its own on the app's queue."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

from model_assigner.bot.web.app import START_WORKERS, create_app
from tests.bot.handler_support import make_settings


def _forked_child_runs_queue_workers() -> bool:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether queue workers run here, then exit
        try:
            time.sleep(0.3)
            names = [t.name for t in threading.enumerate()]
            os.write(write, b"1" if any(n.startswith("queue-worker") for n in names) else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    return answer == b"1"


def test_a_process_forked_after_an_app_was_built_starts_no_queue_workers(
    tmp_path: Path,
) -> None:
    settings = replace(make_settings(tmp_path), app_id=None, private_key=None,
                       inline_delivery=False)  # dry-run: no GitHub
    app = create_app(settings)
    assert not _forked_child_runs_queue_workers()
    # What the server's worker class calls in each of its processes.
    start = app.extensions[START_WORKERS]
    assert callable(start)
