"""One GitHub rate policy per installation, shared by every worker and process.

GitHub's documented limits for content-creating requests (comments, labels)
are about 80 a minute and 500 an hour, with at least a second between
writes; past them it answers 403 with ``retry-after`` (secondary limit), or
``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset`` (primary limit).

The state lives in the queue's SQLite file (bot/queue/db.py), so that every
thread of every process sees the same figures:
- ``rate_events``: the send times of the writes of the last hour, including
  slots reserved in the near future. A writer takes the next free slot in
  one transaction and sleeps until it: writers are spaced without polling,
  and no two take the same slot.
- ``rate_blocks``: until when an installation must not send anything, after
  GitHub said so. The queue does not hand out the jobs of a blocked
  installation (bot/queue/jobs.py), so while it is limited, none of its jobs
  sends a request; they wait in the queue.

Why not pyrate-limiter: its SQLite bucket paces, but the "blocked until"
state that GitHub's answers set, and the claim of the queue that must skip
blocked installations, have to be in the same database and transaction; a
second store with its own file lock would be two sources of truth. This is
two small tables, and moves to PostgreSQL with the queue (issue 11).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from model_assigner.bot.github.gateway import GitHubRateLimited
from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.dialect import Dialect


@dataclass(frozen=True)
class RatePolicy:
    per_minute: int = 80
    per_hour: int = 500
    min_interval: float = 1.0
    # A secondary limit without retry-after: at least this, then doubling.
    secondary_wait: float = 60.0
    max_backoff: float = 3600.0
    # A writer sleeps for its slot up to this long; a later slot sends the
    # job back to the queue instead (a worker thread is not held for minutes).
    max_inline_wait: float = 30.0


def _next_slot(times: list[float], start: float, policy: RatePolicy) -> float:
    """The earliest moment >= start at which one more write keeps every rule."""
    t = start
    for _ in range(len(times) + 3):
        moved = False
        if times:
            later = [x for x in times if x > t - policy.min_interval]
            if later:
                candidate = max(later) + policy.min_interval
                if candidate > t:
                    t, moved = candidate, True
        for span, limit in ((60.0, policy.per_minute), (3600.0, policy.per_hour)):
            # the writes within ``span`` up to t, plus the one at t, must be <= limit
            before = sorted(x for x in times if t - span < x <= t)
            if len(before) >= limit:
                t, moved = before[len(before) - limit] + span, True
        if not moved:
            return t
    return t


class RateLimits(Protocol):
    """The rate policy's state: in the queue's SQLite file (RateLimiter) or
    in PostgreSQL (bot/queue/pg.py, PgRateLimiter)."""

    @property
    def policy(self) -> RatePolicy: ...

    def blocked_until(self, installation: int) -> float: ...

    def check(self, installation: int) -> None: ...

    def before_write(self, installation: int) -> None: ...

    def block(self, installation: int, wait: float | None, reason: str) -> float: ...

    def blocks(self) -> list[tuple[int, float, str]]: ...

    def claim_label(self, repo: str, name: str) -> bool: ...

    def forget_label(self, repo: str, name: str) -> None: ...


# A label created (or found to exist) is remembered this long by every
# process and replica; a person who deletes it meanwhile costs nothing: GitHub
# creates a missing label when it is added to an issue (default colour).
LABEL_MEMORY_SECONDS = 24 * 3600.0


def label_key(repo: str, name: str) -> tuple[str, str]:
    return repo.lower(), name.lower()


def next_block(previous: tuple[float, int] | None, now: float, wait: float | None,
               policy: RatePolicy) -> tuple[float, int]:
    """GitHub said stop: until when, and the strikes to remember, given the
    installation's block so far (its end and strikes, or None). ``wait`` is
    seconds from now; None is a secondary limit without retry-after: at
    least ``secondary_wait``, doubling while it keeps happening. A longer
    block already recorded is kept."""
    strikes = 0
    if previous is not None and previous[0] > now - 2 * policy.secondary_wait:
        strikes = previous[1]  # limited again soon after: back off further
    if wait is None:
        wait = min(policy.secondary_wait * 2**strikes, policy.max_backoff)
        strikes += 1
    until = now + max(wait, 0.0)
    if previous is not None and previous[0] > until:
        until = previous[0]
    return until, strikes


class SqlRateLimiter:
    """The rate policy, once, over a back end's dialect (bot/queue/dialect.py):
    RateLimiter below (SQLite), PgRateLimiter in bot/queue/pg.py."""

    def __init__(self, dialect: Dialect, policy: RatePolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.dialect = dialect
        self.policy = policy or RatePolicy()
        self.clock = clock
        self.sleep = sleep

    def _x(self, conn: Any, text: str, args: Sequence[Any] = ()) -> Any:
        return self.dialect.execute(conn, text, args)

    def blocked_until(self, installation: int) -> float:
        with self.dialect.read() as conn:
            row = self._x(conn, "SELECT until FROM {rate_blocks} WHERE installation = ?",
                          (installation,)).fetchone()
        until = 0.0 if row is None else float(row[0])
        return until if until > self.clock() else 0.0

    def check(self, installation: int) -> None:
        """Raise GitHubRateLimited while the installation is blocked (reads too)."""
        until = self.blocked_until(installation)
        if until:
            raise GitHubRateLimited("the installation is rate limited", until=until)

    def before_write(self, installation: int) -> None:
        """Take the next write slot and sleep until it; raise GitHubRateLimited
        when it is more than ``max_inline_wait`` away (nothing is taken then)."""
        now = self.clock()
        policy = self.policy
        with self.dialect.write() as conn:
            self.dialect.lock_installation(conn, installation)
            row = self._x(conn, "SELECT until FROM {rate_blocks} WHERE installation = ?",
                          (installation,)).fetchone()
            start = max(now, float(row[0]) if row else 0.0)
            self._x(conn, "DELETE FROM {rate_events} WHERE installation = ? AND at < ?",
                    (installation, now - 3600.0))
            times = [float(r[0]) for r in self._x(
                conn, "SELECT at FROM {rate_events} WHERE installation = ?", (installation,)
            ).fetchall()]
            slot = _next_slot(times, start, policy)
            if slot - now > policy.max_inline_wait:
                raise GitHubRateLimited(
                    f"write pacing: next slot in {slot - now:.0f}s", until=slot
                )
            self._x(conn, "INSERT INTO {rate_events} (installation, at) VALUES (?, ?)",
                    (installation, slot))
            if slot > now:
                self.dialect.add_counter(conn, "rate_limit_wait_seconds", slot - now)
        if slot > now:
            self.sleep(slot - now)
            # GitHub may have refused another worker's (replica's) write meanwhile.
            self.check(installation)

    def block(self, installation: int, wait: float | None, reason: str) -> float:
        """GitHub said stop: record until when (next_block). Returns the
        moment the block ends."""
        now = self.clock()
        with self.dialect.write() as conn:
            self.dialect.lock_installation(conn, installation)
            row = self._x(
                conn, "SELECT until, strikes FROM {rate_blocks} WHERE installation = ?",
                (installation,),
            ).fetchone()
            previous = None if row is None else (float(row[0]), int(row[1]))
            until, strikes = next_block(previous, now, wait, self.policy)
            self._x(
                conn,
                "INSERT INTO {rate_blocks} (installation, until, reason, strikes) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (installation) DO UPDATE SET "
                "until = excluded.until, reason = excluded.reason, strikes = excluded.strikes",
                (installation, until, reason[:300], strikes),
            )
            self.dialect.add_counter(conn, "rate_limited", 1)
        return until

    def claim_label(self, repo: str, name: str) -> bool:
        """Whether this process should create the label (POST /labels): no
        process or replica has created it, or begun to, within
        LABEL_MEMORY_SECONDS. The claim is one statement that takes it, so
        of several workers one sends the POST."""
        now = self.clock()
        with self.dialect.single() as conn:
            rows = self._x(
                conn,
                "INSERT INTO {labels} (repo, name, at) VALUES (?, ?, ?) "
                "ON CONFLICT (repo, name) DO UPDATE SET at = excluded.at "
                "WHERE {labels}.at <= ? RETURNING 1",
                (*label_key(repo, name), now, now - LABEL_MEMORY_SECONDS),
            ).fetchall()
        return bool(rows)

    def forget_label(self, repo: str, name: str) -> None:
        """The creation failed: another process may try again."""
        with self.dialect.single() as conn:
            self._x(conn, "DELETE FROM {labels} WHERE repo = ? AND name = ?",
                    label_key(repo, name))

    def blocks(self) -> list[tuple[int, float, str]]:
        now = self.clock()
        with self.dialect.read() as conn:
            rows = self._x(
                conn, "SELECT installation, until, reason FROM {rate_blocks} WHERE until > ?",
                (now,),
            ).fetchall()
        return [(int(i), float(u), str(r)) for i, u, r in rows]


class RateLimiter(SqlRateLimiter):
    """The rate policy in the queue's SQLite file."""

    def __init__(self, db: QueueDb, policy: RatePolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.db = db
        super().__init__(db.dialect, policy, clock, sleep)
