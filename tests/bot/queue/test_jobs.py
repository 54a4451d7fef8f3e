"""The delivery queue and the GitHub rate policy, on both back ends: the
SQLite file (bot/queue/jobs.py, bot/queue/ratelimit.py) and PostgreSQL
(bot/queue/pg.py, a real server). Two queue objects stand for two processes
(or two replicas): what one does, the other sees."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_assigner.bot.github.gateway import GitHubRateLimited
from model_assigner.bot.pg import Database
from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.jobs import MAX_COALESCED, JobQueue, SqliteJobQueue
from model_assigner.bot.queue.pg import PgJobQueue, PgRateLimiter
from model_assigner.bot.queue.ratelimit import RateLimiter, RateLimits, RatePolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A factory of queue and limiter objects on one shared back end."""
    made: list[Database] = []
    if request.param == "sqlite":
        path = tmp_path / "queue.sqlite3"

        def queue(clock: Clock) -> JobQueue:
            return SqliteJobQueue(QueueDb(path), clock)

        def limiter(clock: Clock, sleep: Any) -> RateLimits:
            return RateLimiter(QueueDb(path), RatePolicy(), clock, sleep)
    else:
        url: str = request.getfixturevalue("pg_url")

        def database() -> Database:
            made.append(Database(url, pool_size=4))
            return made[-1]

        def queue(clock: Clock) -> JobQueue:
            return PgJobQueue(database(), clock)

        def limiter(clock: Clock, sleep: Any) -> RateLimits:
            return PgRateLimiter(database(), RatePolicy(), clock, sleep)
    yield queue, limiter
    for db in made:
        db.release()


def opened(number: int, updated_at: str, action: str = "opened") -> dict[str, Any]:
    return {"action": action, "issue": {"number": number, "updated_at": updated_at}}


def test_a_delivery_is_accepted_once_and_seen_by_another_process(backend: Any) -> None:
    make_queue, _ = backend
    clock = Clock()
    one, two = make_queue(clock), make_queue(clock)
    assert one.accept("d1", "issues", opened(1, "2026-01-01T00:00:01Z"), "o/r#1", 7)
    assert two.seen("d1") and not two.seen("d2")
    assert not two.accept("d1", "issues", opened(1, "2026-01-01T00:00:01Z"), "o/r#1", 7)
    assert one.stats().waiting == 1


def test_a_burst_for_one_issue_is_one_job_decided_from_its_newest_payload(backend: Any) -> None:
    make_queue, _ = backend
    clock = Clock()
    queue = make_queue(clock)
    for n, (action, at) in enumerate([("opened", "01"), ("labeled", "03"), ("milestoned", "02")]):
        assert queue.accept(f"d{n}", "issues", opened(1, f"2026-01-01T00:00:{at}Z", action),
                            "o/r#1", 7)
    job = make_queue(clock).claim("w1")
    assert job is not None and [e.delivery for e in job.entries] == ["d1"]
    assert {d for d, _ in job.coalesced} == {"d0", "d2"}
    assert make_queue(clock).claim("w2") is None, "one issue, one worker"
    queue.finish(job, {"d1": (200, {"status": "assigned"})}, (200, {"status": "assigned"}))
    assert queue.outcome("d0") == (200, {"status": "assigned", "coalesced": True})
    assert queue.stats().waiting == 0 and queue.pending_keys() == set()


def test_a_waiting_job_keeps_a_bounded_list_of_the_deliveries_it_coalesced(
    backend: Any,
) -> None:
    """Thousands of events for one issue while its job waits: the job's row
    keeps the newest MAX_COALESCED ids; every older one has its outcome at
    once (coalesced into the newest), and the rest get the job's when it
    finishes. No delivery is left without an outcome."""
    make_queue, _ = backend
    clock = Clock()
    queue = make_queue(clock)
    count = MAX_COALESCED * 3
    for n in range(count):
        queue.accept(f"d{n}", "issues", opened(1, f"2026-01-01T00:{n // 60:02}:{n % 60:02}Z",
                                                "edited"), "o/r#1", 7)
    job = make_queue(clock).claim("w1")
    assert job is not None and [e.delivery for e in job.entries] == [f"d{count - 1}"]
    assert len(job.coalesced) == MAX_COALESCED
    assert queue.outcome("d0") == (202, {"status": "coalesced", "coalesced": True,
                                         "into": f"d{MAX_COALESCED + 1}"})
    queue.finish(job, {f"d{count - 1}": (200, {"status": "assigned"})},
                 (200, {"status": "assigned"}))
    outcomes = [queue.outcome(f"d{n}") for n in range(count)]
    assert all(found is not None for found in outcomes)
    assert outcomes[count - 2] == (200, {"status": "assigned", "coalesced": True})
    assert queue.stats().waiting == 0


def test_a_delivery_arriving_while_its_job_runs_is_kept_for_another_turn(backend: Any) -> None:
    make_queue, _ = backend
    clock = Clock()
    queue, other = make_queue(clock), make_queue(clock)
    queue.accept("d1", "issues", opened(1, "2026-01-01T00:00:01Z"), "o/r#1", 7)
    job = queue.claim("w1")
    assert job is not None
    other.accept("d2", "issues", opened(1, "2026-01-01T00:00:05Z", "closed"), "o/r#1", 7)
    queue.finish(job, {"d1": (200, {})}, (200, {}))
    again = other.claim("w2")
    assert again is not None and [e.delivery for e in again.entries] == ["d2"]


def test_concurrent_workers_never_claim_the_same_job(backend: Any) -> None:
    make_queue, _ = backend
    clock = Clock()
    feeder = make_queue(clock)
    for n in range(40):
        feeder.accept(f"d{n}", "issues", opened(n, "2026-01-01T00:00:01Z"), f"o/r#{n}", 7)
    claimed: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        queue = make_queue(clock)
        while (job := queue.claim(name)) is not None:
            with lock:
                claimed.append(job.key)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed) == sorted(f"o/r#{n}" for n in range(40)), "each job exactly once"


def test_retries_end_in_the_dead_letters_and_a_revived_job_runs_again(backend: Any) -> None:
    make_queue, _ = backend
    clock = Clock()
    queue = make_queue(clock)
    queue.accept("d1", "issues", opened(1, "2026-01-01T00:00:01Z"), "o/r#1", 7)
    for attempt in range(1, 4):
        job = queue.claim("w")
        assert job is not None and job.attempts == attempt
        dead = queue.retry(job, "GitHub down", 10.0, max_attempts=3)
        assert dead == (attempt == 3)
        assert queue.claim("w") is None, "waits before its next attempt"
        clock.now += 11
    assert [j.key for j in queue.jobs("dead")] == ["o/r#1"]
    assert queue.stats().counters["dead_letters"] == 1
    assert queue.revive("o/r#1")
    assert queue.claim("w") is not None


def test_an_expired_lease_is_taken_again(backend: Any) -> None:
    make_queue, _ = backend
    clock = Clock()
    queue = make_queue(clock)
    queue.accept("d1", "issues", opened(1, "2026-01-01T00:00:01Z"), "o/r#1", 7)
    assert queue.claim("elsewhere:1:t", lease=30) is not None
    assert make_queue(clock).claim("w2") is None
    clock.now += 31
    job = make_queue(clock).claim("w2")
    assert job is not None and job.attempts == 2


def test_write_slots_are_shared_by_every_process(backend: Any) -> None:
    _, make_limiter = backend
    clock = Clock()
    slept: list[float] = []
    first, second = make_limiter(clock, slept.append), make_limiter(clock, slept.append)
    first.before_write(7)
    second.before_write(7)  # a second after the first, though another process asks
    assert slept == [1.0]
    second.before_write(8)  # another installation is not held up
    assert slept == [1.0]


def test_a_block_holds_every_process_and_the_queue_skips_it(backend: Any) -> None:
    make_queue, make_limiter = backend
    clock = Clock()
    limiter = make_limiter(clock, lambda _s: None)
    until = limiter.block(7, 120.0, "secondary rate limit")
    assert until == clock.now + 120
    with pytest.raises(GitHubRateLimited):
        make_limiter(clock, lambda _s: None).check(7)
    queue = make_queue(clock)
    queue.accept("d1", "issues", opened(1, "2026-01-01T00:00:01Z"), "o/r#1", 7)
    queue.accept("d2", "issues", opened(2, "2026-01-01T00:00:01Z"), "o/r#2", 8)
    job = queue.claim("w")
    assert job is not None and job.installation == 8
    assert queue.claim("w") is None
    clock.now += 121
    assert queue.claim("w") is not None


def test_a_label_is_created_by_one_process_and_remembered_by_all(backend: Any) -> None:
    _, make_limiter = backend
    clock = Clock()
    first, second = make_limiter(clock, lambda _s: None), make_limiter(clock, lambda _s: None)
    assert first.claim_label("Octo/Repo", "model:opus-4.6")  # this one sends the POST
    assert not second.claim_label("octo/repo", "Model:Opus-4.6")  # names as GitHub compares
    assert second.claim_label("octo/repo", "model:deferred")  # another label: its own
    first.forget_label("octo/repo", "model:deferred")  # its POST failed: someone retries
    assert first.claim_label("octo/repo", "model:deferred")
    clock.now += 24 * 3600 + 1  # a day later it is checked again (422 if it exists)
    assert second.claim_label("octo/repo", "model:opus-4.6")


def test_a_usage_comment_update_joins_the_issues_job_beside_its_decision(backend: Any) -> None:
    make_queue, _ = backend
    queue = make_queue(Clock())
    usage = {"repository": {"full_name": "o/r"}, "issue": {"number": 1},
             "installation": {"id": 7}}
    queue.accept("u1", "usage_comment", usage, "o/r#1", 7)
    queue.accept("d1", "issues", opened(1, "2026-01-01T00:00:01Z"), "o/r#1", 7)
    queue.accept("u2", "usage_comment", usage, "o/r#1", 7)
    job = queue.claim("w")
    # The decision is kept, one usage update (the newest) comes after it.
    assert [e.delivery for e in job.ordered()] == ["d1", "u2"]
    assert [d for d, _ in job.coalesced] == ["u1"]


def test_a_plan_entry_coalesces_with_the_issues_deliveries_by_their_state(
    backend: Any,
) -> None:
    """plan --apply's entry joins the issue's job like a delivery: it
    replaces a delivery of an older state of the issue, and a delivery of a
    newer state replaces it (that delivery then decides the issue again)."""
    make_queue, _ = backend
    queue = make_queue(Clock())
    queue.accept("d1", "issues", opened(1, "2026-01-01T00:00:01Z"), "o/r#1", 7)
    queue.accept("p1", "plan_write", opened(1, "2026-01-01T00:00:05Z", "plan"), "o/r#1", 7)
    job = queue.claim("w")
    assert [e.delivery for e in job.ordered()] == ["p1"]
    assert [d for d, _ in job.coalesced] == ["d1"]
    queue.finish(job, {"p1": (200, {"status": "assigned"})}, (200, {"status": "assigned"}))
    queue.accept("p2", "plan_write", opened(2, "2026-01-01T00:00:05Z", "plan"), "o/r#2", 7)
    queue.accept("d2", "issues", opened(2, "2026-01-01T00:00:09Z", "labeled"), "o/r#2", 7)
    job = queue.claim("w")
    assert [e.delivery for e in job.ordered()] == ["d2"]


def test_a_deferred_job_waits_without_counting_an_attempt(backend: Any) -> None:
    """defer() on both back ends (its attempts arithmetic is spelled MAX on
    SQLite, GREATEST on PostgreSQL)."""
    make_queue, _ = backend
    clock = Clock()
    queue = make_queue(clock)
    queue.accept("d1", "issues", opened(1, "2026-01-01T00:00:01Z"), "o/r#1", 7)
    job = queue.claim("w1")
    assert job is not None and job.attempts == 1
    queue.defer(job, clock.now + 5, "paced")
    assert queue.claim("w1") is None, "not before its time"
    clock.now += 5
    again = make_queue(clock).claim("w2")
    assert again is not None and again.attempts == 1
    assert [(i.state, i.last_error) for i in queue.jobs()] == [("running", "paced")]
