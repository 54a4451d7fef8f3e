"""End to end on PostgreSQL: two real servers (two gunicorn masters, each
the Procfile's web: line, on two ports) on one database, with the GitHub
stand-in. Deliveries are spread over both, including the opened + labeled +
milestoned burst of each issue split between them; then one server is
SIGKILLed in the middle of a burst and the other goes on: nothing is lost.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from bench.github_standin import GitHubStandIn, StandInServer
from tests.bot.support import BIG_HOTFIX, REPO, SMALL_BACKEND
from tests.e2e.support import (
    Server,
    app_env,
    bot_comments,
    event,
    model_labels,
    new_issue,
    start_server,
    stop_server,
)

KINDS = [(["P0", "security", "hotfix"], BIG_HOTFIX), (["P1", "security", "hotfix"], BIG_HOTFIX),
         (["P0", "backend"], SMALL_BACKEND)]


@pytest.fixture
def servers(github: tuple[GitHubStandIn, StandInServer], pg_url: str,
            tmp_path: Path) -> Iterator[list[Server]]:
    env = app_env(github, MODEL_ASSIGNER_STATE=pg_url, MODEL_ASSIGNER_DB_POOL="6")
    running: list[Server] = []
    try:
        for name in ("a", "b"):
            running.append(start_server(tmp_path, env, name))
        yield running
    finally:
        for server in running:
            stop_server(server)


def burst(standin: GitHubStandIn, number: int) -> list[dict[str, Any]]:
    labels, body = KINDS[number % len(KINDS)]
    new_issue(standin, number, labels, body, milestone_due_on="2026-12-24T00:00:00Z")
    payloads = [event(standin, "opened", number)]
    payloads += [event(standin, "labeled", number, label=name) for name in labels[:3]]
    payloads += [event(standin, "milestoned", number)]
    while len(payloads) < 5:
        payloads.append(event(standin, "labeled", number, label=labels[0]))
    return payloads


def post(server: Server, payload: dict[str, Any], delivery: str) -> int:
    try:
        return server.post(payload, delivery=delivery).status_code
    except requests.RequestException:
        return 0  # the server is gone: GitHub would show it failed and redeliver


def wait_drained(url: str, timeout: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM ma_jobs").fetchone()
            if row and row[0] == 0:
                return
            time.sleep(0.1)
        jobs = conn.execute("SELECT key, state, attempts, last_error FROM ma_jobs").fetchall()
    raise AssertionError(f"queue not drained: {jobs}")


def check_store(url: str, standin: GitHubStandIn, numbers: list[int],
                delivered: list[str]) -> None:
    from model_assigner.bot.config_files import load_engine_config
    from model_assigner.bot.store.postgresql import PgStore
    from tests.helpers import seed_strategy_config

    store = PgStore(url, load_engine_config(seed_strategy_config()).quotas)
    state = store.read()
    store.release()
    for number in numbers:
        assert len(model_labels(standin, number)) == 1, number
        assert len(bot_comments(standin, number)) == 1, number
        assert len(standin.comments_of(REPO, number)) == 1, number
        assert f"{REPO}#{number}" in state.reservations, number
    held = list(state.reservations.values())
    for family, sub in state.subscriptions.items():
        assert sub.tokens_used_month == sum(
            r.tokens for r in held if r.payment.kind == "subscription"
            and r.payment.family == family), family
    assert state.api_budget.spent_usd == pytest.approx(
        sum(r.cost_usd for r in held if r.payment.kind == "api"), abs=1e-9)
    with psycopg.connect(url, autocommit=True) as conn:
        answered = {r[0] for r in conn.execute("SELECT delivery FROM ma_outcomes").fetchall()}
    missing = [d for d in delivered if d not in answered]
    assert not missing, f"acknowledged but never decided: {missing[:5]}"


def test_two_servers_on_one_database_decide_each_issue_once(
    servers: list[Server], github: tuple[GitHubStandIn, StandInServer], pg_url: str
) -> None:
    standin = github[0]
    numbers = list(range(300, 340))  # 40 issues x 5 deliveries = 200
    work: list[tuple[Server, dict[str, Any], str]] = []
    for number in numbers:
        for i, payload in enumerate(burst(standin, number)):
            work.append((servers[i % 2], payload, str(uuid.uuid4())))
    random.Random(11).shuffle(work)
    start = threading.Barrier(16)

    def send(item: tuple[Server, dict[str, Any], str]) -> int:
        return post(*item)

    def first(item: tuple[Server, dict[str, Any], str]) -> int:
        start.wait()
        return send(item)

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(first, work[:16])) + list(pool.map(send, work[16:]))
    assert set(statuses) == {202}, statuses
    wait_drained(pg_url)
    check_store(pg_url, standin, numbers, [d for _, _, d in work])

    # SIGKILL server a in the middle of the next bursts; what it refused or
    # never answered is redelivered to b, as GitHub's redelivery would.
    more = list(range(400, 420))
    second: list[tuple[Server, dict[str, Any], str]] = []
    for number in more:
        for i, payload in enumerate(burst(standin, number)):
            second.append((servers[i % 2], payload, str(uuid.uuid4())))
    killed = threading.Event()

    def send_or_kill(index: int) -> tuple[int, tuple[Server, dict[str, Any], str]]:
        item = second[index]
        if index == len(second) // 3 and not killed.is_set():
            killed.set()
            os.killpg(servers[0].process.pid, signal.SIGKILL)
        return post(*item), item

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send_or_kill, range(len(second))))
    servers[0].process.wait(10)
    acknowledged = [item[2] for status, item in results if status == 202]
    for status, (_, payload, delivery) in results:
        if status != 202:
            assert post(servers[1], payload, delivery) in (200, 202)
            acknowledged.append(delivery)
    assert any(status != 202 for status, _ in results), "the kill must land mid-burst"
    wait_drained(pg_url)
    check_store(pg_url, standin, numbers + more, acknowledged)
