"""Shared fixtures: the real config loaded once, a fixed clock, task and ledger
factories, and a writable copy of config/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from model_assigner.bot.config_files import load_engine_config
from model_assigner.core.config import EngineConfig, ScoringConfig
from model_assigner.core.types import Model
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


def pytest_configure(config: pytest.Config) -> None:
    """``MODEL_ASSIGNER_TEST_CLOCK=<ISO 8601>`` runs the tests with the wall
    clock moved to that moment (and ticking on from it): CI runs the suite so
    under far-apart dates to show that no test depends on today's date. The
    Python processes the tests start (servers, the GitHub stand-in) move by
    the same offset, through tests/shifted_clock/sitecustomize.py. Monotonic
    time is left alone, so timeouts still measure real time."""
    moment = os.environ.get("MODEL_ASSIGNER_TEST_CLOCK")
    if not moment:
        return
    import time

    import time_machine

    target = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    os.environ["MODEL_ASSIGNER_TEST_CLOCK_OFFSET"] = str(target.timestamp() - time.time())
    shim = str(Path(__file__).parent / "shifted_clock")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (shim, os.environ.get("PYTHONPATH", "")) if p
    )
    traveller = time_machine.travel(target, tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this session (tests/pg_support.py)."""
    from tests.pg_support import session_database

    yield from session_database()


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's database, its tables emptied: a fresh store."""
    from model_assigner.bot.pg import Database
    from model_assigner.bot.store.pg_schema import migrate
    from tests.pg_support import empty_tables

    db = Database(pg_database, pool_size=1)
    try:
        migrate(db)
    finally:
        db.release()
    empty_tables(pg_database)
    return pg_database
