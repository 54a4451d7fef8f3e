"""Fixtures for the bot's unit tests: GitHub's example webhook payloads and the
label settings from config/."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from model_assigner.bot.github.repo_config import LabelsConfig, load_labels_config
from tests.helpers import CONFIG_DIR, REPO_ROOT

WEBHOOKS_DIR = REPO_ROOT / "tests" / "fixtures" / "github" / "webhooks"
REST_EXAMPLES_DIR = REPO_ROOT / "tests" / "fixtures" / "github" / "rest-examples"

Payload = dict[str, Any]
PayloadFactory = Callable[[str], Payload]


@cache
def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def webhook_payload(name: str) -> Payload:
    """A fresh deep copy of ``tests/fixtures/github/webhooks/<name>.json``, so a
    test may change it freely."""
    data: Payload = copy.deepcopy(_read_json(WEBHOOKS_DIR / f"{name}.json"))
    return data


def rest_example(name: str) -> Payload:
    """The documented example answer of a REST operation (``issues/get``)."""
    data: Payload = copy.deepcopy(_read_json(REST_EXAMPLES_DIR / f"{name}.json")["value"])
    return data


@pytest.fixture
def webhook() -> PayloadFactory:
    return webhook_payload


@pytest.fixture(scope="session")
def labels_config() -> LabelsConfig:
    return load_labels_config(CONFIG_DIR)
