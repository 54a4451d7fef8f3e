"""A real PostgreSQL server for the tests: one throwaway database per test
session (a unique name, dropped at the end), its tables emptied before each
test that asks for it.

The server is MODEL_ASSIGNER_TEST_DATABASE_URL's (default: the role .ci/run
creates on 127.0.0.1:5432). Without one, the tests that need it are skipped
with the reason, unless CI is set: then they fail, never skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

DEFAULT_ADMIN_URL = (
    "postgresql://model_assigner_test:model_assigner_test@127.0.0.1:5432/postgres"
)
TABLES = (
    "ma_ledger", "ma_reservations", "ma_records", "ma_dependencies", "ma_usage",
    "ma_seen", "ma_deferred", "ma_deliveries", "ma_reconciled", "ma_queue_deliveries",
    "ma_jobs", "ma_outcomes",
    "ma_counters", "ma_meta", "ma_rate_events", "ma_rate_blocks", "ma_labels",
)


def admin_url() -> str:
    return os.environ.get("MODEL_ASSIGNER_TEST_DATABASE_URL", "") or DEFAULT_ADMIN_URL


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"no PostgreSQL server for the tests ({reason}); start one, or set "
                "MODEL_ASSIGNER_TEST_DATABASE_URL")


STALE_TRANSACTION_SECONDS = 20


def session_database() -> Iterator[str]:
    """Create a database of our own; yield its URL; drop it."""
    name = f"ma_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(admin_url(), autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        _unavailable(str(exc).strip().splitlines()[0] if str(exc).strip() else "unreachable")
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
        # A session left in a transaction (a server killed behind the cutting
        # proxy keeps its half of the socket open) would hold its locks, and
        # the next test's TRUNCATE would wait forever: the database ends such
        # sessions itself.
        admin.execute(
            f'ALTER DATABASE "{name}" SET idle_in_transaction_session_timeout = '
            f"'{STALE_TRANSACTION_SECONDS}s'".encode()
        )
        parts = conninfo_to_dict(admin_url())
        # A URL, as operators write it.
        url = (f"postgresql://{parts.get('user', '')}:{parts.get('password', '')}@"
               f"{parts.get('host', '127.0.0.1')}:{parts.get('port', 5432)}/{name}")
        try:
            yield url
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def empty_tables(url: str) -> None:
    """Every table of ours emptied (the schema stays): a fresh store."""
    with psycopg.connect(url, autocommit=True) as conn:
        present = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        names = [row[0] for row in present if row[0] in TABLES]
        if names:
            # Each test starts on a fresh store, so any other session on this
            # database is an earlier test's (a server stopped behind the
            # cutting proxy, a pool not yet closed): ended, so that none of
            # them holds a lock the TRUNCATE would wait for. The App's pools
            # check a connection before lending it and replace an ended one.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            # Never wait forever: longer than the database takes to end a
            # stale session (above), short enough to fail a run, not hang it.
            conn.execute(f"SET lock_timeout = '{3 * STALE_TRANSACTION_SECONDS}s'".encode())
            conn.execute(f"TRUNCATE {', '.join(names)}".encode())


def _loopback_server(url: str) -> tuple[str, int]:
    """The (host, port) of the test server named by ``url``: loopback only,
    the tests never reach another machine."""
    parts = conninfo_to_dict(url)
    host = str(parts.get("host") or "localhost")
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"the test PostgreSQL server must be on 127.0.0.1/localhost, not {host}")
    return ("127.0.0.1" if host == "localhost" else host), int(parts.get("port") or 5432)


class CuttableProxy:
    """A TCP forwarder on 127.0.0.1 to the test server: ``cut()`` drops every
    connection and refuses new ones (the database is down, as far as the App
    can tell), ``restore()`` listens again on the same port. It forwards to
    the server the tests use (``admin_url()``), which must be on loopback."""

    def __init__(self) -> None:
        import socket
        import threading

        self._socket = socket
        self._threading = threading
        self.target = _loopback_server(admin_url())
        self.port = 0
        self._listener: Any = None
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self.restore()

    def url(self, database_url: str) -> str:
        parts = conninfo_to_dict(database_url)
        return (f"postgresql://{parts.get('user', '')}:{parts.get('password', '')}@"
                f"127.0.0.1:{self.port}/{parts['dbname']}")

    def restore(self) -> None:
        sock = self._socket.socket(self._socket.AF_INET, self._socket.SOCK_STREAM)
        sock.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, listener: Any) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if listener is not self._listener or listener.fileno() < 0:
                client.close()
                return
            try:
                upstream = self._socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        import contextlib

        with contextlib.suppress(OSError):  # wakes the accepting thread (Linux)
            self._listener.shutdown(self._socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(self._socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
