"""What differs between the queue's back ends, and nothing else.

The delivery queue (bot/queue/jobs.py, SqlJobQueue) and the rate policy
(bot/queue/ratelimit.py, SqlRateLimiter) are written once, over a
``Dialect``: the SQLite one (bot/queue/db.py) or the PostgreSQL one
(bot/queue/pg.py). A dialect says how SQL is spelled (placeholders, table
names, ``MAX`` or ``GREATEST``, row locks) and how a transaction and a lock
are taken:
- SQLite: every write transaction is ``BEGIN IMMEDIATE``, the file's one
  write lock, so the per-job and per-installation locks are no-ops;
- PostgreSQL: a write transaction is a plain ``BEGIN``; a job's rows are
  changed behind the advisory lock on its key, an installation's write slots
  behind the one on the installation, and ``claim`` skips rows another
  replica has locked.
Why one implementation: the rules (coalescing, leases, retries, dead
letters, pacing) were written twice and had begun to drift.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

# The tables, by the names the shared SQL uses ({jobs}, {deliveries}...).
TABLES = ("deliveries", "jobs", "outcomes", "counters", "meta", "rate_events", "labels",
          "rate_blocks")


class Dialect:
    """One back end's SQL spelling and transaction mechanics. Statements are
    written with ``?`` placeholders and ``{table}`` names; ``sql`` turns them
    into this back end's."""

    placeholder = "?"
    table_prefix = ""
    table_names: ClassVar[Mapping[str, str]] = {}
    greatest = "MAX"
    # Appended to a SELECT whose rows the transaction then changes.
    for_update = ""
    # How claim() ends its candidates' SELECT (how many, and row locks).
    claim_tail = " LIMIT 64"
    # Whether claim() looks for work in a read first (no write lock while idle).
    idle_check = False

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def sql(self, text: str) -> str:
        """``text`` in this back end's spelling (cached: the same few
        statements run all the time)."""
        found = self._cache.get(text)
        if found is None:
            names = {t: self.table_names.get(t, self.table_prefix + t) for t in TABLES}
            found = text.format(greatest=self.greatest, for_update=self.for_update,
                                claim_tail=self.claim_tail, **names)
            if self.placeholder != "?":
                found = found.replace("?", self.placeholder)
            self._cache[text] = found
        return found

    def execute(self, conn: Any, text: str, args: Sequence[Any] = ()) -> Any:
        return conn.execute(self.sql(text), tuple(args))

    # -- transactions --------------------------------------------------------

    def write(self) -> AbstractContextManager[Any]:
        """One write transaction."""
        raise NotImplementedError

    def single(self) -> AbstractContextManager[Any]:
        """A connection for one self-contained write statement."""
        raise NotImplementedError

    def read(self) -> AbstractContextManager[Any]:
        """A connection for reads."""
        raise NotImplementedError

    def snapshot(self) -> AbstractContextManager[Any]:
        """Several reads that must agree with each other."""
        raise NotImplementedError

    # -- locks inside a write transaction --------------------------------------

    def lock_job(self, conn: Any, key: str) -> None:
        """Hold the job ``key`` until the transaction ends (SQLite: already held)."""

    def lock_installation(self, conn: Any, installation: int) -> None:
        """Hold the installation's write slots until the transaction ends."""

    def lock_meta(self, conn: Any, key: str) -> None:
        """Hold the periodic run ``key`` until the transaction ends."""

    def execute_many(self, conn: Any, text: str, rows: Iterable[Sequence[Any]]) -> None:
        conn.executemany(self.sql(text), [tuple(r) for r in rows])

    def add_counter(self, conn: Any, name: str, amount: float) -> None:
        self.execute(
            conn,
            "INSERT INTO {counters} (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = {counters}.value + excluded.value",
            (name, amount),
        )


class SqlMeta:
    """Small values shared by every process and replica (the App's login,
    the catch-up's last run): jobs.QueueMeta over a dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def get_meta(self, key: str) -> str | None:
        with self.dialect.read() as conn:
            row = self.dialect.execute(conn, "SELECT value FROM {meta} WHERE key = ?",
                                       (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, conn: Any, key: str, value: str) -> None:
        self.dialect.execute(
            conn,
            "INSERT INTO {meta} (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def set_meta(self, key: str, value: str) -> None:
        with self.dialect.single() as conn:
            self._set(conn, key, value)

    def claim_run(self, key: str, every: float) -> bool:
        """Whether this process should run the periodic ``key`` now (and note
        that it does): one process (one replica) per period."""
        now = time.time()
        with self.dialect.write() as conn:
            self.dialect.lock_meta(conn, key)
            row = self.dialect.execute(conn, "SELECT value FROM {meta} WHERE key = ?",
                                       (key,)).fetchone()
            if row is not None and now - float(row[0]) < every * 0.9:
                return False
            self._set(conn, key, repr(now))
        return True

