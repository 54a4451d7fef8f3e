"""The installation's rate policy on a real SQLite file, with a fake clock:
write slots, the per-minute and per-hour limits, blocks GitHub asked for,
and two limiters (two processes) sharing one file."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_assigner.bot.github.gateway import GitHubRateLimited
from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.ratelimit import RateLimiter, RatePolicy, next_block


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def limiter(path: Path, clock: Clock, **policy: float) -> RateLimiter:
    return RateLimiter(QueueDb(path), RatePolicy(**policy), clock=clock,  # type: ignore[arg-type]
                       sleep=clock.sleep)


def test_writes_of_all_workers_are_at_least_the_interval_apart(tmp_path: Path) -> None:
    clock = Clock()
    one = limiter(tmp_path / "q.sqlite3", clock)
    other = limiter(tmp_path / "q.sqlite3", clock)  # another process, same file
    one.before_write(1)
    other.before_write(1)
    one.before_write(1)
    assert clock.slept == [1.0, 1.0]
    other.before_write(2)  # another installation has its own slots
    assert clock.slept == [1.0, 1.0]


def test_the_per_minute_limit_sends_a_later_slot_back_to_the_queue(tmp_path: Path) -> None:
    clock = Clock()
    limit = limiter(tmp_path / "q.sqlite3", clock, per_minute=3, min_interval=0.0)
    start = clock.now
    for _ in range(3):
        limit.before_write(1)
    with pytest.raises(GitHubRateLimited) as raised:
        limit.before_write(1)
    assert raised.value.until == pytest.approx(start + 60)
    assert not raised.value.answered
    clock.now = start + 60
    limit.before_write(1)  # nothing was taken by the refused one


def test_the_per_hour_limit(tmp_path: Path) -> None:
    clock = Clock()
    limit = limiter(tmp_path / "q.sqlite3", clock, per_hour=5, min_interval=0.0,
                    per_minute=100)
    start = clock.now
    for _ in range(5):
        limit.before_write(1)
        clock.now += 61
    with pytest.raises(GitHubRateLimited) as raised:
        limit.before_write(1)
    assert raised.value.until == pytest.approx(start + 3600)


def test_a_block_holds_reads_and_writes_until_it_ends(tmp_path: Path) -> None:
    clock = Clock()
    limit = limiter(tmp_path / "q.sqlite3", clock, max_inline_wait=10.0)
    until = limit.block(1, 60.0, "retry-after 60")
    assert until == clock.now + 60
    with pytest.raises(GitHubRateLimited):
        limit.check(1)
    with pytest.raises(GitHubRateLimited):
        limit.before_write(1)
    limit.check(2)  # other installations go on
    clock.now = until
    limit.check(1)
    limit.before_write(1)


def test_a_secondary_limit_without_retry_after_waits_60s_then_doubles(tmp_path: Path) -> None:
    clock = Clock()
    limit = limiter(tmp_path / "q.sqlite3", clock)
    first = limit.block(1, None, "secondary")
    assert first - clock.now == 60
    clock.now = first
    second = limit.block(1, None, "secondary")  # again, right after the wait
    assert second - clock.now == 120
    clock.now = second + 3600  # long after: back to the first wait
    assert limit.block(1, None, "secondary") - clock.now == 60
    assert limit.blocks()[0][0] == 1


def test_a_paced_write_gives_way_to_a_block_made_while_it_waited(tmp_path: Path) -> None:
    clock = Clock()
    limit = limiter(tmp_path / "q.sqlite3", clock)
    limit.before_write(1)
    original = clock.sleep

    def sleep_then_blocked(seconds: float) -> None:
        original(seconds)
        limit.block(1, 30.0, "another worker was refused")

    limit.sleep = sleep_then_blocked
    with pytest.raises(GitHubRateLimited):
        limit.before_write(1)


def test_next_block_backs_off_and_keeps_a_longer_block() -> None:
    """The block arithmetic both back ends use (a pure function)."""
    policy = RatePolicy(secondary_wait=60.0, max_backoff=200.0)
    now = 1_000.0
    assert next_block(None, now, None, policy) == (now + 60.0, 1)
    assert next_block((now - 10.0, 1), now, None, policy) == (now + 120.0, 2)
    assert next_block((now - 10.0, 3), now, None, policy) == (now + 200.0, 4)  # capped
    # an old block (over two secondary waits ago) is forgotten: strikes start again
    assert next_block((now - 121.0, 3), now, None, policy) == (now + 60.0, 1)
    # retry-after: exactly that, strikes kept; a longer recorded block is kept
    assert next_block((now - 10.0, 2), now, 5.0, policy) == (now + 5.0, 2)
    assert next_block((now + 500.0, 0), now, 5.0, policy) == (now + 500.0, 0)
    assert next_block(None, now, -3.0, policy) == (now, 0)


def test_the_dialects_spell_one_statement_for_each_back_end() -> None:
    """One statement, two spellings: placeholders, table names, GREATEST, row locks."""
    from model_assigner.bot.pg import Database
    from model_assigner.bot.queue.pg import PgDialect

    text = ("SELECT {greatest}(attempts - 1, 0) FROM {jobs}, {deliveries} "
            "WHERE key = ?{for_update}")
    assert QueueDb(Path("unused.sqlite3")).dialect.sql(text) == (
        "SELECT MAX(attempts - 1, 0) FROM jobs, deliveries WHERE key = ?"
    )
    assert PgDialect(Database("postgresql://127.0.0.1/unused")).sql(text) == (
        "SELECT GREATEST(attempts - 1, 0) FROM ma_jobs, ma_queue_deliveries "
        "WHERE key = %s FOR UPDATE"
    )
