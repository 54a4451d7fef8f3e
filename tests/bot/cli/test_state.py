"""`assign`, `config --json` and `quota` start from the live store (--state):
what they print is what the App would do now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from model_assigner.bot.cli import main
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.state import Reservation
from model_assigner.core.types import Observation, Payment
from tests.helpers import EXAMPLES_DIR

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
SEED_FILE = EXAMPLES_DIR / "seed-task.yaml"


@pytest.fixture
def live_store(tmp_path: Path) -> Path:
    """A store whose claude quota is used up (a reservation of all 5M
    tokens), with $99 of the API budget spent and 30 issues seen."""
    path = tmp_path / "state.json"
    store = Store(path, load_engine_config().quotas, lambda: NOW)
    with store.transaction(NOW) as state:
        state.reserve("octo/repo#1", Reservation(
            model="sonnet-4.5",
            payment=Payment(kind="subscription", family="claude", tokens=5_000_000, cost_usd=0),
            charged_at=NOW,
        ))
        state.api_budget.spent_usd = 99.0
        for n in range(30):
            state.seen[f"octo/repo#{n + 2}"] = Observation(
                value=80, domain="backend", input_tokens=27_500, output_tokens=3_500,
                seen_at=NOW - timedelta(days=2, hours=n),
            )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_assign_from_the_store_sees_its_quota_used(
    live_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed's example gets sonnet on the claude subscription from the
    config's quotas; with the store's used-up quota, not."""
    args = ["assign", str(SEED_FILE), "--json", "--now", NOW.isoformat(),
            "--strategy", "maximize_subscription_usage"]
    (fresh,) = json.loads(run(capsys, *args))
    assert fresh["paid_by"] == "subscription:claude"
    (live,) = json.loads(run(capsys, *args, "--state", str(live_store)))
    assert live["paid_by"] != "subscription:claude"


def test_assign_online_from_the_store_learns_from_its_history(
    live_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["assign", str(SEED_FILE), "--json", "--now", NOW.isoformat(), "--strategy", "online"]
    (fresh,) = json.loads(run(capsys, *args))
    assert "too few issues seen yet" in fresh["reason"]
    (live,) = json.loads(run(capsys, *args, "--state", str(live_store)))
    assert "too few issues seen yet" not in live["reason"]


def test_config_json_from_the_store(live_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["config", "--json", "--now", NOW.isoformat()]
    fresh = json.loads(run(capsys, *args))
    assert fresh["subscriptions"][0]["tokens_used_month"] == 0
    live = json.loads(run(capsys, *args, "--state", str(live_store)))
    assert live["subscriptions"][0]["tokens_used_month"] == 5_000_000
    assert live["api_budget"]["spent_usd"] == pytest.approx(99.0)


def test_quota_shows_the_resets_due_now(
    live_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the monthly reset the store has not written yet, quota shows
    what the App would see: nothing used."""
    before = json.loads(run(capsys, "quota", "--json", "--state", str(live_store),
                            "--now", NOW.isoformat()))
    assert before["subscriptions"]["claude"]["tokens_used_month"] == 5_000_000
    after = json.loads(run(capsys, "quota", "--json", "--state", str(live_store),
                           "--now", "2026-12-02T00:00:00Z"))
    assert after["subscriptions"]["claude"]["tokens_used_month"] == 0
    assert after["api_budget"]["spent_usd"] == 0


def test_a_missing_store_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["assign", str(SEED_FILE), "--state", str(tmp_path / "none.json")]) == 2
    assert "no such store" in capsys.readouterr().err
