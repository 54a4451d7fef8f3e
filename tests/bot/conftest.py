"""Fixtures for the bot's unit tests: GitHub's example webhook payloads and the
label settings from config/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from flask.testing import FlaskClient

from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.github.repo_config import LabelsConfig, load_labels_config
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.web.app import create_app
from tests.bot.handler_support import NOW, Bot, make_settings
from tests.bot.hostile_support import AnyGitHub
from tests.bot.hostile_support import make_settings as hostile_settings
from tests.bot.rest_mock import RestMock
from tests.bot.support import PayloadFactory, webhook_payload
from tests.helpers import CONFIG_DIR


@pytest.fixture
def webhook() -> PayloadFactory:
    return webhook_payload


@pytest.fixture(scope="session")
def labels_config() -> LabelsConfig:
    return load_labels_config(CONFIG_DIR)


# The webhook app with GitHub answered by `responses` (tests/bot/handler_support.py).


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def bot(tmp_path: Path, rsps: responses.RequestsMock) -> Bot:
    settings = make_settings(tmp_path)
    clock = [NOW]
    app = create_app(settings, clock=lambda: clock[0])
    gh = RestMock(rsps)
    gh.app()
    gh.token()
    gh.workspace()
    gh.permission("write")  # everyone may choose a model here (issue 12's tests: not so)
    store = Store(settings.state_path, load_engine_config(CONFIG_DIR).quotas, lambda: clock[0])
    return Bot(app.test_client(), gh, store, settings.state_path, clock)


# Hostile input: the app in dry-run, and with any GitHub call answered
# (tests/bot/hostile_support.py).


@pytest.fixture(params=["dry-run", "github"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FlaskClient, Path]]:
    dry_run = request.param == "dry-run"
    app_settings = hostile_settings(tmp_path, dry_run)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        if not dry_run:
            AnyGitHub(rsps)
        yield create_app(app_settings).test_client(), app_settings.state_path
