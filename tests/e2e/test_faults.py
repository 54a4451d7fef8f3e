"""Faults, end to end: the real gunicorn server from the Procfile (2 workers)
against the GitHub stand-in (a thread of this process), on loopback.

- SIGKILL of the whole server in the middle of a burst, restart: every
  delivery acknowledged is decided exactly once, without a redelivery.
- GitHub answering 500, 502, a rate limit, or answering so slowly (or not
  at all) that a delivery could not be done inside GitHub's 10 s: the
  acknowledgement is immediate, and the queue's worker retries until done.
- A corrupt or truncated store at start.

(The store's disk full or not writable, and the clock across midnight and a
reset date, are in tests/bot/store/test_faults.py: they need injected
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

from bench.github_standin import GitHubStandIn, StandInServer
from model_assigner.bot.store.codec import parse_state
from tests.bot.support import (
    BIG_HOTFIX,
    REPO,
    SECRET,
    SMALL_BACKEND,
)
from tests.e2e.support import (
    ROOT,
    WEB_CONCURRENCY,
    Outcome,
    Server,
    app_env,
    assigned_everywhere,
    charged_once,
    event,
    free_port,
    loopback_command,
    new_issue,
    start_server,
    stop_server,
)
from tests.helpers import seed_strategy_config, shifted_clock_env, store_files, store_text

KINDS = [
    (["P0", "security", "hotfix"], BIG_HOTFIX),  # sonnet-4.5, claude subscription
    (["P1", "security", "hotfix"], BIG_HOTFIX),  # deepseek-v3, API budget
    (["P0", "backend"], SMALL_BACKEND),  # glm-4.7, API budget
]


FAULT_SETTINGS = {
    # A retry waits longer than a POST whose answer was lost takes to be
    # done at GitHub (see the not-answering test).
    "MODEL_ASSIGNER_RETRY_BASE_SECONDS": "1.5",
    "MODEL_ASSIGNER_MAX_ATTEMPTS": "4",
    "MODEL_ASSIGNER_SECONDARY_WAIT_SECONDS": "1",
    # Writes paced (as GitHub asks, only faster): a write never follows
    # another within the moment a refusal takes to be recorded.
    "MODEL_ASSIGNER_WRITE_INTERVAL_SECONDS": "0.25",
    # Queue worker threads in each process (the default, said here because
    # the rate-limit test counts them).
    "MODEL_ASSIGNER_QUEUE_WORKERS": "2",
}


@pytest.fixture(scope="module")
def server(
    github: tuple[GitHubStandIn, StandInServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("faults"), app_env(github, **FAULT_SETTINGS),
                           "app")
    try:
        # One delivery first: the store exists, and "as before" means bytes.
        number = issue_number()
        new_issue(github[0], number, ["P0", "backend"], SMALL_BACKEND)
        assert running.deliver(event(github[0], "opened", number), "issues",
                               "warm-up").status_code == 200
        yield running
    finally:
        stop_server(running)


def issue_number() -> int:
    return 10_000 + next(_numbers)


_numbers = iter(range(1_000_000))


def raw(server: Server) -> bytes | None:
    return store_files(server.state)


def deliver(server: Server, payload: dict[str, Any], delivery: str) -> requests.Response:
    """POST only: the acknowledgement."""
    return server.post(payload, delivery=delivery)


def acknowledged_then_decided(
    server: Server, payload: dict[str, Any], delivery: str, timeout: float = 60.0
) -> tuple[float, Outcome]:
    """The acknowledgement's time (it must be a 202, at once), and what the
    delivery came to, once decided (no redelivery)."""
    started = time.monotonic()
    response = deliver(server, payload, delivery)
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    return elapsed, server.outcome(delivery, timeout)


# -- SIGKILL mid-load ---------------------------------------------------------------


def test_sigkill_mid_burst_then_restart_decides_every_acknowledged_delivery_once(
    github: tuple[GitHubStandIn, StandInServer], tmp_path: Path
) -> None:
    """GitHub at 50-100 ms a call; the whole server (master and workers) is
    SIGKILLed while workers are mid-job. After a restart on the same files,
    every delivery that was answered 202 is decided without a redelivery;
    the ones that got no answer are redelivered (as GitHub would show them
    failed); every issue ends with one label, one comment, one reservation."""
    standin = github[0]
    numbers = [issue_number() for _ in range(40)]
    for i, number in enumerate(numbers):
        labels, body = KINDS[i % len(KINDS)]
        new_issue(standin, number, labels, body)
    sends = [(n, event(standin, "opened", n), f"kill-{n}") for n in numbers]
    standin.latency = (0.05, 0.1)
    first = start_server(tmp_path, app_env(github, **FAULT_SETTINGS), "killed")
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

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, sends))
        # Kill while the workers are deciding (some comments written, not all).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(
            standin.calls("POST", f"/repos/{REPO}/issues/*/comments")
        ) < 6:
            time.sleep(0.01)
        os.killpg(first.process.pid, signal.SIGKILL)
        killed.set()
        first.process.wait(timeout=10)
        acknowledged = {n for n, r in answered.items() if r.status_code == 202}
        assert len(acknowledged) == len(numbers)  # every delivery was answered at once
        queue = first.queue()
        left = queue.stats()
        assert left.waiting + left.running > 0, "killed too late: nothing was in flight"

        second = start_server(tmp_path, app_env(github, **FAULT_SETTINGS), "killed")
        try:
            second.drained(timeout=120)
            store = second.store()
        finally:
            stop_server(second)
    finally:
        standin.latency = (0.0, 0.0)
    parse_state(store_text(second.state), str(second.state))
    for number in numbers:
        assigned_everywhere(standin, store, number)
        status, body = queue.outcome(f"kill-{number}") or (0, {})
        assert status == 200 and body["status"] in ("assigned", "duplicate"), body
    charged_once(store)


# -- GitHub failing -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "502"])
def test_github_errors_are_retried_by_the_queue_until_the_issue_is_decided(
    server: Server, standin: GitHubStandIn, kind: str
) -> None:
    """GitHub fails the comment 4 times: urllib3's 2 retries, then the job's
    next attempt; the delivery was acknowledged at once and is decided with
    no redelivery, one comment."""
    number = issue_number()
    new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
    comments = f"/repos/{REPO}/issues/{number}/comments"
    standin.inject_fault(comments, kind, times=4, method="POST")
    try:
        elapsed, outcome = acknowledged_then_decided(
            server, event(standin, "opened", number), str(uuid.uuid4())
        )
    finally:
        standin.clear_faults()
    assert elapsed < 1.0
    assert (outcome.status_code, outcome.json()["status"]) == (200, "assigned")
    assert [c.status for c in standin.calls("POST", comments)] == [int(kind)] * 4 + [201]
    assigned_everywhere(standin, server.store(), number, outcome.json()["model"])


IN_FLIGHT = 0.3  # s: see below
# The threads that call GitHub here: the queue workers of every process (the
# request threads only queue deliveries). Each may hold at most one grant
# given before the refusal was known.
GRANT_HOLDERS = WEB_CONCURRENCY * int(FAULT_SETTINGS["MODEL_ASSIGNER_QUEUE_WORKERS"])


@pytest.mark.parametrize(
    ("kind", "retry_after", "at_least"),
    [("secondary_rate_limit", 2, 2.0), ("secondary_rate_limit", None, 1.0),
     ("primary_rate_limit", 2, 1.0)],
)
def test_a_rate_limit_holds_every_worker_of_the_installation_then_the_jobs_finish(
    server: Server, standin: GitHubStandIn, kind: str, retry_after: int | None,
    at_least: float,
) -> None:
    """The first comment of a burst of 4 issues is refused with a rate limit:
    ``retry-after`` (waited as given), none (the policy's secondary wait,
    1 s here), or ``x-ratelimit-remaining: 0`` (until ``x-ratelimit-reset``).
    No request of the installation is sent until the limit ends, by any
    worker of either process; then every issue is decided, none redelivered."""
    numbers = [issue_number() for _ in range(4)]
    for number in numbers:
        new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
    standin.inject_fault(f"/repos/{REPO}/issues/*/comments", kind, times=1, method="POST",
                         retry_after=retry_after)
    standin.clear_calls()
    try:
        deliveries = {n: str(uuid.uuid4()) for n in numbers}
        for number in numbers:
            assert deliver(server, event(standin, "opened", number),
                           deliveries[number]).status_code == 202
        outcomes = {n: server.outcome(d) for n, d in deliveries.items()}
    finally:
        standin.clear_faults()
    assert all(o.json()["status"] == "assigned" for o in outcomes.values()), outcomes
    calls = standin.calls()
    [refused] = [c for c in calls if c.fault == kind]
    # A request another thread had already been allowed to send when the
    # refusal came back may reach the wire a moment after it (seen at 0.02 s
    # on a loaded 2-core machine): IN_FLIGHT allows for that, but only as
    # many such requests as there are threads that can hold a grant. What
    # must not happen is a request let through
    # after the refusal was known: every later one waits the whole limit.
    # (A limiter that ignored the refusal fails here: the other three issues'
    # comments and labels, paced 0.25 s apart, land inside the limit.)
    repos = [c for c in calls if c.path.startswith("/repos/") and c is not refused]
    in_flight = [c for c in repos
                 if refused.finished < c.started <= refused.finished + IN_FLIGHT]
    assert len(in_flight) <= GRANT_HOLDERS, [
        (c.method, c.path, round(c.started - refused.finished, 3)) for c in in_flight]
    after = [c for c in repos if c.started > refused.finished + IN_FLIGHT]
    assert after, "nothing was sent after the limit"
    early = [(c.method, c.path, round(c.started - refused.finished, 3)) for c in after
             if c.started - refused.finished < at_least - 0.05]
    assert early == [], f"sent before the {at_least} s limit ended"
    for number in numbers:
        assigned_everywhere(standin, server.store(), number, outcomes[number].json()["model"])


def test_a_chain_of_slow_calls_is_acknowledged_at_once_and_finished_later(
    server: Server, standin: GitHubStandIn
) -> None:
    """Every call answers, but after 2.5 s: the calls of one decision add up
    past GitHub's 10 s. The acknowledgement does not wait for them; the job
    finishes with one comment and one label."""
    number = issue_number()
    new_issue(standin, number, ["P1", "security", "hotfix"], BIG_HOTFIX)
    payload, delivery = event(standin, "opened", number), str(uuid.uuid4())
    standin.inject_fault(f"/repos/{REPO}/*", "hang", times=None, hang_seconds=2.5,
                         then_status=None)
    try:
        started = time.monotonic()
        response = deliver(server, payload, delivery)
        assert time.monotonic() - started < 1.0
        assert response.status_code == 202
        outcome = server.outcome(delivery, timeout=60)
        assert time.monotonic() - started > 7.5  # three slow writes at least
    finally:
        standin.clear_faults()
    assert (outcome.status_code, outcome.json()["status"]) == (200, "assigned")
    assigned_everywhere(standin, server.store(), number, outcome.json()["model"])


def test_a_comment_whose_answer_was_lost_is_not_posted_twice(
    server: Server, standin: GitHubStandIn
) -> None:
    """GitHub creates the comment but answers only after the 3 s request
    timeout: the POST is not resent, the attempt fails, and the next one
    (the store remembers that a comment may exist) finds the comment by its
    marker instead of posting a second one."""
    number = issue_number()
    new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
    comments = f"/repos/{REPO}/issues/{number}/comments"
    standin.inject_fault(comments, "hang", times=1, method="POST", hang_seconds=3.5,
                         then_status=None)
    try:
        _, outcome = acknowledged_then_decided(
            server, event(standin, "opened", number), str(uuid.uuid4())
        )
    finally:
        standin.clear_faults()
    assert (outcome.status_code, outcome.json()["status"]) == (200, "assigned")
    assert len(standin.calls("POST", comments)) == 1
    assert len(standin.calls("GET", comments)) >= 1  # found by its marker
    assigned_everywhere(standin, server.store(), number, outcome.json()["model"])


def test_a_github_that_does_not_answer_is_retried_until_it_does(
    server: Server, standin: GitHubStandIn
) -> None:
    """The issue's comments list (an issue with a person's comment) hangs
    past the 3 s timeout three times: urllib3 retries the GET, the job
    retries; the delivery, acknowledged at once, is decided once GitHub
    answers."""
    number = issue_number()
    new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
    standin.add_comment(REPO, number, "Me too")
    comments = f"/repos/{REPO}/issues/{number}/comments"
    standin.inject_fault(comments, "hang", times=3, method="GET", hang_seconds=5.0)
    try:
        elapsed, outcome = acknowledged_then_decided(
            server, event(standin, "opened", number), str(uuid.uuid4()), timeout=90
        )
    finally:
        standin.clear_faults()
    assert elapsed < 1.0
    assert (outcome.status_code, outcome.json()["status"]) == (200, "assigned")
    assert [c.fault for c in standin.calls("GET", comments)][:3] == ["hang"] * 3
    assigned_everywhere(standin, server.store(), number, outcome.json()["model"])


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
