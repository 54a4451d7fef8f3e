"""The command-line tests' fixtures: a store with two reservations, named by
MODEL_ASSIGNER_STATE as the server's would be."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.state import Reservation
from model_assigner.core.types import Payment
from tests.bot.cli.support import NOW


@pytest.fixture
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state.json"
    monkeypatch.setenv("MODEL_ASSIGNER_STATE", str(path))
    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    store = Store(path, load_engine_config().quotas, lambda: NOW)
    with store.transaction(NOW) as state:
        state.reserve(
            "octo/repo#1",
            Reservation(
                model="sonnet-4.5",
                payment=Payment(kind="subscription", family="claude", tokens=31_000, cost_usd=0),
                charged_at=NOW,
            ),
        )
        state.reserve(
            "octo/repo#2",
            Reservation(
                model="deepseek-v3",
                payment=Payment(kind="api", family="deepseek", tokens=10_000, cost_usd=1.25),
                charged_at=NOW,
                override_by="octocat",
            ),
        )
    return path
