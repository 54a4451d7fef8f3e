"""Files the JSON store writes: whole documents atomically (temporary
file, fsync, rename, fsync of the folder), and flock locks.

flock, not fcntl record locks: flock locks belong to the open file, so two
threads of one worker exclude each other as two worker processes do, and the
kernel drops the lock when a killed worker's file is closed.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


@contextmanager
def file_lock(path: Path, exclusive: bool = True) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_atomically(path: Path, text: str | bytes) -> None:
    """Replace ``path`` whole: a crash at any instant leaves the old file or
    the new one, never a torn one."""
    folder = path.parent
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except FileNotFoundError:  # the first write: make the folder
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)



def fsync_folder(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_head(path: Path, limit: int = 512) -> tuple[bytes | None, int]:
    """A journal's first line (b"" when it has none yet; None: no file) and
    its size, without reading the rest."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None, 0
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, limit, 0)
    finally:
        os.close(fd)
    end = head.find(b"\n")
    return (head[: end + 1] if end >= 0 else b""), size


def read_from(path: Path, offset: int) -> bytes | None:
    """The file's bytes from ``offset`` on (None: no file)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return None


def read_tail(path: Path, offset: int, limit: int = 512) -> tuple[bytes, bytes] | None:
    """A journal's first line and its bytes from ``offset`` on, from one open
    file: a journal replaced in between (a compaction) cannot mix the two."""
    try:
        with path.open("rb") as handle:
            head = handle.read(limit)
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return None
    end = head.find(b"\n")
    return (head[: end + 1] if end >= 0 else b""), data


def append_at(path: Path, offset: int, data: bytes) -> int:
    """Write ``data`` at ``offset`` (what lies beyond it, an incomplete record
    a crash left, is cut off first) and make it durable; the new size. On
    failure the file is cut back to ``offset``: nothing half-written stays."""
    fd = os.open(path, os.O_WRONLY)
    try:
        try:
            if os.fstat(fd).st_size != offset:
                os.ftruncate(fd, offset)
            written = 0
            while written < len(data):
                written += os.pwrite(fd, data[written:], offset + written)
            os.fsync(fd)
        except BaseException:
            with suppress(OSError):
                os.ftruncate(fd, offset)
            raise
    finally:
        os.close(fd)
    return offset + len(data)
