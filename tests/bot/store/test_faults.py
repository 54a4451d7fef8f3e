"""The store under faults: its disk full or not writable while deliveries
come in, and the clock crossing UTC midnight and a reset date while several
processes (gunicorn's workers) share it, each with its own clock."""

from __future__ import annotations

import errno
import logging
import os
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.state import Reservation, State, apply_resets
from tests.bot.handler_support import ISSUE, KEY, NOW, Bot, expect_new_assignment
from tests.bot.store.support import MP, api_payment, held, quotas, sub_payment
from tests.bot.support import SMALL_BACKEND, issue_fields, webhook
from tests.helpers import store_text

# -- disk full, not writable ------------------------------------------------------------

P0_SMALL = issue_fields(["P0", "backend"], SMALL_BACKEND)  # glm-4.7, API budget


def failing(code: int) -> Any:
    def fail(*args: object, **kwargs: object) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


def writes(bot: Bot) -> list[tuple[str, str]]:
    return [(c.method, c.url) for c in bot.gh.calls() if c.method != "GET"
            and "access_tokens" not in c.url]


@pytest.mark.parametrize(
    ("function", "code"),
    [("fsync", errno.ENOSPC), ("pwrite", errno.ENOSPC), ("pwrite", errno.EROFS),
     ("pwrite", errno.EACCES)],
)
def test_a_full_or_read_only_disk_answers_503_and_keeps_the_document(
    bot: Bot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    function: str, code: int,
) -> None:
    with bot.store.transaction(NOW) as state:  # a document to keep
        state.reserve("o/r#7", held(sub_payment(1_000)))
    before = bot.raw()
    bot.gh.issue(webhook("issues.opened", **P0_SMALL)["issue"])
    expect_new_assignment(bot.gh, "glm-4.7")

    target = tempfile if function == "mkstemp" else os
    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR, "model_assigner"):
        patch.setattr(target, function, failing(code))
        status, answer = bot.deliver(webhook("issues.opened", **P0_SMALL), delivery="d-disk")

    assert (status, answer["outcome"]) == (503, "store_unavailable")
    assert bot.raw() == before
    [line] = [r.getMessage() for r in caplog.records if "store" in r.getMessage()]
    assert "delivery d-disk: store:" in line and str(bot.state_path) in line
    assert os.strerror(code) in line and "the previous document is intact" in line
    assert writes(bot) == [], "nothing written to GitHub for a reservation never made"
    assert not [p for p in bot.state_path.parent.iterdir() if p.name.endswith(".tmp")]

    # The disk is back: GitHub's redelivery does the work, once.
    status, answer = bot.deliver(webhook("issues.opened", **P0_SMALL), delivery="d-disk")
    assert (status, answer["status"]) == (200, "assigned")
    assert bot.state().reservations[KEY].model == "glm-4.7"


def test_a_disk_full_after_the_write_back_is_finished_by_the_redelivery(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reservation is written, the comment and label too, then the disk
    fills: 503. The redelivery finds the comment by its marker (no second
    one) and charges the issue once."""
    bot.gh.issue(webhook("issues.opened", **P0_SMALL)["issue"])
    expect_new_assignment(bot.gh, "glm-4.7")
    real_pwrite = os.pwrite
    written: list[int] = []

    def full_after_first(fd: int, data: Any, offset: int) -> int:
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(fd)
        return real_pwrite(fd, data, offset)

    with monkeypatch.context() as patch:
        patch.setattr(os, "pwrite", full_after_first)
        status, _ = bot.deliver(webhook("issues.opened", **P0_SMALL), delivery="d-late")
    assert status == 503
    charged = bot.state()
    assert charged.reservations[KEY].model == "glm-4.7"  # the first write stands

    posted = [c for c in bot.gh.calls() if c.method == "POST" and c.url.endswith("/comments")]
    bot.gh.rsps.replace("GET", f"https://api.github.com:443{ISSUE}/comments", json=[
        {"id": 501, "body": posted[0].body["body"],
         "user": {"login": "model-assigner-test[bot]", "type": "Bot"}},
    ])
    status, answer = bot.deliver(webhook("issues.opened", **P0_SMALL), delivery="d-late")
    assert (status, answer["status"]) == (200, "assigned")
    after = bot.state()
    assert after.api_budget.spent_usd == pytest.approx(charged.api_budget.spent_usd)
    assert len([c for c in bot.gh.calls() if c.method == "POST"
                and c.url.endswith("/comments")]) == 1
    assert "d-late" in after.deliveries


def test_healthz_says_when_the_store_is_not_writable(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bot.client.get("/healthz").status_code == 200
    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", failing(errno.EROFS))
        response = bot.client.get("/healthz")
    assert (response.status_code, response.get_json()) == (503, {"status": "store not writable"})


# -- the clock across midnight and a reset date, several processes ---------------------

MIDNIGHT = datetime(2026, 2, 16, tzinfo=UTC)  # not a reset date (March 1st)
RESET = datetime(2026, 3, 1, tzinfo=UTC)


def _worker(
    path: str, clock: list[str], name: str, kind: str, seed: int, behind_wrote: Any
) -> None:
    """One gunicorn worker: a Store of its own, its own clock, 2 threads.

    The workers whose clocks are ahead start once a worker behind has written
    (``behind_wrote``): on a loaded machine the processes may otherwise start
    so far apart that every change behind is written after the first one
    ahead, and nothing would cross the edge in both directions."""
    from concurrent.futures import ThreadPoolExecutor

    behind = seed < 2  # as _run_workers numbers them
    if not behind:
        behind_wrote.wait(60)

    store = Store(Path(path), quotas(reset=RESET, daily=None))
    rng = random.Random(seed)

    def charge(j: int) -> None:
        now = datetime.fromisoformat(clock[j])
        tokens = 1_000 + rng.randrange(1_000)
        payment = sub_payment(tokens) if kind == "tokens" else api_payment(tokens / 1e6, tokens)

        def change(state: State) -> None:
            state.reserve(f"o/r#{name}-{j}",
                          Reservation(model="m", payment=payment, charged_at=now))
            state.remember_delivery(f"{name}-{j}|{now.isoformat()}|{tokens}", now)

        store.apply(now, change)
        if behind:
            behind_wrote.set()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(charge, range(len(clock))))


def _run_workers(path: Path, edge: datetime, kind: str) -> State:
    """Four workers: two whose clocks are a little behind (all their changes
    just before ``edge``), two a little ahead (all just after), at once."""
    processes = []
    behind_wrote = MP.Event()
    for p in range(4):
        sign = -1 if p < 2 else 1
        clock = [(edge + sign * timedelta(milliseconds=1 + 7 * j + p)).isoformat()
                 for j in range(30)]
        args = (str(path), clock, f"w{p}", kind, p, behind_wrote)
        processes.append(MP.Process(target=_worker, args=args))
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    return State.model_validate_json(store_text(path))


def _charged_since_first_after(state: State, edge: datetime) -> tuple[int, float, int]:
    """From the record of the changes in the order they were written: the
    tokens charged from the first change timed at or after ``edge`` on (a
    worker behind then counts in the new period: the reset happened once)."""
    tokens, after_edge, seen = 0, False, 0
    for entry in state.deliveries:
        _, moment, amount = entry.split("|")
        after_edge = after_edge or datetime.fromisoformat(moment) >= edge
        if after_edge:
            tokens += int(amount)
            seen += 1
    return tokens, tokens / 1e6, seen


def test_midnight_resets_daily_usage_exactly_once_across_workers(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    Store(path, quotas(reset=RESET, daily=None)).apply(MIDNIGHT - timedelta(hours=1),
                                                       lambda state: None)
    state = _run_workers(path, MIDNIGHT, "tokens")
    today, _, counted = _charged_since_first_after(state, MIDNIGHT)
    all_tokens = sum(r.tokens for r in state.reservations.values())
    sub = state.subscriptions["claude"]
    assert len(state.deliveries) == 120 and 0 < counted < 120
    assert sub.usage_day == MIDNIGHT.date()
    assert sub.tokens_used_today == today, "reset once, at the first change past midnight"
    assert sub.tokens_used_month == all_tokens, "midnight is not a monthly reset"


@pytest.mark.parametrize("kind", ["tokens", "budget"])
def test_a_reset_date_resets_monthly_usage_exactly_once_across_workers(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "state.json"
    Store(path, quotas(reset=RESET, daily=None)).apply(RESET - timedelta(hours=1),
                                                       lambda state: None)
    state = _run_workers(path, RESET, kind)
    tokens, dollars, counted = _charged_since_first_after(state, RESET)
    assert 0 < counted < 120
    sub, budget = state.subscriptions["claude"], state.api_budget
    if kind == "tokens":
        assert sub.tokens_used_month == tokens
        assert sub.tokens_used_today == tokens  # the 1st is a new day too
    else:
        assert budget.spent_usd == pytest.approx(dollars)
    # The reset date moved on exactly one month.
    assert sub.reset_date == budget.reset_date == datetime(2026, 4, 1, tzinfo=UTC)


def test_a_clock_behind_does_not_reset_the_day_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.json", quotas(daily=None))
    before, after = MIDNIGHT - timedelta(seconds=1), MIDNIGHT + timedelta(seconds=1)
    with store.transaction(before) as state:
        state.reserve("o/r#1", held(sub_payment(100), at=before))
    with store.transaction(after) as state:
        state.reserve("o/r#2", held(sub_payment(20), at=after))
    with store.transaction(before) as state:  # a worker whose clock read earlier
        state.reserve("o/r#3", held(sub_payment(3), at=before))
    with store.transaction(after + timedelta(seconds=1)) as state:
        pass
    sub = State.model_validate_json(store_text(store.path)).subscriptions["claude"]
    assert (sub.usage_day, sub.tokens_used_today, sub.tokens_used_month) == (
        MIDNIGHT.date(), 23, 123
    )
    # The clamp itself: a time behind the day reached resets nothing.
    state = State.model_validate_json(store_text(store.path))
    apply_resets(state, before - timedelta(days=3))
    assert state.subscriptions["claude"].tokens_used_today == 23
