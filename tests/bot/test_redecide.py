"""The deferred issues the queue's catch-up decides again (bot/redecide.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import build_handler
from bot.handler import Handler
from bot.redecide import due_issue_keys
from bot.settings import Settings
from bot.store import State
from core.types import Observation
from tests.bot.support import SECRET
from tests.helpers import CONFIG_DIR, seed_strategy_config

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
NEAR_RESET = datetime(2026, 12, 1, tzinfo=UTC) - timedelta(hours=1)
KEY = "octo/repo#3"


def handler_at(
    tmp_path: Path, clock: list[datetime], config_dir: Path = CONFIG_DIR
) -> Handler:
    settings = Settings(app_id=None, private_key=None, webhook_secret=SECRET,
                        api_url="https://api.github.com", state_path=tmp_path / "state.json",
                        config_dir=config_dir, bot_login=None)
    handler, _ = build_handler(settings, clock=lambda: clock[0])
    return handler


def nearly_spent(state: State) -> None:
    """40 issues worth 90 seen this month, the budget nearly gone, and one
    low-value issue deferred."""
    state.subscriptions["claude"].tokens_used_month = 4_990_000
    state.api_budget.spent_usd = 99.95
    for n in range(40):
        state.seen[f"other/repo#{n}"] = Observation(
            value=90, domain="backend", input_tokens=7_500, output_tokens=1_250,
            seen_at=NOW - timedelta(days=5, hours=n))
    waiting = Observation(value=5.5, domain="backend", input_tokens=7_500, output_tokens=1_250,
                          seen_at=NOW - timedelta(days=1))
    state.seen[KEY] = waiting
    state.deferred[KEY] = waiting


def test_a_deferred_issue_is_due_once_its_price_has_fallen(tmp_path: Path) -> None:
    clock = [NOW]
    handler = handler_at(tmp_path, clock)
    assert due_issue_keys(handler) == set()  # nothing deferred yet
    handler.store.apply(NOW, nearly_spent)
    assert due_issue_keys(handler) == set()  # mid-month: the price is too high
    clock[0] = NEAR_RESET
    assert due_issue_keys(handler) == {KEY}  # the hours before the reset: free


def test_only_the_online_strategy_re_decides(tmp_path: Path) -> None:
    clock = [NEAR_RESET]
    handler = handler_at(tmp_path, clock, seed_strategy_config())
    handler.store.apply(NOW, nearly_spent)
    assert due_issue_keys(handler) == set()
