"""One issue decided by one worker at a time: striped lock files on one
machine (flock, see bot/store/files.py), advisory locks across machines
(bot/store/postgresql.py)."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from model_assigner.bot.store.files import file_lock

ISSUE_LOCK_STRIPES = 1024


def issue_lock_path(lock_dir: Path, issue_key: str) -> Path:
    """A bounded set of lock files: issues hash onto stripes, so the folder never
    grows with the number of issues (two issues may share a stripe; that only
    serializes them)."""
    digest = hashlib.sha256(issue_key.encode()).digest()
    stripe = int.from_bytes(digest[:4], "big") % ISSUE_LOCK_STRIPES
    return lock_dir / f"issue-{stripe:04d}.lock"


@contextmanager
def issue_lock(lock_dir: Path, issue_key: str) -> Iterator[None]:
    """Serialize all work on one issue across workers, so a burst of deliveries
    for it ends in one label, one comment and one reservation."""
    with file_lock(issue_lock_path(lock_dir, issue_key)):
        yield


def issue_busy(lock_dir: Path, issue_key: str) -> bool:
    """Whether someone holds the issue's lock now (its stripe's: a busy
    neighbour reads as busy too). Never waits."""
    path = issue_lock_path(lock_dir, issue_key)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


class IssueLocks(Protocol):
    """One issue decided by one worker at a time: file locks on one machine
    (FileIssueLocks), advisory locks across machines (bot/store/postgresql.py)."""

    def hold(self, issue_key: str) -> AbstractContextManager[None]: ...

    def busy(self, issue_key: str) -> bool: ...


class FileIssueLocks:
    def __init__(self, lock_dir: Path) -> None:
        self.lock_dir = lock_dir

    def hold(self, issue_key: str) -> AbstractContextManager[None]:
        return issue_lock(self.lock_dir, issue_key)

    def busy(self, issue_key: str) -> bool:
        return issue_busy(self.lock_dir, issue_key)
