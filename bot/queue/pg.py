"""The delivery queue and the GitHub rate policy on PostgreSQL: the same
semantics as the SQLite ones (bot/queue/jobs.py, bot/queue/ratelimit.py), shared by
every replica on the database.

What SQLite gets from its single write lock, PostgreSQL gets from row and
advisory locks, so that replicas work in parallel:
- a job's row is changed only behind the advisory lock on its key (accept,
  finish, retry, defer, revive, drop), so a delivery merged into a job is
  never lost to a worker finishing it at the same moment;
- ``claim`` takes the oldest ready job with ``SELECT ... FOR UPDATE SKIP
  LOCKED``: two workers never lease the same job, and never wait for each
  other's candidates;
- a write slot of an installation is taken behind the advisory lock on the
  installation: no two replicas take the same slot, the per-minute and
  per-hour counts hold across all of them.
Every transaction is one of the database's: a replica killed in the middle
leaves nothing half-done, and a lease it held runs out (or, on the same
machine, is taken back at once, as with SQLite).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from model_assigner.bot.pg import Database, lock_key
from model_assigner.bot.queue.dialect import Dialect, SqlMeta
from model_assigner.bot.queue.jobs import SqlJobQueue
from model_assigner.bot.queue.ratelimit import RatePolicy, SqlRateLimiter

JOB_KEYS = 0x6D65  # advisory lock namespace: a job's key
INSTALLATIONS = 0x6D66  # advisory lock namespace: an installation's write slots
META = 0x6D67  # advisory lock namespace: a periodic run's turn


class PgDialect(Dialect):
    """The queue's SQL on PostgreSQL: ``ma_`` tables, ``%s`` placeholders,
    row locks where SQLite has its file's write lock, and advisory locks for
    a job and an installation."""

    placeholder = "%s"
    table_prefix = "ma_"
    table_names: ClassVar[dict[str, str]] = {"deliveries": "ma_queue_deliveries"}
    greatest = "GREATEST"
    for_update = " FOR UPDATE"
    claim_tail = " LIMIT 16 FOR UPDATE SKIP LOCKED"

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.database = db

    def write(self) -> AbstractContextManager[Any]:
        return self.database.transaction()

    def single(self) -> AbstractContextManager[Any]:
        return self.database.connection()  # autocommit: the statement is its transaction

    def read(self) -> AbstractContextManager[Any]:
        return self.database.connection()

    def snapshot(self) -> AbstractContextManager[Any]:
        return self.database.transaction(read_only=True)

    def lock_job(self, conn: Any, key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key(JOB_KEYS, key))

    def lock_installation(self, conn: Any, installation: int) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                     (INSTALLATIONS, installation & 0x7FFFFFFF))

    def lock_meta(self, conn: Any, key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key(META, key))

    def execute_many(self, conn: Any, text: str, rows: Iterable[Sequence[Any]]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(self.sql(text), [tuple(r) for r in rows])


class PgQueueMeta(SqlMeta):
    """Small shared values (the App's login, the catch-up's last run)."""

    def __init__(self, db: Database) -> None:
        super().__init__(PgDialect(db))
        self.database = db


class PgJobQueue(SqlJobQueue):
    """The delivery queue in PostgreSQL, shared by every replica."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = db
        self.db = PgQueueMeta(db)
        super().__init__(self.db.dialect, clock)


class PgRateLimiter(SqlRateLimiter):
    """The rate policy (bot/queue/ratelimit.py), its state in the database."""

    def __init__(self, db: Database, policy: RatePolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.database = db
        super().__init__(PgDialect(db), policy, clock, sleep)
