"""The delivery queue on a real SQLite file: acceptance once per id,
coalescing per issue, leases taken again after a crash, retries, dead
letters, and rate-limited installations skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.jobs import SqliteJobQueue, owner_id
from model_assigner.bot.queue.ratelimit import RateLimiter

KEY = "octo/repo#1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def payload(action: str = "labeled", updated_at: str = "2026-12-01T00:00:00Z") -> dict[str, Any]:
    return {"action": action, "issue": {"number": 1, "updated_at": updated_at},
            "repository": {"full_name": "octo/repo"}, "installation": {"id": 7}}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(tmp_path: Path, clock: Clock) -> SqliteJobQueue:
    return SqliteJobQueue(QueueDb(tmp_path / "queue.sqlite3"), clock=clock)


def test_a_delivery_id_is_accepted_once(queue: SqliteJobQueue) -> None:
    assert queue.accept("d-1", "issues", payload(), KEY, 7)
    assert not queue.accept("d-1", "issues", payload(), KEY, 7)
    assert queue.seen("d-1") and not queue.seen("d-2")
    [job] = queue.jobs()
    assert job.deliveries == 1


def test_deliveries_of_one_issue_coalesce_into_one_job_of_the_newest_state(
    queue: SqliteJobQueue,
) -> None:
    queue.accept("d-1", "issues", payload("opened", "2026-12-01T00:00:01Z"), KEY, 7)
    queue.accept("d-3", "issues", payload("labeled", "2026-12-01T00:00:03Z"), KEY, 7)
    queue.accept("d-2", "issues", payload("labeled", "2026-12-01T00:00:02Z"), KEY, 7)
    queue.accept("d-4", "issues", payload("opened"), "octo/repo#2", 7)
    job = queue.claim("w")
    assert job is not None and job.key == KEY
    assert [e.delivery for e in job.entries] == ["d-3"]  # the newest updated_at
    assert sorted(d for d, _ in job.coalesced) == ["d-1", "d-2"]
    queue.finish(job, {"d-3": (200, {"status": "assigned", "model": "m"})},
                 (200, {"status": "assigned", "model": "m"}))
    for delivery in ("d-1", "d-2", "d-3"):
        status, body = queue.outcome(delivery) or (0, {})
        assert (status, body["model"]) == (200, "m")
    assert [j.key for j in queue.jobs()] == ["octo/repo#2"]


def test_a_close_is_kept_beside_the_newest_assignment_and_handled_in_time_order(
    queue: SqliteJobQueue,
) -> None:
    queue.accept("d-1", "issues", payload("closed", "2026-12-01T00:00:05Z"), KEY, 7)
    queue.accept("d-2", "issues", payload("labeled", "2026-12-01T00:00:02Z"), KEY, 7)
    job = queue.claim("w")
    assert job is not None
    assert [e.delivery for e in job.ordered()] == ["d-2", "d-1"]


def test_a_delivery_arriving_while_its_job_runs_makes_it_run_again(
    queue: SqliteJobQueue,
) -> None:
    queue.accept("d-1", "issues", payload("opened", "2026-12-01T00:00:01Z"), KEY, 7)
    job = queue.claim("w")
    assert job is not None
    queue.accept("d-2", "issues", payload("labeled", "2026-12-01T00:00:02Z"), KEY, 7)
    assert queue.claim("w2") is None  # one job per issue at a time
    queue.finish(job, {"d-1": (200, {"status": "assigned"})}, (200, {"status": "assigned"}))
    again = queue.claim("w")
    assert again is not None and [e.delivery for e in again.entries] == ["d-2"]


def test_a_lease_whose_process_is_gone_is_taken_at_once(
    queue: SqliteJobQueue, clock: Clock
) -> None:
    queue.accept("d-1", "issues", payload(), KEY, 7)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_owner = owner_id("w0").replace(f":{os.getpid()}:", f":{gone.stdout.strip()}:")
    assert queue.claim(dead_owner) is not None
    again = queue.claim(owner_id("w1"))  # its owner no longer exists
    assert again is not None and again.attempts == 2
    assert queue.claim(owner_id("w2")) is None  # a live owner's lease holds
    clock.now += 301  # ... until it runs out (a process on another machine)
    assert queue.claim("elsewhere:1:w") is not None


def test_failures_back_off_then_the_job_is_dead_until_retried(
    queue: SqliteJobQueue, clock: Clock
) -> None:
    queue.accept("d-1", "issues", payload(), KEY, 7)
    for attempt in (1, 2):
        job = queue.claim("w")
        assert job is not None and job.attempts == attempt
        assert not queue.retry(job, "GitHub: HTTP 502", delay=10, max_attempts=3)
        assert queue.claim("w") is None  # waits its back-off
        clock.now += 10
    job = queue.claim("w")
    assert job is not None
    assert queue.retry(job, "GitHub: HTTP 502", delay=10, max_attempts=3)
    [dead] = queue.jobs("dead")
    assert (dead.attempts, dead.last_error) == (3, "GitHub: HTTP 502")
    clock.now += 3600
    assert queue.claim("w") is None  # dead letters wait for a person
    stats = queue.stats()
    assert (stats.dead, stats.counters["dead_letters"], stats.counters["retries"]) == (1, 1, 3)
    assert queue.revive(KEY)
    job = queue.claim("w")
    assert job is not None and job.attempts == 1
    queue.retry(job, "x", 0, 1)
    assert queue.drop(KEY) and queue.jobs() == []


def test_a_rate_limit_defers_without_counting_an_attempt_and_holds_the_installation(
    queue: SqliteJobQueue, clock: Clock
) -> None:
    queue.accept("d-1", "issues", payload(), KEY, 7)
    limiter = RateLimiter(queue.db, clock=clock)
    until = limiter.block(7, 30.0, "secondary rate limit")
    assert queue.claim("w") is None  # its installation is blocked
    clock.now = until
    job = queue.claim("w")
    assert job is not None and job.attempts == 1
    queue.defer(job, clock.now + 5, "paced")
    clock.now += 5
    again = queue.claim("w")
    assert again is not None and again.attempts == 1


def test_the_oldest_waiting_job_is_measured(queue: SqliteJobQueue, clock: Clock) -> None:
    assert queue.stats().oldest_age == 0
    queue.accept("d-1", "issues", payload(), KEY, 7)
    clock.now += 42
    stats = queue.stats()
    assert (stats.waiting, stats.oldest_age) == (1, 42)
