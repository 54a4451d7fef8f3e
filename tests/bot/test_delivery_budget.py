"""The per-delivery time budget (bot/deadline.py): every GitHub request's
timeout is cut to what is left of it, no retry or back-off starts that would
not fit, so a delivery ends inside GitHub's 10 s whatever GitHub does. Over
real HTTP against the GitHub stand-in (a thread), with budgets of a second
or two instead of 8 (tests/e2e/test_faults.py has the real one)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import model_assigner.bot.deadline as deadline
from bench.github_standin import GitHubStandIn, StandInServer
from model_assigner.bot.github.api import GitHubApp, InstallationGateway
from model_assigner.bot.github.gateway import GitHubUnavailable
from model_assigner.bot.github.retry import BudgetTimeout
from model_assigner.bot.settings import Settings
from model_assigner.bot.web.app import create_app
from tests.bot.support import (
    APP_ID,
    INSTALLATION,
    REPO,
    SECRET,
    SMALL_BACKEND,
    app_key,
    delivery_headers,
    encode,
    webhook,
)
from tests.helpers import seed_strategy_config, store_text


def settings_for(api_url: str, tmp: Path) -> Settings:
    return Settings(
        app_id=APP_ID,
        private_key=app_key().private_pem,
        webhook_secret=SECRET,
        api_url=api_url,
        state_path=tmp / "data" / "state.json",
        config_dir=seed_strategy_config(),
        bot_login=None,
        inline_delivery=True,  # decided inside the request (unit tests)
    )


@pytest.fixture
def standin() -> Iterator[tuple[GitHubStandIn, StandInServer]]:
    fake = GitHubStandIn(APP_ID, app_key().public_pem)
    fake.add_repo(REPO, installation_id=INSTALLATION, files=5, default_branch="master")
    fake.add_issue(REPO, 1, title="t", labels=["P0", "backend"], body=SMALL_BACKEND)
    server = StandInServer(fake).start()
    try:
        yield fake, server
    finally:
        server.stop()


@pytest.fixture
def gateway(standin: tuple[GitHubStandIn, StandInServer], tmp_path: Path) -> InstallationGateway:
    fake, server = standin
    live = GitHubApp(settings_for(server.url, tmp_path)).installation(INSTALLATION)
    live.get_issue(REPO, 1, {})  # mint the token first
    fake.clear_calls()
    return live


# -- the budget itself ----------------------------------------------------------------------


def test_no_budget_outside_a_delivery() -> None:
    assert deadline.remaining() == math.inf
    timeout = BudgetTimeout(3).clone()
    assert (timeout.connect_timeout, timeout.read_timeout) == (3.0, 3.0)


def test_budgets_nest_to_the_earlier_deadline() -> None:
    with deadline.delivery_budget(5.0):
        assert 4.9 < deadline.remaining() <= 5.0
        with deadline.delivery_budget(60.0):
            assert deadline.remaining() <= 5.0
        with deadline.delivery_budget(1.0):
            assert deadline.remaining() <= 1.0
            timeout = BudgetTimeout(3).clone()
            assert timeout.read_timeout is not None and timeout.read_timeout <= 1.0
        assert deadline.remaining() > 4.0
    assert deadline.remaining() == math.inf


def test_the_budget_is_per_thread() -> None:
    import threading

    seen: list[float] = []
    with deadline.delivery_budget(1.0):
        thread = threading.Thread(target=lambda: seen.append(deadline.remaining()))
        thread.start()
        thread.join()
    assert seen == [math.inf]


# -- GitHub slow or limiting --------------------------------------------------------------


def test_a_hanging_request_stops_at_the_budget_not_after_three_timeouts(
    standin: tuple[GitHubStandIn, StandInServer], gateway: InstallationGateway
) -> None:
    fake, _ = standin
    fake.inject_fault(f"/repos/{REPO}/issues/1", "hang", times=None, hang_seconds=10)
    started = time.monotonic()
    with deadline.delivery_budget(1.5), pytest.raises(GitHubUnavailable, match="budget"):
        gateway.get_issue(REPO, 1, {})
    elapsed = time.monotonic() - started
    assert 1.3 < elapsed < 2.0  # one attempt cut to the budget, not 3 x 3 s
    assert len(fake.calls()) == 1


def test_a_retry_that_would_not_fit_is_not_made(
    standin: tuple[GitHubStandIn, StandInServer], gateway: InstallationGateway
) -> None:
    fake, _ = standin
    fake.inject_fault(f"/repos/{REPO}/issues/1", "secondary_rate_limit", retry_after=1)
    started = time.monotonic()
    with deadline.delivery_budget(1.2), pytest.raises(GitHubUnavailable, match="Retry-After"):
        gateway.get_issue(REPO, 1, {})
    assert time.monotonic() - started < 0.5, "no use waiting 1 s for a retry with 0.7 s left"
    assert len(fake.calls()) == 1


def test_retries_and_waits_that_fit_are_made(
    standin: tuple[GitHubStandIn, StandInServer], gateway: InstallationGateway
) -> None:
    fake, _ = standin
    fake.inject_fault(f"/repos/{REPO}/issues/1", "502", times=2)
    with deadline.delivery_budget(4.0):
        assert gateway.get_issue(REPO, 1, {})["number"] == 1
    fake.clear_calls()
    fake.inject_fault(f"/repos/{REPO}/issues/1", "secondary_rate_limit", retry_after=1)
    started = time.monotonic()
    with deadline.delivery_budget(4.0):
        assert gateway.get_issue(REPO, 1, {})["number"] == 1
    assert time.monotonic() - started >= 0.9
    assert [c.status for c in fake.calls()] == [403, 200]


def test_a_delivery_whose_calls_add_up_past_the_budget_answers_in_time(
    standin: tuple[GitHubStandIn, StandInServer], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each call answers, slowly (0.7 s): the comments, the comment, the
    label, the label on the issue add up past a 2 s budget. The delivery
    answers 503 when the budget is spent, the store as it was; later, with
    GitHub fast again, the same delivery is done, with one comment."""
    fake, server = standin
    monkeypatch.setattr(deadline, "DELIVERY_BUDGET", 2.0)
    client = create_app(settings_for(server.url, tmp_path)).test_client()
    state = tmp_path / "data" / "state.json"

    def deliver() -> tuple[int, float]:
        payload = webhook("issues.opened", base=server.url)
        payload["issue"] = fake.issue_json(REPO, 1, server.url)
        body = encode(payload)
        started = time.monotonic()
        response = client.post("/webhook", data=body,
                               headers=delivery_headers(body, delivery="slow-1"))
        return response.status_code, time.monotonic() - started

    assert client.get("/healthz").status_code == 200
    fake.inject_fault(f"/repos/{REPO}/*", "hang", times=None, hang_seconds=0.7,
                      then_status=None)
    status, elapsed = deliver()
    fake.clear_faults()
    assert status == 503
    assert 1.4 < elapsed < 2.4
    if state.exists():  # the store as before: nothing reserved, nothing handled
        saved = json.loads(store_text(state))
        assert saved["reservations"] == {} and saved["deliveries"] == {}

    time.sleep(0.8)  # the stand-in finishes the slow calls it was making
    status, _ = deliver()
    assert status == 200
    assert len([c for c in fake.comments_of(REPO, 1)]) == 1
    assert [n for n in fake.labels_of(REPO, 1) if n.startswith("model:")] == ["model:glm-4.7"]
