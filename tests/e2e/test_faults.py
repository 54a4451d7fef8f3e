"""Faults, end to end: the real gunicorn server from the Procfile (2 workers)
against the GitHub stand-in (a thread of this process), on loopback.

- SIGKILL of the whole server in the middle of a load, restart, redelivery.
- GitHub answering 500, 502, a secondary rate limit with Retry-After, or
  answering so slowly that a chain of calls would pass GitHub's 10 s.
- A corrupt or truncated store at start.

(The store's disk full or not writable, and the clock across midnight and a
reset date, are in tests/bot/test_store_faults.py: they need injected
failures and clocks.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.deadline import DELIVERY_BUDGET
from bot.store import parse_state
from tests.bot.support import (
    APP_ID,
    BIG_HOTFIX,
    INSTALLATION,
    REPO,
    SECRET,
    SLUG,
    SMALL_BACKEND,
    app_key,
)
from tests.e2e.test_server import (
    ROOT,
    Server,
    bot_comments,
    event,
    free_port,
    loopback_command,
    model_labels,
    new_issue,
    start_server,
    stop_server,
)
from tests.github_standin import GitHubStandIn, StandInServer
from tests.helpers import seed_strategy_config, shifted_clock_env

KINDS = [
    (["P0", "security", "hotfix"], BIG_HOTFIX),  # sonnet-4.5, claude subscription
    (["P1", "security", "hotfix"], BIG_HOTFIX),  # deepseek-v3, API budget
    (["P0", "backend"], SMALL_BACKEND),  # glm-4.7, API budget
]


@pytest.fixture(scope="module")
def github() -> Iterator[tuple[GitHubStandIn, StandInServer]]:
    standin = GitHubStandIn(APP_ID, app_key().public_pem, slug=SLUG)
    standin.add_repo(REPO, installation_id=INSTALLATION, files=20, default_branch="master")
    server = StandInServer(standin).start()
    try:
        yield standin, server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def standin(github: tuple[GitHubStandIn, StandInServer]) -> GitHubStandIn:
    return github[0]


def app_env(github: tuple[GitHubStandIn, StandInServer]) -> dict[str, str]:
    return {
        "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_PRIVATE_KEY": app_key().private_pem,
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": github[1].url,
    }


@pytest.fixture(scope="module")
def server(
    github: tuple[GitHubStandIn, StandInServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("faults"), app_env(github), "app")
    try:
        # One delivery first: the store exists, and "as before" means bytes.
        number = issue_number()
        new_issue(github[0], number, ["P0", "backend"], SMALL_BACKEND)
        assert deliver(running, event(github[0], "opened", number), "warm-up").status_code == 200
        yield running
    finally:
        stop_server(running)


def issue_number() -> int:
    return 10_000 + next(_numbers)


_numbers = iter(range(1_000_000))


def raw(server: Server) -> bytes | None:
    return server.state.read_bytes() if server.state.exists() else None


def deliver(server: Server, payload: dict[str, Any], delivery: str) -> requests.Response:
    return server.post(payload, delivery=delivery)


def deliver_under_faults(
    server: Server, standin: GitHubStandIn, payload: dict[str, Any], delivery: str
) -> tuple[requests.Response, float]:
    """Deliver while the injected faults last, then clear them; the answer
    and how long it took."""
    try:
        started = time.monotonic()
        response = deliver(server, payload, delivery)
        return response, time.monotonic() - started
    finally:
        standin.clear_faults()


def assigned_everywhere(standin: GitHubStandIn, store: dict[str, Any], number: int,
                        model: str | None = None) -> None:
    """One model label, one bot comment, and the reservation, for one issue."""
    labels = model_labels(standin, number)
    assert len(labels) == 1, labels
    assert len(bot_comments(standin, number)) == 1
    held = store["reservations"][f"{REPO}#{number}"]
    assert labels == [f"model:{held['model']}"]
    if model is not None:
        assert held["model"] == model


def charged_once(store: dict[str, Any]) -> None:
    """The counters are exactly the sums of the reservations: nothing was
    charged twice (every reservation here is this month's and today's)."""
    subs = [h["payment"] for h in store["reservations"].values()
            if h["payment"]["kind"] == "subscription"]
    api = [h["payment"] for h in store["reservations"].values() if h["payment"]["kind"] == "api"]
    claude = store["subscriptions"]["claude"]
    assert claude["tokens_used_month"] == sum(p["tokens"] for p in subs)
    assert claude["tokens_used_today"] == claude["tokens_used_month"]
    assert store["api_budget"]["spent_usd"] == pytest.approx(
        sum(p["cost_usd"] for p in api), abs=1e-9
    )


# -- SIGKILL mid-load ---------------------------------------------------------------


def test_sigkill_mid_load_then_restart_and_redelivery(
    github: tuple[GitHubStandIn, StandInServer], tmp_path: Path
) -> None:
    standin = github[0]
    numbers = [issue_number() for _ in range(48)]
    for i, number in enumerate(numbers):
        labels, body = KINDS[i % len(KINDS)]
        new_issue(standin, number, labels, body)
    sends = [(n, event(standin, "opened", n), f"kill-{n}") for n in numbers]
    first = start_server(tmp_path, app_env(github), "killed")
    answered: dict[int, requests.Response] = {}
    lock = threading.Lock()
    killed = threading.Event()

    def send(item: tuple[int, dict[str, Any], str]) -> None:
        number, payload, delivery = item
        if killed.is_set():
            return
        try:
            response = deliver(first, payload, delivery)
        except requests.RequestException:
            return  # the server died under it
        with lock:
            answered[number] = response
            if len(answered) == 12:
                os.killpg(first.process.pid, signal.SIGKILL)  # master and workers at once
                killed.set()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, sends))
    first.process.wait(timeout=10)
    assert killed.is_set()
    ok = {n for n, r in answered.items() if 200 <= r.status_code < 300}
    assert len(ok) >= 12

    # The store is a valid document, and every delivery answered 2xx is done.
    text = first.state.read_text(encoding="utf-8")
    parse_state(text, str(first.state))
    store = json.loads(text)
    for number in ok:
        assert answered[number].json()["status"] == "assigned"
        assigned_everywhere(standin, store, number, answered[number].json()["model"])
    charged_once(store)

    # Restart on the same store; GitHub redelivers what failed, and (say, by
    # hand) what did not: the first are done once, the others are duplicates.
    second = start_server(tmp_path, app_env(github), "killed")
    try:
        with ThreadPoolExecutor(8) as pool:
            again = dict(zip(numbers, pool.map(
                lambda item: deliver(second, item[1], item[2]), sends), strict=True))
    finally:
        stop_server(second)
    for number, response in again.items():
        assert response.status_code == 200, response.text
        # One killed after its record was written but before it answered is
        # done, and so a duplicate too.
        expected = {"duplicate"} if number in ok else {"assigned", "duplicate"}
        assert response.json()["status"] in expected
    store = second.store()
    for number in numbers:
        assigned_everywhere(standin, store, number)
    charged_once(store)
    assert len(standin.calls("POST", f"/repos/{REPO}/issues/*/comments")) >= len(numbers)


# -- GitHub failing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "retry_after", "min_seconds"),
    [("500", None, 0.45), ("502", None, 0.45), ("secondary_rate_limit", 1, 2.0)],
)
def test_github_errors_are_retried_then_5xx_then_a_redelivery_succeeds(
    server: Server, standin: GitHubStandIn, kind: str, retry_after: int | None,
    min_seconds: float,
) -> None:
    tries, elapsed = fails_then_redelivery_succeeds(
        server, standin, kind, retry_after=retry_after
    )
    # Three tries, with back-off (or GitHub's Retry-After) between them.
    assert tries == [
        403 if kind == "secondary_rate_limit" else int(kind)
    ] * 3
    assert min_seconds <= elapsed < 9


def test_a_short_rate_limit_is_waited_out_inside_the_delivery(
    server: Server, standin: GitHubStandIn
) -> None:
    number = issue_number()
    new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
    standin.inject_fault(f"/repos/{REPO}/issues/{number}/comments", "secondary_rate_limit",
                         times=1, method="POST", retry_after=1)
    started = time.monotonic()
    response = deliver(server, event(standin, "opened", number), str(uuid.uuid4()))
    assert (response.status_code, response.json()["status"]) == (200, "assigned")
    assert 1.0 <= time.monotonic() - started < 9
    assigned_everywhere(standin, server.store(), number)


def test_a_chain_of_slow_calls_ends_inside_githubs_window(
    server: Server, standin: GitHubStandIn
) -> None:
    """Every call answers, but after 2.5 s: the list of comments, the comment,
    the label, the label on the issue would take 10 s and more. The delivery's
    budget stops it inside GitHub's 10 s; the store is as before; once GitHub
    is fast again, the redelivery finishes the job with one comment."""
    number = issue_number()
    new_issue(standin, number, ["P1", "security", "hotfix"], BIG_HOTFIX)
    payload, delivery = event(standin, "opened", number), str(uuid.uuid4())
    before = raw(server)
    standin.inject_fault(f"/repos/{REPO}/*", "hang", times=None, hang_seconds=2.5,
                         then_status=None)
    response, elapsed = deliver_under_faults(server, standin, payload, delivery)
    assert response.status_code == 503, response.text
    assert elapsed < 9.0, f"answered after {elapsed:.1f}s"
    assert elapsed > DELIVERY_BUDGET - 3.0
    assert raw(server) == before
    time.sleep(0.5)  # the stand-in finishes what it was doing slowly

    again = deliver(server, payload, delivery)
    assert (again.status_code, again.json()["status"]) == (200, "assigned"), again.text
    assigned_everywhere(standin, server.store(), number, again.json()["model"])


def test_a_github_that_does_not_answer_times_out_retries_then_5xx(
    server: Server, standin: GitHubStandIn
) -> None:
    """The list of comments hangs for longer than the 3 s request timeout,
    every time: each try times out, is retried (a GET) within the delivery's
    budget, and the delivery answers 503 inside GitHub's 10 s with the store
    as before; the redelivery, once GitHub answers, succeeds."""
    tries, elapsed = fails_then_redelivery_succeeds(
        server, standin, "hang", hang_seconds=5.0
    )
    assert elapsed < 9.5, f"answered after {elapsed:.1f}s"
    assert len(tries) >= 2  # timed out, then tried again


def fails_then_redelivery_succeeds(
    server: Server, standin: GitHubStandIn, kind: str, **fault: Any
) -> tuple[list[int], float]:
    """A new issue's delivery while the list of its comments (its first call,
    a GET, retried) fails with ``kind`` every time: 503, the store as before,
    nothing written; then GitHub recovers and the redelivery assigns. Returns
    the statuses of the failed delivery's tries and how long it took."""
    number = issue_number()
    new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
    payload, delivery = event(standin, "opened", number), str(uuid.uuid4())
    comments = f"/repos/{REPO}/issues/{number}/comments"
    before = raw(server)
    standin.inject_fault(comments, kind, times=None, method="GET", **fault)
    response, elapsed = deliver_under_faults(server, standin, payload, delivery)
    assert response.status_code == 503, response.text
    assert response.json()["outcome"] == "github_unavailable"
    assert raw(server) == before
    assert model_labels(standin, number) == [] and bot_comments(standin, number) == []
    tries = [c.status for c in standin.calls("GET", comments)]

    again = deliver(server, payload, delivery)
    assert (again.status_code, again.json()["status"]) == (200, "assigned"), again.text
    assigned_everywhere(standin, server.store(), number, again.json()["model"])
    return tries, elapsed


# -- a corrupt store at start ---------------------------------------------------------------


VALID = json.dumps({"version": 1, "subscriptions": {}, "api_budget": {
    "monthly_limit_usd": 100.0, "spent_usd": 0.0, "reset_date": "2026-12-01T00:00:00Z"}})
CORRUPT = {
    "truncated": (VALID[: len(VALID) // 2].encode(), "not valid JSON"),
    "garbage": (b"\x00\x01 not json at all", "not valid JSON"),
    "negative spend": (VALID.replace('"spent_usd": 0.0', '"spent_usd": "lots"').encode(),
                       "api_budget.spent_usd"),
    "not utf-8": (b"\xff\xfe{\x00", "cannot read"),
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_a_corrupt_store_stops_the_server_and_is_left_as_it_is(
    tmp_path: Path, name: str
) -> None:
    content, says = CORRUPT[name]
    state = tmp_path / "data" / "state.json"
    state.parent.mkdir()
    state.write_bytes(content)
    stamp = state.stat().st_mtime_ns
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PORT": str(free_port()),
        "MODEL_ASSIGNER_STATE": str(state),
        "MODEL_ASSIGNER_CONFIG": str(seed_strategy_config()),
        "GITHUB_WEBHOOK_SECRET": SECRET,
        **shifted_clock_env(),
    }
    result = subprocess.run(["sh", "-c", loopback_command()], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if "cannot start" in line]
    assert lines, result.stdout + result.stderr
    assert str(state) in lines[0] and says in lines[0], lines[0]
    assert state.read_bytes() == content
    assert state.stat().st_mtime_ns == stamp
