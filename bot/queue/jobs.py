"""The durable delivery queue: one job per issue, leased by workers.

Why a table of our own rather than huey or persist-queue (both were
considered): huey's storages delete a task when a worker takes it, so a
worker killed mid-task loses it (at most once; we need at least once, made
exactly once by the handler's idempotent write-back); persist-queue's
acknowledgement state is per process, so two gunicorn workers can take the
same item and a restart "resumes" items another live process is working on.
Neither coalesces the deliveries of one issue. What we need is one row per
issue with a lease, which is a single atomic UPDATE in SQLite (and
``SELECT ... FOR UPDATE SKIP LOCKED`` in PostgreSQL, issue 11).

The semantics, whatever process dies when:
- ``accept`` records the delivery id and merges the delivery into its issue's
  job in one transaction: an id accepted once is never accepted again, and a
  delivery acknowledged is on disk.
- Deliveries of one issue coalesce: the job keeps the newest payload that
  assigns and the newest that closes (newest by the issue's ``updated_at``,
  then by arrival), so a burst is decided once, from the latest state.
- ``claim`` leases a ready job for ``lease`` seconds. A worker that dies
  leaves its lease: it is taken again when it runs out, or at once when the
  owner was a process of this machine that no longer exists.
- ``finish`` removes the job unless a delivery arrived meanwhile (its version
  moved): then it is ready again with what is new.
- ``retry`` counts an attempt and waits; after ``max_attempts`` the job is
  dead, with its reason, until an operator retries or drops it.
- ``defer`` (a rate limit) waits without counting an attempt.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.dialect import Dialect

# GitHub redelivers for three days; ids and outcomes are kept a little longer.
MEMORY_SECONDS = 4 * 24 * 3600
DEFAULT_LEASE = 300.0
DEFAULT_MAX_ATTEMPTS = 8
# The coalesced delivery ids a waiting job keeps (their outcome is written
# when it finishes). Each accept rewrites the job's row: an issue sent
# thousands of events while its job waits (a rate limit holds it for an hour)
# must not make that row, and every accept, grow with them. Past this many,
# the oldest get their outcome at once: coalesced into the newest delivery.
MAX_COALESCED = 100
CLOSE_ACTIONS = frozenset({"closed", "deleted", "transferred"})
# The usage section of the bot's comment to write (bot/usage_writeback.py):
# it renders the store's usage when it runs, so one of them is enough.
USAGE_COMMENT = "usage_comment"
HOST = socket.gethostname()


@dataclass(frozen=True)
class Entry:
    """One delivery kept in a job."""

    seq: int
    delivery: str
    event: str
    payload: dict[str, Any]

    @property
    def kind(self) -> str:
        """What the entry does: coalescing keeps the newest of each kind."""
        if self.event == USAGE_COMMENT:
            return "usage"
        return "close" if self.payload.get("action") in CLOSE_ACTIONS else "assign"

    @property
    def updated_at(self) -> str:
        issue = self.payload.get("issue")
        value = issue.get("updated_at") if isinstance(issue, Mapping) else None
        return value if isinstance(value, str) else ""

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "delivery": self.delivery, "event": self.event,
                "payload": self.payload}

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Entry:
        return cls(int(data["seq"]), str(data["delivery"]), str(data["event"]),
                   dict(data["payload"]))


@dataclass(frozen=True)
class Job:
    key: str
    installation: int | None
    entries: list[Entry]
    # Deliveries merged into the job whose entry a newer one replaced: they
    # get the job's outcome.
    coalesced: list[tuple[str, int]]
    version: int
    attempts: int
    created_at: float

    def ordered(self) -> list[Entry]:
        """The entries to handle, oldest state first (the newest decides
        last); a usage comment's update after them (it edits the comment a
        decision may write first)."""
        return sorted(self.entries, key=lambda e: (e.kind == "usage", e.updated_at, e.seq))


@dataclass(frozen=True)
class JobInfo:
    key: str
    state: str
    installation: int | None
    deliveries: int
    attempts: int
    not_before: float
    created_at: float
    last_error: str | None


@dataclass(frozen=True)
class QueueStats:
    waiting: int
    running: int
    dead: int
    oldest_age: float
    counters: dict[str, float] = field(default_factory=dict)


class QueueMeta(Protocol):
    """Small values shared by every process (the App's login, the catch-up's turn)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def claim_run(self, key: str, every: float) -> bool: ...


class JobQueue(Protocol):
    """What the webhook, the workers and the CLI need from a queue: the
    SQLite one below, or the PostgreSQL one (bot/queue/pg.py)."""

    @property
    def db(self) -> QueueMeta: ...

    def outcome(self, delivery: str) -> tuple[int, dict[str, Any]] | None: ...

    def jobs(self, state: str | None = None) -> list[JobInfo]: ...

    def revive(self, key: str) -> bool: ...

    def drop(self, key: str) -> bool: ...

    def stats(self) -> QueueStats: ...

    def pending_keys(self) -> set[str]: ...

    def add_counter(self, name: str, amount: float) -> None: ...

    def seen(self, delivery: str) -> bool: ...

    def accept(self, delivery: str, event: str, payload: dict[str, Any], key: str,
               installation: int | None) -> bool: ...

    def claim(self, owner: str, lease: float = DEFAULT_LEASE) -> Job | None: ...

    def finish(self, job: Job, outcomes: dict[str, tuple[int, dict[str, Any]]],
               final: tuple[int, dict[str, Any]]) -> None: ...

    def retry(self, job: Job, error: str, delay: float, max_attempts: int) -> bool: ...

    def defer(self, job: Job, until: float, reason: str) -> None: ...


def owner_id(thread: str) -> str:
    return f"{HOST}:{os.getpid()}:{thread}"


def _owner_gone(owner: str | None) -> bool:
    """Whether a lease's owner was a process of this machine that is gone."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def unfinished(doc: dict[str, Any], job: Job, done_seq: int) -> dict[str, Any] | None:
    """What of a job's stored document is left once ``job`` is finished: the
    deliveries that arrived after the ones it handled (by sequence number),
    or None when nothing is. Shared by both back ends, so the coalescing rule
    is written once."""
    handled = {d for d, _ in job.coalesced}
    doc["entries"] = [e for e in doc["entries"] if int(e["seq"]) > done_seq]
    doc["coalesced"] = [
        [d, s] for d, s in doc["coalesced"] if d not in handled and int(s) > done_seq
    ]
    return doc if doc["entries"] else None


def _merge(entries: list[Entry], new: Entry) -> tuple[list[Entry], list[Entry]]:
    """Keep the newest entry of each kind; returns (kept, replaced)."""
    kept: list[Entry] = []
    replaced: list[Entry] = []
    same = [e for e in entries if e.kind == new.kind]
    others = [e for e in entries if e.kind != new.kind]
    candidates = [*same, new]
    newest = max(candidates, key=lambda e: (e.updated_at, e.seq))
    replaced = [e for e in candidates if e is not newest]
    kept = [*others, newest]
    return kept, replaced


def _job(key: str, inst: int | None, entries: Any, version: int, attempts: int,
         created: float) -> Job:
    doc = entries if isinstance(entries, dict) else json.loads(entries)
    return Job(
        key=key,
        installation=inst,
        entries=[Entry.of(e) for e in doc["entries"]],
        coalesced=[(str(d), int(s)) for d, s in doc["coalesced"]],
        version=int(version),
        attempts=int(attempts),
        created_at=float(created),
    )


class SqlJobQueue:
    """The queue's rules, once, over a back end's dialect (bot/queue/dialect.py):
    SqliteJobQueue below, PgJobQueue in bot/queue/pg.py."""

    def __init__(self, dialect: Dialect, clock: Callable[[], float] = time.time) -> None:
        self.dialect = dialect
        self.clock = clock

    def _x(self, conn: Any, text: str, args: Sequence[Any] = ()) -> Any:
        return self.dialect.execute(conn, text, args)

    # -- the webhook -------------------------------------------------------

    def seen(self, delivery: str) -> bool:
        with self.dialect.read() as conn:
            row = self._x(conn, "SELECT 1 FROM {deliveries} WHERE id = ?", (delivery,)).fetchone()
        return row is not None

    def accept(self, delivery: str, event: str, payload: dict[str, Any], key: str,
               installation: int | None) -> bool:
        """Record the delivery and merge it into its issue's job, in one
        transaction; False when the id was accepted before (nothing changes)."""
        now = self.clock()
        with self.dialect.write() as conn:
            # The job's lock before the delivery's sequence number is drawn:
            # numbers are then drawn in the order the job's deliveries merge.
            # Drawn first, a delivery could take 10, wait for the lock while
            # one numbered 11 merged and a worker took it, and be dropped by
            # finish() as older than what the worker handled (seen with
            # PostgreSQL in tests/e2e/test_replicas.py: acknowledged, never
            # decided). SQLite's write lock is held already.
            self.dialect.lock_job(conn, key)
            rows = self._x(
                conn,
                "INSERT INTO {deliveries} (id, accepted_at, job) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING RETURNING seq",
                (delivery, now, key),
            ).fetchall()
            if not rows:
                return False
            seq = int(rows[0][0])
            entry = Entry(seq, delivery, event, payload)
            found = self._x(
                conn, "SELECT entries, state FROM {jobs} WHERE key = ?{for_update}", (key,)
            ).fetchone()
            if found is None:
                doc = {"entries": [entry.as_json()], "coalesced": []}
                self._x(
                    conn,
                    "INSERT INTO {jobs} (key, installation, entries, state, not_before, "
                    "created_at, updated_at) VALUES (?, ?, ?, 'waiting', ?, ?, ?)",
                    (key, installation, json.dumps(doc), now, now, now),
                )
            else:
                doc = json.loads(found[0])
                kept, replaced = _merge([Entry.of(e) for e in doc["entries"]], entry)
                doc["entries"] = [e.as_json() for e in kept]
                doc["coalesced"] = [*doc["coalesced"], *([e.delivery, e.seq] for e in replaced)]
                if len(doc["coalesced"]) > MAX_COALESCED:
                    overflow = doc["coalesced"][:-MAX_COALESCED]
                    doc["coalesced"] = doc["coalesced"][-MAX_COALESCED:]
                    body = json.dumps({"status": "coalesced", "coalesced": True,
                                       "into": delivery})
                    self.dialect.execute_many(
                        conn,
                        "INSERT INTO {outcomes} (delivery, job, status, body, finished_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (delivery) DO NOTHING",
                        [(d, key, 202, body, now) for d, _ in overflow],
                    )
                if found[1] == "dead":  # a new delivery revives it, with fresh attempts
                    self._x(
                        conn,
                        "UPDATE {jobs} SET entries = ?, state = 'waiting', attempts = 0, "
                        "not_before = ?, version = version + 1, updated_at = ?, "
                        "installation = COALESCE(?, installation) WHERE key = ?",
                        (json.dumps(doc), now, now, installation, key),
                    )
                else:
                    self._x(
                        conn,
                        "UPDATE {jobs} SET entries = ?, version = version + 1, updated_at = ?, "
                        "installation = COALESCE(?, installation) WHERE key = ?",
                        (json.dumps(doc), now, installation, key),
                    )
            if seq % 500 == 0:
                cutoff = now - MEMORY_SECONDS
                self._x(conn, "DELETE FROM {deliveries} WHERE accepted_at < ?", (cutoff,))
                self._x(conn, "DELETE FROM {outcomes} WHERE finished_at < ?", (cutoff,))
        return True

    # -- workers -----------------------------------------------------------

    def claim(self, owner: str, lease: float = DEFAULT_LEASE) -> Job | None:
        """Lease the job that has waited longest among those ready (a waiting
        one due, or a running one whose lease ran out or whose process on
        this machine is gone), skipping installations a rate limit holds
        (and, on PostgreSQL, jobs another worker is claiming right now)."""
        now = self.clock()
        if self.dialect.idle_check and not self._anything_to_claim(now):
            return None  # a read: no write lock while idle
        with self.dialect.write() as conn:
            rows = self._x(
                conn,
                "SELECT key, installation, entries, version, attempts, created_at, state, "
                "owner, lease_until FROM {jobs} "
                "WHERE ((state = 'waiting' AND not_before <= ?) OR state = 'running') "
                "AND (installation IS NULL OR installation NOT IN "
                "  (SELECT installation FROM {rate_blocks} WHERE until > ?)) "
                "ORDER BY not_before, created_at{claim_tail}",
                (now, now),
            ).fetchall()
            for key, inst, entries, version, attempts, created, state, held_by, until in rows:
                if state == "running" and (until or 0) > now and not _owner_gone(held_by):
                    continue
                self._x(
                    conn,
                    "UPDATE {jobs} SET state = 'running', owner = ?, lease_until = ?, "
                    "attempts = attempts + 1 WHERE key = ?",
                    (owner, now + lease, key),
                )
                return _job(key, inst, entries, version, int(attempts) + 1, created)
        return None

    def _anything_to_claim(self, now: float) -> bool:
        with self.dialect.read() as conn:
            rows = self._x(
                conn,
                "SELECT state, owner, lease_until FROM {jobs} WHERE (state = 'waiting' AND "
                "not_before <= ?) OR state = 'running' LIMIT 64", (now,),
            ).fetchall()
        return any(
            state == "waiting" or (until or 0) <= now or _owner_gone(owner)
            for state, owner, until in rows
        )

    def finish(self, job: Job, outcomes: dict[str, tuple[int, dict[str, Any]]],
               final: tuple[int, dict[str, Any]]) -> None:
        """The job's entries are handled: record each delivery's outcome (the
        coalesced ones get ``final``), and remove the job, or keep what
        arrived meanwhile."""
        now = self.clock()
        done_seq = max((e.seq for e in job.entries), default=0)
        with self.dialect.write() as conn:
            self.dialect.lock_job(conn, job.key)
            results = dict(outcomes)
            for delivery, _seq in job.coalesced:
                results.setdefault(delivery, (final[0], {**final[1], "coalesced": True}))
            self.dialect.execute_many(
                conn,
                "INSERT INTO {outcomes} (delivery, job, status, body, finished_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (delivery) DO UPDATE SET "
                "job = excluded.job, status = excluded.status, body = excluded.body, "
                "finished_at = excluded.finished_at",
                [(d, job.key, status, json.dumps(body), now)
                 for d, (status, body) in results.items()],
            )
            row = self._x(
                conn, "SELECT version, entries FROM {jobs} WHERE key = ?{for_update}", (job.key,)
            ).fetchone()
            if row is None:
                return
            doc = None if int(row[0]) == job.version else unfinished(
                json.loads(row[1]), job, done_seq)
            if doc is None:
                self._x(conn, "DELETE FROM {jobs} WHERE key = ?", (job.key,))
                return
            self._x(
                conn,
                "UPDATE {jobs} SET entries = ?, state = 'waiting', attempts = 0, owner = NULL, "
                "lease_until = NULL, not_before = ?, updated_at = ? WHERE key = ?",
                (json.dumps(doc), now, now, job.key),
            )

    def retry(self, job: Job, error: str, delay: float, max_attempts: int) -> bool:
        """Count a failed attempt; True when the job is now dead."""
        now = self.clock()
        dead = job.attempts >= max_attempts
        with self.dialect.write() as conn:
            self.dialect.lock_job(conn, job.key)
            self._x(
                conn,
                "UPDATE {jobs} SET state = ?, not_before = ?, owner = NULL, lease_until = NULL, "
                "last_error = ?, updated_at = ? WHERE key = ?",
                ("dead" if dead else "waiting", now + delay, error[:500], now, job.key),
            )
            self.dialect.add_counter(conn, "retries", 1)
            if dead:
                self.dialect.add_counter(conn, "dead_letters", 1)
        return dead

    def defer(self, job: Job, until: float, reason: str) -> None:
        """Wait for a rate limit: the attempt does not count."""
        now = self.clock()
        with self.dialect.write() as conn:
            self.dialect.lock_job(conn, job.key)
            self._x(
                conn,
                "UPDATE {jobs} SET state = 'waiting', not_before = ?, owner = NULL, "
                "lease_until = NULL, attempts = {greatest}(attempts - 1, 0), last_error = ?, "
                "updated_at = ? WHERE key = ?",
                (until, reason[:500], now, job.key),
            )

    # -- operators and tests ----------------------------------------------

    def outcome(self, delivery: str) -> tuple[int, dict[str, Any]] | None:
        with self.dialect.read() as conn:
            row = self._x(
                conn, "SELECT status, body FROM {outcomes} WHERE delivery = ?", (delivery,)
            ).fetchone()
        return None if row is None else (int(row[0]), json.loads(row[1]))

    def jobs(self, state: str | None = None) -> list[JobInfo]:
        query = ("SELECT key, state, installation, entries, attempts, not_before, created_at, "
                 "last_error FROM {jobs}")
        args: tuple[Any, ...] = ()
        if state is not None:
            query += " WHERE state = ?"
            args = (state,)
        with self.dialect.read() as conn:
            rows = self._x(conn, query + " ORDER BY created_at", args).fetchall()
        found = []
        for key, st, inst, entries, attempts, not_before, created, error in rows:
            doc = json.loads(entries)
            found.append(JobInfo(key, st, inst, len(doc["entries"]) + len(doc["coalesced"]),
                                 int(attempts), float(not_before), float(created), error))
        return found

    def revive(self, key: str) -> bool:
        """A dead job (or a waiting one): ready now, with fresh attempts."""
        now = self.clock()
        with self.dialect.write() as conn:
            self.dialect.lock_job(conn, key)
            cursor = self._x(
                conn,
                "UPDATE {jobs} SET state = 'waiting', attempts = 0, not_before = ?, "
                "updated_at = ? WHERE key = ? AND state != 'running'",
                (now, now, key),
            )
            return int(cursor.rowcount) > 0

    def drop(self, key: str) -> bool:
        with self.dialect.write() as conn:
            self.dialect.lock_job(conn, key)
            cursor = self._x(conn, "DELETE FROM {jobs} WHERE key = ? AND state != 'running'",
                             (key,))
            return int(cursor.rowcount) > 0

    def stats(self) -> QueueStats:
        now = self.clock()
        with self.dialect.snapshot() as conn:
            counts = dict(self._x(conn, "SELECT state, COUNT(*) FROM {jobs} GROUP BY state")
                          .fetchall())
            row = self._x(conn, "SELECT MIN(created_at) FROM {jobs} WHERE state != 'dead'"
                          ).fetchone()
            oldest = row[0] if row else None
            counters = dict(self._x(conn, "SELECT name, value FROM {counters}").fetchall())
        return QueueStats(
            waiting=int(counts.get("waiting", 0)),
            running=int(counts.get("running", 0)),
            dead=int(counts.get("dead", 0)),
            oldest_age=0.0 if oldest is None else max(0.0, now - float(oldest)),
            counters={str(k): float(v) for k, v in counters.items()},
        )

    def pending_keys(self) -> set[str]:
        with self.dialect.read() as conn:
            return {str(r[0]) for r in self._x(conn, "SELECT key FROM {jobs}").fetchall()}

    def add_counter(self, name: str, amount: float) -> None:
        with self.dialect.single() as conn:
            self.dialect.add_counter(conn, name, amount)


class SqliteJobQueue(SqlJobQueue):
    """The queue in the SQLite file next to the store (bot/queue/db.py)."""

    def __init__(self, db: QueueDb | Path, clock: Callable[[], float] = time.time) -> None:
        self.db = db if isinstance(db, QueueDb) else QueueDb(db)
        super().__init__(self.db.dialect, clock)
