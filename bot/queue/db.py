"""The SQLite file that holds the delivery queue and the GitHub rate policy.

One file next to the quota store (``queue.sqlite3``), shared by every process
on the machine: gunicorn's workers, ``model-assigner worker`` processes and
the CLI. SQLite in WAL mode with ``synchronous=NORMAL``: a transaction that
returned is in the file (the operating system's cache), so a delivery
answered 202 survives the SIGKILL of any process; readers never wait for
writers. Not fsync'd per transaction (FULL costs ~5 ms a commit here, the
whole of an acknowledgement's budget): a power cut or a kernel crash may
lose the last acknowledgements, and the catch-up's sweep of open issues
without a decision recovers them (docs/delivery-pipeline.md). Each thread
has its own connection.

Writes take ``BEGIN IMMEDIATE`` (the database's write lock at once), so a
read-then-write inside one transaction is never interleaved with another
process's: that is what makes claiming a job, coalescing a delivery and
taking a rate-limit slot atomic across processes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from model_assigner.bot.queue.dialect import Dialect, SqlMeta

BUSY_TIMEOUT_MS = 30_000
# ``MODEL_ASSIGNER_QUEUE_SYNCHRONOUS``: NORMAL (the default) or FULL, SQLite's
# ``synchronous`` for the queue file (docs/delivery-pipeline.md, durability).
SYNCHRONOUS_ENV = "MODEL_ASSIGNER_QUEUE_SYNCHRONOUS"


def synchronous_mode() -> str:
    """FULL when asked for, NORMAL otherwise (anything else is NORMAL: the
    server must start)."""
    value = os.environ.get(SYNCHRONOUS_ENV, "").strip().upper()
    return "FULL" if value == "FULL" else "NORMAL"

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    accepted_at REAL NOT NULL,
    job TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    installation INTEGER,
    entries TEXT NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    lease_until REAL,
    owner TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, not_before);
CREATE TABLE IF NOT EXISTS outcomes (
    delivery TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_events (
    installation INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_events_at ON rate_events (installation, at);
CREATE TABLE IF NOT EXISTS labels (
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (repo, name)
);
CREATE TABLE IF NOT EXISTS rate_blocks (
    installation INTEGER PRIMARY KEY,
    until REAL NOT NULL,
    reason TEXT NOT NULL,
    strikes INTEGER NOT NULL DEFAULT 0
);
"""


class QueueDbError(RuntimeError):
    """The queue file cannot be opened, read or written; ``str()`` names it."""


# ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (bot/queue/jobs.py, accept)
# needs SQLite 3.35; Python links the system's library, which may be older.
MIN_SQLITE = (3, 35, 0)


def require_sqlite() -> None:
    """Refuse, in one line, a SQLite library too old for the queue's SQL:
    found at start-up, not as a 503 on every acknowledgement."""
    found = sqlite3.sqlite_version
    try:
        version = tuple(int(part) for part in found.split(".")[:3])
    except ValueError:
        version = (0,)
    if version < MIN_SQLITE:
        needed = ".".join(str(part) for part in MIN_SQLITE)
        raise QueueDbError(
            f"the delivery queue needs SQLite {needed} or newer; this Python links "
            f"SQLite {found} (a newer Python or system, or a PostgreSQL store)"
        )


class QueueDb:
    """Per-thread connections to one SQLite file, created with the schema."""

    def __init__(self, path: Path) -> None:
        require_sqlite()
        self.path = path
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._ready = False
        self.dialect = SqliteDialect(self)
        self.meta = SqlMeta(self.dialect)

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        pid = getattr(self._local, "pid", None)
        if conn is not None and pid == os.getpid():
            return conn
        try:
            if not self._ready:  # the first connection makes the folder; later, a
                # folder that vanished is an error, not a fresh queue
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous_mode()}")
            with self._schema_lock:
                if not self._ready:
                    conn.executescript(SCHEMA)
                    self._ready = True

        except (sqlite3.Error, OSError) as exc:
            raise QueueDbError(f"{self.path}: cannot open the queue ({exc})") from None
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the database's write lock throughout."""
        conn = self._connect()
        self._begin_immediate(conn)
        try:
            yield conn
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise QueueDbError(f"{self.path}: cannot write ({exc})") from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise QueueDbError(f"{self.path}: cannot write ({exc})") from None

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, retrying every half millisecond: SQLite's own
        busy handler sleeps 1, 2, 5, 10, 15... ms between tries, which is
        what an acknowledgement would wait behind a worker's short
        transaction. Statements inside a transaction never wait (WAL)."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        try:
            conn.execute("PRAGMA busy_timeout=0")
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise QueueDbError(f"{self.path}: cannot write ({exc})") from None
                    if time.monotonic() > deadline:
                        raise QueueDbError(f"{self.path}: cannot write ({exc})") from None
                    time.sleep(0.0005)
        except sqlite3.Error as exc:
            raise QueueDbError(f"{self.path}: cannot write ({exc})") from None
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # reads may wait

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot (a read transaction: WAL readers never block)."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")
        except sqlite3.Error as exc:
            raise QueueDbError(f"{self.path}: cannot read ({exc})") from None
        try:
            yield conn
        except sqlite3.Error as exc:
            raise QueueDbError(f"{self.path}: cannot read ({exc})") from None
        finally:
            conn.execute("COMMIT")

    def get_meta(self, key: str) -> str | None:
        return self.meta.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.meta.set_meta(key, value)

    def claim_run(self, key: str, every: float) -> bool:
        """Whether this process should run the periodic ``key`` now (and
        note that it does): one process per period."""
        return self.meta.claim_run(key, every)


class SqliteDialect(Dialect):
    """The queue's SQL on the SQLite file: every write transaction holds the
    file's write lock (``BEGIN IMMEDIATE``), so the per-job and
    per-installation locks are already held; claim() looks for work in a
    read first, so idle workers do not take the write lock."""

    idle_check = True

    def __init__(self, db: QueueDb) -> None:
        super().__init__()
        self.db = db

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.db.write()

    def single(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.db.write()

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.db.read()

    def snapshot(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.db.read()
