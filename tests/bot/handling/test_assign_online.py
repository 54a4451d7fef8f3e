"""The App's default strategy, online, through the webhook: each decision is
recorded in the store's history, the issues it defers wait to be decided
again, and the prices it learns from that history change later decisions."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import responses

from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.web.app import create_app
from tests.bot.handler_support import (
    DEFERRED_COLOR,
    DEFERRED_DESCRIPTION,
    KEY,
    NOW,
    P0_SMALL,
    REPO,
    Bot,
    closed_small,
    expect_new_assignment,
    make_settings,
)
from tests.bot.rest_mock import RestMock
from tests.bot.support import webhook
from tests.helpers import CONFIG_DIR


@pytest.fixture
def bot(tmp_path: Path, rsps: responses.RequestsMock) -> Bot:
    """As tests/bot/conftest.py's, on the shipped config/ (quota_strategy: online)."""
    settings = make_settings(tmp_path)
    settings = dataclasses.replace(settings, config_dir=CONFIG_DIR)
    clock = [NOW]
    app = create_app(settings, clock=lambda: clock[0])
    gh = RestMock(rsps)
    gh.app()
    gh.token()
    gh.workspace()
    store = Store(settings.state_path, load_engine_config(CONFIG_DIR).quotas)
    return Bot(app.test_client(), gh, store, settings.state_path, clock)


@pytest.fixture
def rsps() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_the_shipped_strategy_is_online() -> None:
    assert load_engine_config(CONFIG_DIR).scoring.quota_strategy == "online"


def test_a_decision_joins_the_history_and_a_deferral_waits(bot: Bot) -> None:
    low = {"labels": ["P4", "backend"], "body": "Estimated files: 1\nEstimated LOC: 10",
           "milestone_due_on": None}
    bot.gh.issue(webhook("issues.opened", **low)["issue"])
    bot.gh.comments(1, [])
    bot.gh.create_comment(1)
    bot.gh.create_label("model:deferred", DEFERRED_COLOR, DEFERRED_DESCRIPTION)
    bot.gh.add_labels(1, ["model:deferred"])

    status, answer = bot.deliver(webhook("issues.opened", **low), delivery="d-1")

    assert (status, answer["status"]) == (200, "deferred"), answer
    state = bot.state()
    assert set(state.seen) == {KEY} and set(state.deferred) == {KEY}
    assert state.seen[KEY].value == pytest.approx(answer["value_score"])
    assert state.seen[KEY].seen_at == NOW

    # closed as not planned: no longer waiting, still part of the history
    assert bot.deliver(closed_small("not_planned"))[1]["status"] == "released"
    state = bot.state()
    assert set(state.seen) == {KEY} and not state.deferred


def test_an_assigned_issue_is_not_waiting(bot: Bot) -> None:
    bot.gh.issue(webhook("issues.opened", **P0_SMALL)["issue"])
    expect_new_assignment(bot.gh, "deepseek-v3")  # a cold start: as minimize_cost decides

    status, answer = bot.deliver(webhook("issues.opened", **P0_SMALL), delivery="d-1")

    assert (status, answer["model"]) == (200, "deepseek-v3"), answer
    state = bot.state()
    assert set(state.seen) == {KEY} and not state.deferred
    assert f"{REPO}#1" == KEY
