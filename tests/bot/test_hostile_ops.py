"""Hostile conditions around the store, the metrics files and the logs
(issue 12, items 7, 13, 14, 15): a store that vanishes or is not a file, a
metrics write that fails, credentials in a URL, a second server on the same
folder."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.metrics import ENV, prepare_multiprocess_dir
from model_assigner.bot.settings import Settings, load_settings, redacted_url
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.state import StoreError
from tests.bot.support import APP_ID, SECRET, app_key
from tests.helpers import CONFIG_DIR, store_text

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


# -- 7: a store that vanished, or is not a file ------------------------------------------


def started_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "data" / "state.json", load_engine_config(CONFIG_DIR).quotas)
    store.ensure_writable()
    store.check()
    store.ensure_exists()
    return store


def test_start_up_writes_the_store_so_that_its_loss_is_noticed(tmp_path: Path) -> None:
    store = started_store(tmp_path)
    assert store.path.is_file()
    store.apply(NOW, lambda state: state.remember_delivery("d-1", NOW))
    store.path.unlink()
    with pytest.raises(StoreError, match="vanished"):
        store.apply(NOW, lambda state: state.remember_delivery("d-2", NOW))
    with pytest.raises(StoreError, match="vanished"):
        store.check_file()
    assert not store.path.exists()  # nothing re-seeded


def test_a_deleted_store_folder_is_not_re_seeded(tmp_path: Path) -> None:
    import shutil

    store = started_store(tmp_path)
    shutil.rmtree(store.path.parent)
    with pytest.raises(StoreError, match="vanished"):
        store.view(lambda state: len(state.reservations))
    store.ensure_writable()  # the folder comes back (a probe)...
    with pytest.raises(StoreError, match="vanished"):  # ...the store does not
        store.apply(NOW, lambda state: None)
    assert not store.path.exists()


def test_a_store_that_is_a_folder_or_unreadable_fails_the_file_check(tmp_path: Path) -> None:
    store = started_store(tmp_path)
    store.path.unlink()
    store.path.mkdir()
    with pytest.raises(StoreError):
        store.check_file()
    store.path.rmdir()
    store.path.write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        store.check_file()


def test_healthz_fails_while_the_store_is_gone_or_broken(tmp_path: Path) -> None:
    from model_assigner.bot.web.app import create_app

    settings = dry_settings(tmp_path)
    client = create_app(settings).test_client()
    assert client.get("/healthz").status_code == 200
    settings.state_path.write_text("[]")
    assert client.get("/healthz").status_code == 503
    settings.state_path.unlink()
    assert client.get("/healthz").status_code == 503
    metrics = client.get("/metrics")
    assert metrics.status_code == 503 and "Traceback" not in metrics.get_data(as_text=True)


def dry_settings(tmp_path: Path) -> Settings:
    return Settings(
        app_id=None, private_key=None, webhook_secret=SECRET, api_url="https://api.github.com",
        state_path=tmp_path / "data" / "state.json", config_dir=CONFIG_DIR, bot_login=None,
    )


# -- 14: credentials in a logged URL -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@host", "http://***@host"),
        ("https://token@ghe.example:8443/api/v3", "https://***@ghe.example:8443/api/v3"),
        ("https://api.github.com", "https://api.github.com"),
        ("http://:pw@127.0.0.1:9/x?y=1", "http://***@127.0.0.1:9/x?y=1"),
    ],
)
def test_credentials_in_a_url_are_masked(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_the_start_up_line_and_the_settings_never_show_url_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from model_assigner.bot.web.app import create_app

    settings = load_settings({
        "GITHUB_APP_ID": str(APP_ID), "GITHUB_PRIVATE_KEY": app_key().private_pem,
        "GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_API_URL": "http://user:hunter2@127.0.0.1:9",
        "MODEL_ASSIGNER_STATE": str(tmp_path / "state.json"),
    })
    assert "hunter2" not in repr(settings)
    with caplog.at_level(logging.INFO):
        create_app(settings)
    assert "127.0.0.1:9" in caplog.text
    assert "hunter2" not in caplog.text and "user:" not in caplog.text


@pytest.mark.parametrize("url", ["https://user:hunter2@keys.example/jwks",
                                 "ftp://user:hunter2@keys.example/jwks"])
def test_a_jwks_url_with_credentials_is_refused_without_echoing_them(url: str) -> None:
    """The other URL setting (POST /usage's key set): credentials in it would
    be logged with every fetch error, and urllib would read "hunter2@host"
    as a port; refused at start-up, the message masked."""
    from model_assigner.bot.settings import SettingsError
    from model_assigner.bot.usage_intake import load_usage_settings

    with pytest.raises(SettingsError) as caught:
        load_usage_settings({"MODEL_ASSIGNER_OIDC_JWKS_URL": url})
    assert "hunter2" not in str(caught.value) and "***@keys.example" in str(caught.value)
    assert load_usage_settings(
        {"MODEL_ASSIGNER_OIDC_JWKS_URL": "https://keys.example/jwks"}
    ).oidc_jwks_url == "https://keys.example/jwks"


def test_a_bad_url_setting_does_not_echo_its_credentials() -> None:
    from model_assigner.bot.settings import SettingsError

    with pytest.raises(SettingsError) as caught:
        load_settings({"GITHUB_API_URL": "ftp://user:hunter2@host"})
    assert "hunter2" not in str(caught.value)


# -- 15: a second server on the same store ---------------------------------------------------


def test_a_second_server_leaves_a_live_servers_metrics_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    folder = tmp_path / "metrics"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        (folder / str(live.pid)).mkdir(parents=True)
        (folder / str(live.pid) / "counter_1.db").write_bytes(b"live")
        (folder / str(dead.pid)).mkdir()
        (folder / str(dead.pid) / "counter_2.db").write_bytes(b"gone")
        ours = prepare_multiprocess_dir(folder)
        assert (folder / str(live.pid) / "counter_1.db").read_bytes() == b"live"
        assert not (folder / str(dead.pid)).exists()  # a server that is gone: cleared
        assert ours.parent == folder and ours.is_dir() and not any(ours.iterdir())
    finally:
        live.kill()
        live.wait()


# -- 6: numbers the store could not write back ----------------------------------------------


@pytest.mark.parametrize("number", ["1e400", "Infinity", "-Infinity", "NaN", "1" + "0" * 320])
def test_a_store_holding_a_number_it_cannot_write_back_is_refused(
    tmp_path: Path, number: str
) -> None:
    store = started_store(tmp_path)
    text = store_text(store.path)
    assert '"spent_usd": 0.0' in text
    store.path.write_text(text.replace('"spent_usd": 0.0', f'"spent_usd": {number}'))
    fresh = Store(store.path, load_engine_config(CONFIG_DIR).quotas)
    with pytest.raises(StoreError, match="spent_usd"):
        fresh.check()


@pytest.mark.parametrize("value", [".inf", ".nan", "1" + "0" * 320])
def test_a_repository_number_that_is_not_finite_is_a_problem_not_a_500(value: str) -> None:
    from model_assigner.bot.github.repo_config import effective_config, load_labels_config

    engine = load_engine_config(CONFIG_DIR)
    result = effective_config(
        f"scoring:\n  priority_weights: {{P0: {value}}}\n", engine.scoring,
        load_labels_config(CONFIG_DIR), engine.catalog,
    )
    # Refused (not finite), or clamped into the operator's range (a huge
    # integer): named either way, never an OverflowError.
    said = result.problem or result.refused
    assert said is not None and "priority_weights.P0" in said
    assert result.scoring.priority_weights["P0"] == engine.scoring.priority_weights["P0"]
