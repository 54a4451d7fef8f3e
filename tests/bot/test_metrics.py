"""Prometheus metrics read from the store: what a scrape shows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.store.json_store import Store

NOW = datetime.now(UTC).replace(microsecond=0)


def test_metrics_have_no_float_noise(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from model_assigner.bot.metrics import QuotaCollector

    store = Store(tmp_path / "state.json", load_engine_config().quotas)
    with store.transaction(NOW) as state:
        state.api_budget.spent_usd = 0.0003 + 0.0239
    registry = CollectorRegistry()
    registry.register(QuotaCollector(store))
    text = generate_latest(registry).decode()
    assert "model_assigner_api_budget_spent_usd 0.0242\n" in text
    assert "model_assigner_api_budget_left_usd 99.9758\n" in text
    assert "00000000" not in text


def test_an_unreadable_metrics_file_is_skipped_never_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scrape that meets a worker's freshly created counters file before its
    header is written (or one cut short by a full disk): prometheus-client's
    own collector raises struct.error on it and the whole scrape fails. The
    file is skipped; every other worker's counters and the gauges are served."""
    from prometheus_client import CollectorRegistry, Counter
    from prometheus_client.values import MultiProcessValue

    from model_assigner.bot.metrics import ENV, metrics

    folder = tmp_path / "metrics"
    folder.mkdir()
    monkeypatch.setenv(ENV, str(folder))
    store = Store(tmp_path / "state.json", load_engine_config().quotas)
    # Another worker's counter, written as prometheus-client writes it.
    monkeypatch.setattr("prometheus_client.values.ValueClass", MultiProcessValue(lambda: 4141))
    other = Counter("model_assigner_probe", "probe", registry=CollectorRegistry())
    other.inc(3)
    (folder / "counter_4242.db").write_bytes(b"\x00\x00")  # header not written yet
    data, _ = metrics().exposition(store)
    assert b"model_assigner_probe_total 3.0" in data
    assert b"model_assigner_api_budget_left_usd" in data
