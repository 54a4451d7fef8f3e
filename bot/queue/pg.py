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

import json
import time
from collections.abc import Callable
from typing import Any

from model_assigner.bot.github.gateway import GitHubRateLimited
from model_assigner.bot.pg import Database, lock_key
from model_assigner.bot.queue.jobs import (
    DEFAULT_LEASE,
    MEMORY_SECONDS,
    Entry,
    Job,
    JobInfo,
    QueueStats,
    _merge,
    _owner_gone,
    unfinished,
)
from model_assigner.bot.queue.ratelimit import (
    LABEL_MEMORY_SECONDS,
    RatePolicy,
    _next_slot,
    label_key,
)

JOB_KEYS = 0x6D65  # advisory lock namespace: a job's key
INSTALLATIONS = 0x6D66  # advisory lock namespace: an installation's write slots
META = 0x6D67  # advisory lock namespace: a periodic run's turn


class PgQueueMeta:
    """Small shared values (the App's login, the catch-up's last run)."""

    def __init__(self, db: Database) -> None:
        self.database = db

    def get_meta(self, key: str) -> str | None:
        with self.database.connection() as conn:
            row = conn.execute("SELECT value FROM ma_meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO ma_meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def claim_run(self, key: str, every: float) -> bool:
        """Whether this process should run the periodic ``key`` now (and note
        that it does): one replica per period."""
        now = time.time()
        with self.database.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key(META, key))
            row = conn.execute("SELECT value FROM ma_meta WHERE key = %s", (key,)).fetchone()
            if row is not None and now - float(row[0]) < every * 0.9:
                return False
            conn.execute(
                "INSERT INTO ma_meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, repr(now)),
            )
        return True


def _add_counter(conn: Any, name: str, amount: float) -> None:
    conn.execute(
        "INSERT INTO ma_counters (name, value) VALUES (%s, %s) "
        "ON CONFLICT (name) DO UPDATE SET value = ma_counters.value + excluded.value",
        (name, amount),
    )


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


class PgJobQueue:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = db
        self.db = PgQueueMeta(db)
        self.clock = clock

    def _lock_job(self, conn: Any, key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key(JOB_KEYS, key))

    # -- the webhook -------------------------------------------------------

    def seen(self, delivery: str) -> bool:
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM ma_queue_deliveries WHERE id = %s", (delivery,)
            ).fetchone()
        return row is not None

    def accept(self, delivery: str, event: str, payload: dict[str, Any], key: str,
               installation: int | None) -> bool:
        """Record the delivery and merge it into its issue's job, in one
        transaction; False when the id was accepted before."""
        now = self.clock()
        with self.database.transaction() as conn:
            # The job's lock before the delivery's sequence number is drawn:
            # numbers are then drawn in the order the job's deliveries merge.
            # Drawn first, a delivery could take 10, wait for the lock while
            # one numbered 11 merged and a worker took it, and be dropped by
            # finish() as older than what the worker handled (seen in
            # tests/e2e/test_replicas.py: acknowledged, never decided).
            self._lock_job(conn, key)
            row = conn.execute(
                "INSERT INTO ma_queue_deliveries (id, accepted_at, job) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING RETURNING seq",
                (delivery, now, key),
            ).fetchone()
            if row is None:
                return False
            seq = int(row[0])
            entry = Entry(seq, delivery, event, payload)
            found = conn.execute(
                "SELECT entries, state FROM ma_jobs WHERE key = %s FOR UPDATE", (key,)
            ).fetchone()
            if found is None:
                doc = {"entries": [entry.as_json()], "coalesced": []}
                conn.execute(
                    "INSERT INTO ma_jobs (key, installation, entries, state, not_before, "
                    "created_at, updated_at) VALUES (%s, %s, %s, 'waiting', %s, %s, %s)",
                    (key, installation, json.dumps(doc), now, now, now),
                )
            else:
                doc = json.loads(found[0])
                kept, replaced = _merge([Entry.of(e) for e in doc["entries"]], entry)
                doc["entries"] = [e.as_json() for e in kept]
                doc["coalesced"] = [*doc["coalesced"], *([e.delivery, e.seq] for e in replaced)]
                if found[1] == "dead":  # a new delivery revives it, with fresh attempts
                    conn.execute(
                        "UPDATE ma_jobs SET entries = %s, state = 'waiting', attempts = 0, "
                        "not_before = %s, version = version + 1, updated_at = %s, "
                        "installation = COALESCE(%s, installation) WHERE key = %s",
                        (json.dumps(doc), now, now, installation, key),
                    )
                else:
                    conn.execute(
                        "UPDATE ma_jobs SET entries = %s, version = version + 1, "
                        "updated_at = %s, installation = COALESCE(%s, installation) "
                        "WHERE key = %s",
                        (json.dumps(doc), now, installation, key),
                    )
            if seq % 500 == 0:
                cutoff = now - MEMORY_SECONDS
                conn.execute("DELETE FROM ma_queue_deliveries WHERE accepted_at < %s", (cutoff,))
                conn.execute("DELETE FROM ma_outcomes WHERE finished_at < %s", (cutoff,))
        return True

    # -- workers -----------------------------------------------------------

    def claim(self, owner: str, lease: float = DEFAULT_LEASE) -> Job | None:
        """Lease the job that has waited longest among those ready (a waiting
        one due, or a running one whose lease ran out or whose process on
        this machine is gone), skipping installations a rate limit holds and
        jobs another worker is claiming right now."""
        now = self.clock()
        with self.database.transaction() as conn:
            rows = conn.execute(
                "SELECT key, installation, entries, version, attempts, created_at, state, "
                "owner, lease_until FROM ma_jobs "
                "WHERE ((state = 'waiting' AND not_before <= %(now)s) OR state = 'running') "
                "AND (installation IS NULL OR installation NOT IN "
                "  (SELECT installation FROM ma_rate_blocks WHERE until > %(now)s)) "
                "ORDER BY not_before, created_at LIMIT 16 FOR UPDATE SKIP LOCKED",
                {"now": now},
            ).fetchall()
            for key, inst, entries, version, attempts, created, state, held_by, until in rows:
                if state == "running" and (until or 0) > now and not _owner_gone(held_by):
                    continue
                conn.execute(
                    "UPDATE ma_jobs SET state = 'running', owner = %s, lease_until = %s, "
                    "attempts = attempts + 1 WHERE key = %s",
                    (owner, now + lease, key),
                )
                return _job(key, inst, entries, version, int(attempts) + 1, created)
        return None

    def finish(self, job: Job, outcomes: dict[str, tuple[int, dict[str, Any]]],
               final: tuple[int, dict[str, Any]]) -> None:
        now = self.clock()
        done_seq = max((e.seq for e in job.entries), default=0)
        with self.database.transaction() as conn:
            self._lock_job(conn, job.key)
            results = dict(outcomes)
            for delivery, _seq in job.coalesced:
                results.setdefault(delivery, (final[0], {**final[1], "coalesced": True}))
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO ma_outcomes (delivery, job, status, body, finished_at) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (delivery) DO UPDATE SET "
                    "job = excluded.job, status = excluded.status, body = excluded.body, "
                    "finished_at = excluded.finished_at",
                    [(d, job.key, status, json.dumps(body), now)
                     for d, (status, body) in results.items()],
                )
            row = conn.execute(
                "SELECT version, entries FROM ma_jobs WHERE key = %s FOR UPDATE", (job.key,)
            ).fetchone()
            if row is None:
                return
            if int(row[0]) == job.version:
                conn.execute("DELETE FROM ma_jobs WHERE key = %s", (job.key,))
                return
            doc = unfinished(json.loads(row[1]), job, done_seq)
            if doc is None:
                conn.execute("DELETE FROM ma_jobs WHERE key = %s", (job.key,))
                return
            conn.execute(
                "UPDATE ma_jobs SET entries = %s, state = 'waiting', attempts = 0, owner = NULL, "
                "lease_until = NULL, not_before = %s, updated_at = %s WHERE key = %s",
                (json.dumps(doc), now, now, job.key),
            )

    def retry(self, job: Job, error: str, delay: float, max_attempts: int) -> bool:
        now = self.clock()
        dead = job.attempts >= max_attempts
        with self.database.transaction() as conn:
            self._lock_job(conn, job.key)
            conn.execute(
                "UPDATE ma_jobs SET state = %s, not_before = %s, owner = NULL, "
                "lease_until = NULL, last_error = %s, updated_at = %s WHERE key = %s",
                ("dead" if dead else "waiting", now + delay, error[:500], now, job.key),
            )
            _add_counter(conn, "retries", 1)
            if dead:
                _add_counter(conn, "dead_letters", 1)
        return dead

    def defer(self, job: Job, until: float, reason: str) -> None:
        now = self.clock()
        with self.database.transaction() as conn:
            self._lock_job(conn, job.key)
            conn.execute(
                "UPDATE ma_jobs SET state = 'waiting', not_before = %s, owner = NULL, "
                "lease_until = NULL, attempts = GREATEST(attempts - 1, 0), last_error = %s, "
                "updated_at = %s WHERE key = %s",
                (until, reason[:500], now, job.key),
            )

    # -- operators and tests ----------------------------------------------

    def outcome(self, delivery: str) -> tuple[int, dict[str, Any]] | None:
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT status, body FROM ma_outcomes WHERE delivery = %s", (delivery,)
            ).fetchone()
        return None if row is None else (int(row[0]), json.loads(row[1]))

    def jobs(self, state: str | None = None) -> list[JobInfo]:
        query = ("SELECT key, state, installation, entries, attempts, not_before, created_at, "
                 "last_error FROM ma_jobs")
        args: tuple[Any, ...] = ()
        if state is not None:
            query += " WHERE state = %s"
            args = (state,)
        with self.database.connection() as conn:
            rows = conn.execute((query + " ORDER BY created_at").encode(), args).fetchall()
        found = []
        for key, st, inst, entries, attempts, not_before, created, error in rows:
            doc = json.loads(entries)
            found.append(JobInfo(key, st, inst, len(doc["entries"]) + len(doc["coalesced"]),
                                 int(attempts), float(not_before), float(created), error))
        return found

    def revive(self, key: str) -> bool:
        now = self.clock()
        with self.database.transaction() as conn:
            self._lock_job(conn, key)
            cursor = conn.execute(
                "UPDATE ma_jobs SET state = 'waiting', attempts = 0, not_before = %s, "
                "updated_at = %s WHERE key = %s AND state != 'running'",
                (now, now, key),
            )
            return cursor.rowcount > 0

    def drop(self, key: str) -> bool:
        with self.database.transaction() as conn:
            self._lock_job(conn, key)
            cursor = conn.execute(
                "DELETE FROM ma_jobs WHERE key = %s AND state != 'running'", (key,)
            )
            return cursor.rowcount > 0

    def stats(self) -> QueueStats:
        now = self.clock()
        with self.database.transaction(read_only=True) as conn:
            counts = dict(
                conn.execute("SELECT state, COUNT(*) FROM ma_jobs GROUP BY state").fetchall()
            )
            row = conn.execute(
                "SELECT MIN(created_at) FROM ma_jobs WHERE state != 'dead'"
            ).fetchone()
            oldest = row[0] if row else None
            counters = dict(conn.execute("SELECT name, value FROM ma_counters").fetchall())
        return QueueStats(
            waiting=int(counts.get("waiting", 0)),
            running=int(counts.get("running", 0)),
            dead=int(counts.get("dead", 0)),
            oldest_age=0.0 if oldest is None else max(0.0, now - float(oldest)),
            counters={str(k): float(v) for k, v in counters.items()},
        )

    def pending_keys(self) -> set[str]:
        with self.database.connection() as conn:
            return {str(r[0]) for r in conn.execute("SELECT key FROM ma_jobs").fetchall()}

    def add_counter(self, name: str, amount: float) -> None:
        with self.database.connection() as conn:
            _add_counter(conn, name, amount)


class PgRateLimiter:
    """bot.queue.ratelimit.RateLimiter's policy, its state in the database."""

    def __init__(self, db: Database, policy: RatePolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.database = db
        self.policy = policy or RatePolicy()
        self.clock = clock
        self.sleep = sleep

    def blocked_until(self, installation: int) -> float:
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT until FROM ma_rate_blocks WHERE installation = %s", (installation,)
            ).fetchone()
        until = 0.0 if row is None else float(row[0])
        return until if until > self.clock() else 0.0

    def check(self, installation: int) -> None:
        until = self.blocked_until(installation)
        if until:
            raise GitHubRateLimited("the installation is rate limited", until=until)

    def before_write(self, installation: int) -> None:
        now = self.clock()
        policy = self.policy
        with self.database.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                         (INSTALLATIONS, installation & 0x7FFFFFFF))
            row = conn.execute(
                "SELECT until FROM ma_rate_blocks WHERE installation = %s", (installation,)
            ).fetchone()
            start = max(now, float(row[0]) if row else 0.0)
            conn.execute(
                "DELETE FROM ma_rate_events WHERE installation = %s AND at < %s",
                (installation, now - 3600.0),
            )
            times = [float(r[0]) for r in conn.execute(
                "SELECT at FROM ma_rate_events WHERE installation = %s", (installation,)
            ).fetchall()]
            slot = _next_slot(times, start, policy)
            if slot - now > policy.max_inline_wait:
                raise GitHubRateLimited(f"write pacing: next slot in {slot - now:.0f}s",
                                        until=slot)
            conn.execute("INSERT INTO ma_rate_events (installation, at) VALUES (%s, %s)",
                         (installation, slot))
            if slot > now:
                _add_counter(conn, "rate_limit_wait_seconds", slot - now)
        if slot > now:
            self.sleep(slot - now)
            # A refusal another replica got meanwhile holds this write too.
            self.check(installation)

    def block(self, installation: int, wait: float | None, reason: str) -> float:
        now = self.clock()
        policy = self.policy
        with self.database.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                         (INSTALLATIONS, installation & 0x7FFFFFFF))
            row = conn.execute(
                "SELECT until, strikes FROM ma_rate_blocks WHERE installation = %s",
                (installation,),
            ).fetchone()
            strikes = 0
            if row is not None and float(row[0]) > now - 2 * policy.secondary_wait:
                strikes = int(row[1])
            if wait is None:
                wait = min(policy.secondary_wait * 2**strikes, policy.max_backoff)
                strikes += 1
            until = now + max(wait, 0.0)
            if row is not None and float(row[0]) > until:
                until = float(row[0])
            conn.execute(
                "INSERT INTO ma_rate_blocks (installation, until, reason, strikes) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (installation) DO UPDATE SET "
                "until = excluded.until, reason = excluded.reason, strikes = excluded.strikes",
                (installation, until, reason[:300], strikes),
            )
            _add_counter(conn, "rate_limited", 1)
        return until

    def claim_label(self, repo: str, name: str) -> bool:
        """RateLimiter.claim_label: one replica creates a label."""
        now = self.clock()
        with self.database.connection() as conn:
            row = conn.execute(
                "INSERT INTO ma_labels (repo, name, at) VALUES (%s, %s, %s) "
                "ON CONFLICT (repo, name) DO UPDATE SET at = excluded.at "
                "WHERE ma_labels.at < %s RETURNING 1",
                (*label_key(repo, name), now, now - LABEL_MEMORY_SECONDS),
            ).fetchone()
        return row is not None

    def forget_label(self, repo: str, name: str) -> None:
        with self.database.connection() as conn:
            conn.execute("DELETE FROM ma_labels WHERE repo = %s AND name = %s",
                         label_key(repo, name))

    def blocks(self) -> list[tuple[int, float, str]]:
        now = self.clock()
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT installation, until, reason FROM ma_rate_blocks WHERE until > %s",
                (now,),
            ).fetchall()
        return [(int(i), float(u), str(r)) for i, u, r in rows]
