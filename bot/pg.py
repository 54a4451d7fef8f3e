"""Connections to PostgreSQL: one small pool per process, errors as StoreError.

Why psycopg 3 and psycopg_pool: the maintained PostgreSQL driver for Python
(binary wheels, server-side parameters, pipeline mode), and its pool replaces
broken connections by itself, so a database that comes back is used again
without a restart. A pool belongs to one process: gunicorn forks workers from
a master that has already opened the store (``--preload``), so the pool is
made again in any process that did not make it, and the master lets its own
go (``release``) before it forks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from model_assigner.bot.store.state import StoreError

URL_SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT = 3  # seconds to reach the server, per attempt
# Seconds a request waits for a pooled connection: a delivery must be
# answered 503 well inside GitHub's 10 s when the database is gone.
POOL_WAIT = 4.0
HEALTH_WAIT = 2.0  # /healthz (readiness probes time out after a second or two)
LOCK_TIMEOUT_MS = 15_000  # a row or issue lock is never waited for longer
STATEMENT_TIMEOUT_MS = 30_000
DEFAULT_POOL_SIZE = 10  # gthread's 4 threads, each may hold an issue lock and a store connection


class _Statements:
    """Statements this process sent (one round trip each): bench/ reads it."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.count += n


STATEMENTS = _Statements()
# Entry rows the store has read (not the counters row): what one decision
# costs beside its round trips (tests, bench/bench_postgresql.py).
ROWS_READ = _Statements()


class CountingConnection(psycopg.Connection[Any]):
    """A connection that counts what it sends (bench/bench_postgresql.py)."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS.add()
        return super().execute(*args, **kwargs)


def is_database_url(value: str | None) -> bool:
    return bool(value) and str(value).strip().lower().startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """The connection string as it may be shown and logged: never its password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable connection string)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


class DatabaseError(StoreError):
    """The database failed a request; ``retryable`` when running the same
    transaction again may succeed (a deadlock the server broke)."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def describe(exc: BaseException) -> str:
    """One line for an operator: what went wrong, without the connection string."""
    if isinstance(exc, PoolTimeout):
        return "database unreachable (no connection within the pool's timeout)"
    if isinstance(exc, errors.LockNotAvailable):
        return "a lock was not granted in time (another replica holds it)"
    if isinstance(exc, psycopg.OperationalError):
        text = str(exc).strip().splitlines()
        first = text[-1] if text else type(exc).__name__
        return f"database unavailable ({first[:200]})"
    return f"database error ({type(exc).__name__}: {str(exc).strip()[:200]})"


class Database:
    """One connection string; a pool per process, opened on first use."""

    def __init__(self, url: str, pool_size: int | None = None) -> None:
        self.url = url
        self.display = redact(url)
        self.pool_size = pool_size or int(
            os.environ.get("MODEL_ASSIGNER_DB_POOL", "") or DEFAULT_POOL_SIZE
        )
        self._pool: ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            f"SET lock_timeout = {LOCK_TIMEOUT_MS}; "
            f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}; "
            "SET idle_in_transaction_session_timeout = 60000"
        )

    def pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                # A pool inherited through fork is another process's: its
                # threads are gone and its sockets are shared; leave it alone.
                self._pool = ConnectionPool(
                    self.url,
                    connection_class=CountingConnection,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT,
                            "application_name": "model-assigner"},
                    configure=self._configure,
                    check=ConnectionPool.check_connection,
                    timeout=POOL_WAIT,
                    reconnect_timeout=0,  # never give up: the database may come back
                    open=False,
                    name="model-assigner",
                )
                self._pool.open(wait=False)
                self._pid = os.getpid()
            return self._pool

    def release(self) -> None:
        """Close this process's connections (the master, before it forks)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close(timeout=2)

    @contextmanager
    def connection(self, wait: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A connection in autocommit mode (the caller opens transactions);
        any database failure becomes a StoreError naming the database."""
        try:
            with self.pool().connection(timeout=wait) as conn:
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            retryable = isinstance(exc, errors.DeadlockDetected | errors.SerializationFailure)
            raise DatabaseError(f"{self.display}: {describe(exc)}", retryable) from None

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """One transaction. Leaving it by an exception rolls it back; a lost
        connection rolls it back on the server (nothing half-written)."""
        with self.connection() as conn:
            conn.execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if read_only else "BEGIN"
            )
            try:
                yield conn
            except BaseException:
                if not conn.closed and not conn.broken:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def ping(self) -> None:
        """Raise StoreError unless the database answers now."""
        try:
            with psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT,
                                 autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise StoreError(f"{self.display}: {describe(exc)}") from None


def lock_key(namespace: int, key: str) -> tuple[int, int]:
    """Two 32-bit numbers for pg_advisory_lock(int, int): a namespace of ours
    and a stable hash of the key (two keys may share one: that only
    serializes them)."""
    import hashlib

    value = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big", signed=True)
    return namespace, value
