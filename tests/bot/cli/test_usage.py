"""usage record / import / reconcile and calibration on a real store file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_assigner.bot.cli import main
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.store.json_store import Store
from tests.bot.cli.support import NOW
from tests.helpers import store_files

AT = ["--now", NOW.isoformat()]


def store(path: Path) -> Store:
    return Store(path, load_engine_config().quotas)


def claude_month(path: Path) -> int:
    return store(path).read().subscriptions["claude"].tokens_used_month


def test_record_replaces_the_estimate_once(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert claude_month(state_file) == 31_000
    args = ["usage", "record", "octo/repo#1", "--input", "50000", "--output", "4000",
            "--cache-read", "100000", "--run", "s-1", *AT]
    assert main(args) == 0
    assert "charged 154,000 tokens of sonnet-4.5 to subscription:claude" in capsys.readouterr().out
    assert claude_month(state_file) == 154_000
    assert main(args) == 0  # the same run again
    assert "already recorded" in capsys.readouterr().out
    assert claude_month(state_file) == 154_000


def test_record_without_a_run_id_counts_the_same_command_once(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["usage", "record", "octo/repo#2", "--input", "1000000", "--output", "0", *AT]
    assert main(args) == 0 and main(args) == 0
    state = store(state_file).read()
    # deepseek-v3 by the API: its estimate ($1.25) replaced by 1M input at $0.28.
    assert state.api_budget.spent_usd == pytest.approx(0.28)


def test_record_on_another_model_says_who_paid(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "record", "octo/repo#2", "--input", "10000", "--output", "0",
                 "--model", "claude-opus-4-6", "--run", "x", *AT]) == 0
    out = capsys.readouterr().out
    assert "to subscription:claude" in out and "not the assigned deepseek-v3" in out


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["usage", "record", "octo/repo", "--input", "1", "--output", "1"], "OWNER/REPO#N"),
        (["usage", "record", "o/r#1", "--input", "-1", "--output", "1"], "greater than"),
        (["usage", "record", "o/r#1", "--input", "1", "--output", "1", "--run", "a b"],
         "--run"),
    ],
)
def test_bad_records_are_one_line_and_change_nothing(
    state_file: Path, capsys: pytest.CaptureFixture[str], args: list[str],
    problem: str,
) -> None:
    before = store_files(state_file)
    assert main([*args, *AT]) == 2
    err = capsys.readouterr().err
    assert problem in err and len(err.strip().splitlines()) == 1
    assert store_files(state_file) == before


def test_import_reads_a_claude_execution_file(
    state_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    execution = [
        {"type": "system", "subtype": "init", "session_id": "abc"},
        {"type": "result", "session_id": "abc", "total_cost_usd": 0.2,
         "usage": {"input_tokens": 10, "output_tokens": 990},
         "modelUsage": {"claude-sonnet-4-5-20250929": {"inputTokens": 10, "outputTokens": 990,
                                                       "costUSD": 0.2}}},
    ]
    path = tmp_path / "execution.json"
    path.write_text(json.dumps(execution))
    assert main(["usage", "import", str(path), "--issue", "octo/repo#1", *AT]) == 0
    assert claude_month(state_file) == 1_000
    assert main(["usage", "import", str(path), "--issue", "octo/repo#1", *AT]) == 0
    assert claude_month(state_file) == 1_000
    path.write_text(json.dumps(execution[:1]))
    assert main(["usage", "import", str(path), "--issue", "octo/repo#1", *AT]) == 2
    assert "no message with type 'result'" in capsys.readouterr().err


DAY = NOW.date().isoformat()  # the day the runs below end
ANTHROPIC_EXPORT = {
    "data": [{
        "starting_at": f"{DAY}T00:00:00Z", "ending_at": f"{DAY}T23:59:59Z",
        "results": [{"uncached_input_tokens": 60000, "cache_creation": {
            "ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
            "cache_read_input_tokens": 0, "output_tokens": 4000,
            "model": "claude-sonnet-4-5-20250929", "service_tier": "standard"}],
    }],
    "has_more": False, "next_page": None,
}


def test_reconcile_reports_the_difference_and_changes_nothing_unless_told(
    state_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["usage", "record", "octo/repo#1", "--input", "50000", "--output", "4000",
          "--run", "s-1", *AT])
    export = tmp_path / "anthropic.json"
    export.write_text(json.dumps(ANTHROPIC_EXPORT))
    capsys.readouterr()
    before = store_files(state_file)
    assert main(["usage", "reconcile", str(export), "--json", *AT]) == 0
    report = json.loads(capsys.readouterr().out)
    [row] = report["rows"]
    assert (row["day"], row["model"], row["store_tokens"], row["provider_tokens"]) == (
        DAY, "sonnet-4.5", 54_000, 64_000)
    assert row["difference_usd"] == pytest.approx(10_000 * 3 / 1e6)
    assert report["applied_usd"] is None and store_files(state_file) == before
    assert main(["usage", "reconcile", str(export), "--apply", *AT]) == 0
    spent = store(state_file).read().api_budget.spent_usd
    assert spent == pytest.approx(1.25 + 0.03)
    assert main(["usage", "reconcile", str(export), "--apply", *AT]) == 2
    assert "already applied" in capsys.readouterr().err
    assert store(state_file).read().api_budget.spent_usd == pytest.approx(spent)


def test_reconcile_reads_openai_organization_usage(
    state_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "openai.json"
    export.write_text(json.dumps({"object": "page", "data": [{
        "object": "bucket", "start_time": int(NOW.replace(hour=0, minute=0, second=0).timestamp()),
        "end_time": int(NOW.timestamp()),
        "results": [{"object": "organization.usage.completions.result", "input_tokens": 1000,
                     "output_tokens": 500, "input_cached_tokens": 800, "num_model_requests": 5,
                     "model": "gpt-4-turbo-2024-04-09", "batch": None}]}],
        "has_more": False, "next_page": None}))
    assert main(["usage", "reconcile", str(export), "--json", *AT]) == 0
    [row] = json.loads(capsys.readouterr().out)["rows"]
    assert (row["model"], row["provider_tokens"], row["store_tokens"]) == ("gpt-4-turbo", 1500, 0)


def test_calibration_prints_the_table(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calibration"]) == 0
    assert "no factors yet" in capsys.readouterr().out


def test_calibration_counts_finished_issues(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from model_assigner.bot.store.state import Reservation
    from model_assigner.bot.usage_store import record_report
    from model_assigner.core.selection import select_model
    from model_assigner.core.usage import TokenUsage, UsageReport, estimate_class
    from tests.helpers import seed_task

    engine = load_engine_config()
    with store(state_file).transaction(NOW) as state:
        for number in range(12):
            key = f"octo/calibrated#{number}"
            decision = select_model(seed_task(), state.ledger().copy(), engine.models,
                                    engine.scoring, NOW)
            assert decision.model is not None and decision.payment is not None
            state.reserve(key, Reservation(model=decision.model, payment=decision.payment,
                                           charged_at=NOW, estimated=estimate_class(decision)))
            record_report(state, key, UsageReport(run_id="r", lines=[
                TokenUsage(input_tokens=93_000)]), engine.models, NOW)
            state.settle(key)  # closed: finished
    assert main(["calibration", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["finished_issues"] == 12
    entry = report["factors"]["moderate/backend"]
    assert entry["samples"] == 12 and 1.5 < entry["factor"] < 3.0
    assert main(["calibration"]) == 0
    assert "moderate         backend" in capsys.readouterr().out


def test_quota_shows_estimated_vs_actual(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["usage", "record", "octo/repo#1", "--input", "50000", "--output", "4000",
          "--run", "s-1", *AT])
    capsys.readouterr()
    assert main(["quota", "--json", *AT]) == 0
    usage = json.loads(capsys.readouterr().out)["usage"]
    assert usage["issues_reported"] == 1
    assert usage["by_payer"]["subscription:claude"] == {
        "estimated_tokens": 31_000, "actual_tokens": 54_000}
    assert main(["quota", *AT]) == 0
    assert "Estimated vs actual this month" in capsys.readouterr().out
