"""Operator commands on a real store file: quota, reservations, state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from model_assigner.bot.cli import main
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.state import Reservation
from model_assigner.core.types import Payment
from tests.bot.cli.support import NOW
from tests.helpers import store_files, store_text


def test_quota_json_reports_usage_limits_and_reservations(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["quota", "--json", "--now", NOW.isoformat()]) == 0
    report = json.loads(capsys.readouterr().out)
    claude = report["subscriptions"]["claude"]
    assert claude["tokens_used_month"] == 31_000
    assert claude["remaining_monthly"] == 5_000_000 - 31_000
    assert claude["reservations"] == 1 and claude["reserved_tokens"] == 31_000
    assert report["api_budget"]["spent_usd"] == pytest.approx(1.25)
    assert report["api_budget"]["reservations"] == 1


def test_quota_table_is_readable(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quota", "--now", NOW.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "claude" in out and "31,000" in out and "5,000,000" in out
    assert "$1.25 of $100.00 spent" in out


def test_quota_reset_one_family(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    at = NOW.isoformat()
    assert main(["quota", "reset", "--family", "claude", "--now", at]) == 0
    state = json.loads(store_text(state_file))
    assert state["subscriptions"]["claude"]["tokens_used_month"] == 0
    assert state["api_budget"]["spent_usd"] == pytest.approx(1.25)
    assert main(["quota", "reset", "--family", "nope", "--now", at]) == 2
    assert "no subscription 'nope'" in capsys.readouterr().err


def test_quota_reset_applies_the_monthly_reset_due_at_now(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store was seeded on 25 Nov with the shipped reset day (the 1st):
    a reset of one family on 2 Dec also applies the month's reset that fell
    in between, to the API budget too, and moves the reset date on."""
    assert main(["quota", "reset", "--family", "claude", "--now", "2026-12-02T00:00:00Z"]) == 0
    state = json.loads(store_text(state_file))
    assert state["api_budget"]["spent_usd"] == 0.0
    assert state["api_budget"]["reset_date"].startswith("2027-01-01")
    assert state["subscriptions"]["claude"]["reset_date"].startswith("2027-01-01")


def test_reservations_lists_issues(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reservations", "--now", NOW.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "octo/repo#1" in out and "sonnet-4.5" in out and "subscription:claude" in out
    assert "override by octocat" in out
    assert main(["reservations", "--json", "--now", NOW.isoformat()]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"octo/repo#1", "octo/repo#2"}


def test_state_check_backup_restore(
    state_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["state", "check", "--now", NOW.isoformat()]) == 0
    backup = tmp_path / "backup.json"
    assert main(["state", "backup", str(backup), "--now", NOW.isoformat()]) == 0
    assert backup.read_text() == store_text(state_file)
    main(["quota", "reset", "--now", NOW.isoformat()])
    assert main(["state", "restore", str(backup), "--now", NOW.isoformat()]) == 0
    assert json.loads(store_text(state_file))["subscriptions"]["claude"]["tokens_used_month"] == (
        31_000
    )


def test_corrupt_store_is_reported_and_left_untouched(
    state_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_file.write_text('{"version": 1, "subscriptions": ')
    before = store_files(state_file)
    for argv in (["state", "check"], ["quota"], ["reservations"], ["quota", "reset"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert str(state_file) in err and "not valid JSON" in err
        assert "Traceback" not in err
    assert store_files(state_file) == before


def test_restore_refuses_an_invalid_backup(
    state_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1}')
    before = store_files(state_file)
    assert main(["state", "restore", str(bad), "--now", NOW.isoformat()]) == 2
    assert "api_budget" in capsys.readouterr().err
    assert store_files(state_file) == before


# -- before the first delivery, --family, stray arguments, float noise ---------


@pytest.fixture
def no_store_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state.json"
    monkeypatch.setenv("MODEL_ASSIGNER_STATE", str(path))
    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_before_the_first_delivery_quota_shows_the_configured_start(
    no_store_yet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["quota"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no delivery recorded yet")
    assert "claude" in out and "5,000,000" in out and "$0.00 of $100.00 spent" in out

    assert main(["quota", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout is the JSON alone
    assert report["subscriptions"]["claude"]["token_limit_monthly"] == 5_000_000
    assert report["api_budget"]["monthly_limit_usd"] == 100.0
    assert "no delivery recorded yet" in captured.err
    assert not no_store_yet.exists()  # reading never creates the store


def test_before_the_first_delivery_reservations_are_none(
    no_store_yet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reservations"]) == 0
    out = capsys.readouterr().out
    assert "no delivery recorded yet" in out and "no reservations" in out
    assert main(["reservations", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {} and "no delivery recorded yet" in captured.err


def test_quota_family_shows_that_family_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[3] / "config", config)
    subs = yaml.safe_load((config / "subscriptions.yaml").read_text())
    subs["subscriptions"].append({**subs["subscriptions"][0], "model_family": "openai"})
    (config / "subscriptions.yaml").write_text(yaml.safe_dump(subs))
    monkeypatch.setenv("MODEL_ASSIGNER_STATE", str(tmp_path / "state.json"))
    assert main(["quota", "--json", "--config", str(config)]) == 0
    assert set(json.loads(capsys.readouterr().out)["subscriptions"]) == {"claude", "openai"}
    assert main(["quota", "--json", "--family", "openai", "--config", str(config)]) == 0
    assert set(json.loads(capsys.readouterr().out)["subscriptions"]) == {"openai"}
    assert main(["quota", "--family", "openai", "--config", str(config)]) == 0
    table = capsys.readouterr().out
    assert "openai" in table and "claude" not in table
    assert main(["quota", "--family", "nope", "--config", str(config)]) == 2
    assert "--family: no subscription 'nope' (have: claude, openai)" in capsys.readouterr().err


def test_state_check_rejects_a_stray_argument(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["state", "check", "extra"]) == 2
    assert "state check: takes no FILE (got 'extra')" in capsys.readouterr().err


def test_reservations_json_has_no_float_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "state.json"
    monkeypatch.setenv("MODEL_ASSIGNER_STATE", str(path))
    noisy = 0.0003 + 0.0239  # 0.024200000000000003, as sums of prices come out
    assert repr(noisy) == "0.024200000000000003"
    with Store(path, load_engine_config().quotas).transaction(NOW) as state:
        state.reserve("octo/repo#9", Reservation(
            model="deepseek-v3",
            payment=Payment(kind="api", family="deepseek", tokens=1_000, cost_usd=noisy),
            charged_at=NOW,
        ))
    assert main(["reservations", "--json"]) == 0
    out = capsys.readouterr().out
    assert "0.024200000000000003" not in out
    assert json.loads(out)["octo/repo#9"]["payment"]["cost_usd"] == 0.0242

