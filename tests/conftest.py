"""Shared fixtures: the real config loaded once, a fixed clock, task and ledger
factories, and a writable copy of config/."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from core.config import EngineConfig, ScoringConfig
from core.loader import load_engine_config
from core.types import Model
from tests.helpers import (
    CONFIG_DIR,
    NOW,
    LedgerFactory,
    TaskFactory,
    build_ledger,
    build_task,
)


@pytest.fixture(scope="session")
def engine_config() -> EngineConfig:
    return load_engine_config(CONFIG_DIR)


@pytest.fixture(scope="session")
def scoring(engine_config: EngineConfig) -> ScoringConfig:
    return engine_config.scoring


@pytest.fixture(scope="session")
def models(engine_config: EngineConfig) -> list[Model]:
    return engine_config.models


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def make_task() -> TaskFactory:
    return build_task


@pytest.fixture
def ledger() -> LedgerFactory:
    return build_ledger


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    """A writable copy of config/ for tests that edit the YAML."""
    folder = tmp_path / "config"
    folder.mkdir()
    for source in CONFIG_DIR.glob("*.yaml"):
        (folder / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return folder
