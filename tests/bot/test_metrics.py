"""Prometheus metrics read from the store: what a scrape shows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

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


def test_a_half_written_metrics_file_is_read_again_then_503_never_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scrape that meets a worker's freshly created counters file before its
    header is written: prometheus-client raises struct.error on it. Read
    again; while it stays that way, a plain error the route answers 503."""
    from bot.metrics import ENV, metrics

    folder = tmp_path / "metrics"
    folder.mkdir()
    monkeypatch.setenv(ENV, str(folder))
    store = Store(tmp_path / "state.json", load_engine_config().quotas)
    (folder / "counter_4242.db").write_bytes(b"\x00\x00")  # header not written yet
    with pytest.raises(ValueError, match="being written"):
        metrics().exposition(store)
    (folder / "counter_4242.db").unlink()
    data, _ = metrics().exposition(store)
    assert b"model_assigner_api_budget_left_usd" in data
