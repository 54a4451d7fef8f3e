"""Prometheus metrics read from the store: what a scrape shows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.store import Store
from core.loader import load_engine_config

NOW = datetime.now(UTC).replace(microsecond=0)


def test_metrics_have_no_float_noise(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from bot.metrics import QuotaCollector

    store = Store(tmp_path / "state.json", load_engine_config().quotas)
    with store.transaction(NOW) as state:
        state.api_budget.spent_usd = 0.0003 + 0.0239
    registry = CollectorRegistry()
    registry.register(QuotaCollector(store))
    text = generate_latest(registry).decode()
    assert "model_assigner_api_budget_spent_usd 0.0242\n" in text
    assert "model_assigner_api_budget_left_usd 99.9758\n" in text
    assert "00000000" not in text
