"""``model-assigner assign --strategy optimal`` and ``model-assigner config``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_assigner.bot.cli import main
from tests.bot.cli.support import JSON_FIELDS, SEED_FILE, SEED_NOW, run, task, write_tasks

SEED_MODEL_FIELDS = {
    "name",
    "tier",
    "cost_per_mtok_input",
    "cost_per_mtok_output",
    "context_window",
    "capabilities",
    "benchmarks",
}
SEED_SUBSCRIPTION_FIELDS = {
    "model_family",
    "monthly_cost",
    "token_limit_daily",
    "token_limit_monthly",
    "tokens_used_today",
    "tokens_used_month",
    "reset_date",
}


def batch(tmp_path: Path) -> str:
    return write_tasks(
        tmp_path,
        [
            task("fix", priority="P0", labels=["security", "backend"], estimated_files=3),
            task("big", priority="P1", labels=["k8s"], estimated_files=12),
            task("docs", priority="P4", labels=["docs"]),
        ],
    )


def assign_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    status, out, err = run(capsys, "assign", *argv, "--json")
    assert (status, err) == (0, "")
    result = json.loads(out)
    assert isinstance(result, list)
    return result


def config_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    status, out, err = run(capsys, "config", "--json", *argv)
    assert (status, err) == (0, "")
    document = json.loads(out)
    assert isinstance(document, dict)
    return document


# --- assign --strategy optimal ------------------------------------------------------


def test_optimal_json_has_the_same_fields(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = batch(tmp_path)
    optimal = assign_json(capsys, path, "--strategy", "optimal", "--now", SEED_NOW)
    greedy = assign_json(capsys, path, "--strategy", "maximize_value", "--now", SEED_NOW)
    assert [r["id"] for r in optimal] == ["fix", "big", "docs"]
    assert [set(r) for r in optimal] == [set(r) for r in greedy]
    for result in optimal:
        assert set(result) >= JSON_FIELDS
        assert result["strategy"] == "optimal"
        assert result["paid_by"] in (None, "api") or result["paid_by"].startswith("subscription:")
        assert (result["model"] is None) == (result["paid_by"] is None)


def test_optimal_human_output_prints_value_bound_and_gap(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err = run(
        capsys, "assign", batch(tmp_path), "--strategy", "optimal", "--now", SEED_NOW
    )
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["task", "model", "value", "tokens", "cost", "paid", "by"]
    value = next(line for line in lines if line.startswith("value captured: "))
    bound = next(line for line in lines if line.startswith("LP upper bound: "))
    assert "3 of 3 tasks assigned" in value
    assert "gap: 0.0 (0.00%)" in bound and "proven optimal" in bound
    assert "why: value" in out and "the optimal plan pays it" in out


def test_greedy_human_output_prints_the_value_but_no_bound(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _err = run(capsys, "assign", batch(tmp_path), "--now", SEED_NOW)
    assert status == 0
    assert "value captured: " in out
    assert "LP upper bound" not in out


def test_one_task_under_optimal_is_planned_as_a_batch_of_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (result,) = assign_json(capsys, str(SEED_FILE), "--strategy", "optimal", "--now", SEED_NOW)
    assert (result["model"], result["paid_by"]) == ("sonnet-4.5", "subscription:claude")
    assert result["value_score"] == pytest.approx(78.65)
    status, out, _err = run(
        capsys, "assign", str(SEED_FILE), "--strategy", "optimal", "--now", SEED_NOW
    )
    assert status == 0 and "LP upper bound: 78.7" in out


def test_optimal_as_the_configured_default(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config_copy: Path
) -> None:
    scoring = config_copy / "scoring.yaml"
    scoring.write_text(
        scoring.read_text().replace(
            "quota_strategy: online", "quota_strategy: optimal", 1
        )
    )
    results = assign_json(capsys, batch(tmp_path), "--now", SEED_NOW, "--config", str(config_copy))
    assert {r["strategy"] for r in results} == {"optimal"}


def test_a_plan_can_be_checked_with_config_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Everything needed to check a plan is in the two JSON documents: each
    subscription's tokens within its room, the API spend within the budget,
    each cost the list price of the model."""
    tasks = [task(f"t{i}", priority="P0", estimated_files=12, labels=["api"]) for i in range(40)]
    path = write_tasks(tmp_path, tasks)
    results = assign_json(capsys, path, "--strategy", "optimal", "--now", SEED_NOW)
    document = config_json(capsys, "--now", SEED_NOW)
    prices = {m["name"]: m for m in document["models"]}
    families = {m["name"]: m["family"] for m in document["models"]}
    used: dict[str, int] = {}
    spend = 0.0
    for r in results:
        if r["model"] is None:
            continue
        price = prices[r["model"]]
        cost = (
            r["input_tokens"] * price["cost_per_mtok_input"]
            + r["output_tokens"] * price["cost_per_mtok_output"]
        ) / 1e6
        assert r["cost_usd"] == pytest.approx(cost, abs=1e-6)
        if r["paid_by"] == "api":
            spend += r["api_spend_usd"]
        else:
            family = r["paid_by"].removeprefix("subscription:")
            assert families[r["model"]] == family
            used[family] = used.get(family, 0) + r["input_tokens"] + r["output_tokens"]
    for sub in document["subscriptions"]:
        tokens = used.get(sub["model_family"], 0)
        for limit, spent in (
            ("token_limit_monthly", "tokens_used_month"),
            ("token_limit_daily", "tokens_used_today"),
        ):
            if sub[limit] is not None:
                assert sub[spent] + tokens <= sub[limit]
    budget = document["api_budget"]
    assert budget["spent_usd"] + spend <= budget["monthly_limit_usd"] + 1e-6
    # 40 x 177,500 tokens overflow the 5M claude tokens: both payers are used
    assert {r["paid_by"] for r in results} == {"api", "subscription:claude"}


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["Optimal", "optimum", ""])
def test_unknown_strategy(capsys: pytest.CaptureFixture[str], strategy: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["assign", str(SEED_FILE), "--strategy", strategy])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ([{"id": "a", "title": "a", "priority": "P9"}], ["task 'a'", "priority"]),
        ([{"id": "a", "priority": "P1"}], ["task 'a'", "title", "missing"]),
        ([task("a"), task("a")], ["'a'", "more than once"]),
        ([task("a", deadline="soon")], ["task 'a'", "deadline"]),
        ([], ["no tasks"]),
    ],
)
def test_bad_task_files_under_optimal_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: Any, fragments: list[str]
) -> None:
    path = write_tasks(tmp_path, content)
    status, out, err = run(capsys, "assign", path, "--strategy", "optimal", "--now", SEED_NOW)
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for fragment in [path, *fragments]:
        assert fragment in err


def test_bad_now_under_optimal(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "assign", str(SEED_FILE), "--strategy", "optimal", "--now", "x")
    assert (status, out) == (2, "")
    assert "--now: not an ISO 8601 date-time" in err


def test_invalid_optimal_setting_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], config_copy: Path
) -> None:
    scoring = config_copy / "scoring.yaml"
    scoring.write_text(
        scoring.read_text().replace("time_limit_seconds: 0.25", "time_limit_seconds: -1", 1)
    )
    for argv in (
        ["assign", str(SEED_FILE), "--strategy", "optimal"],
        ["config", "--json"],
    ):
        status, out, err = run(capsys, *argv, "--config", str(config_copy))
        assert (status, out) == (2, "")
        assert str(scoring) in err and "optimal.time_limit_seconds" in err
        assert len(err.splitlines()) == 1


# --- config -----------------------------------------------------------------------------


def test_config_json_keys(capsys: pytest.CaptureFixture[str]) -> None:
    document = config_json(capsys)
    assert list(document) == ["models", "subscriptions", "api_budget", "scoring"]
    assert len(document["models"]) == 7
    for model in document["models"]:
        # Ours beside the seed's: the family, and what prices reported usage.
        assert set(model) == SEED_MODEL_FIELDS | {
            "family", "cost_per_mtok_cache_read", "cost_per_mtok_cache_write", "api_names"}
    assert {m["name"]: m["family"] for m in document["models"]}["sonnet-4.5"] == "claude"
    (claude,) = document["subscriptions"]
    assert set(claude) == SEED_SUBSCRIPTION_FIELDS
    assert claude["model_family"] == "claude" and claude["token_limit_monthly"] == 5_000_000
    assert {"monthly_limit_usd", "spent_usd"} <= set(document["api_budget"])
    assert document["api_budget"]["monthly_limit_usd"] == 100.0
    scoring = document["scoring"]
    assert scoring["quota_strategy"] == "online"
    assert scoring["priority_weights"]["P0"] == 40
    assert scoring["optimal"] == {"time_limit_seconds": 0.25, "milp_max_variables": 20000,
                                  "greedy_check_max_tasks": 2000, "spend_leftover_budget": True}
    assert [b["min_value"] for b in scoring["value_bands"]] == [90, 75, 60, 40]


def test_config_reads_the_config_folder_and_applies_resets_at_now(
    capsys: pytest.CaptureFixture[str], config_copy: Path
) -> None:
    # A config that pins its first reset (the form written before reset_day):
    # the counters it states are those of the month before that reset.
    subscriptions = config_copy / "subscriptions.yaml"
    subscriptions.write_text(
        subscriptions.read_text()
        .replace("tokens_used_month: 0", "tokens_used_month: 4000000", 1)
        .replace("spent_usd: 0.0", "spent_usd: 40.0", 1)
        .replace("reset_day: 1", 'reset_date: "2026-12-01T00:00:00Z"')
    )
    before = config_json(capsys, "--config", str(config_copy), "--now", "2026-11-20T00:00:00Z")
    assert before["subscriptions"][0]["tokens_used_month"] == 4_000_000
    assert before["api_budget"]["spent_usd"] == 40.0
    after = config_json(capsys, "--config", str(config_copy), "--now", "2026-12-02T00:00:00Z")
    assert after["subscriptions"][0]["tokens_used_month"] == 0
    assert after["subscriptions"][0]["reset_date"].startswith("2027-01-01")
    assert after["api_budget"]["spent_usd"] == 0.0


def test_config_derives_the_first_reset_from_the_reset_day_and_now(
    capsys: pytest.CaptureFixture[str], config_copy: Path
) -> None:
    subscriptions = config_copy / "subscriptions.yaml"
    subscriptions.write_text(subscriptions.read_text().replace("reset_day: 1", "reset_day: 31"))
    for now, reset in [
        ("2026-02-10T12:00:00Z", "2026-02-28T00:00:00Z"),  # clamped to a short month
        ("2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"),  # the reset instant is past
        ("2031-12-31T23:59:59Z", "2032-01-31T00:00:00Z"),
    ]:
        document = config_json(capsys, "--config", str(config_copy), "--now", now)
        assert document["subscriptions"][0]["reset_date"].replace("+00:00", "Z") == reset
        assert document["api_budget"]["reset_date"].replace("+00:00", "Z") == reset


def test_config_human_output_is_the_same_document_as_yaml(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = config_json(capsys, "--now", SEED_NOW)
    status, out, err = run(capsys, "config", "--now", SEED_NOW)
    assert (status, err) == (0, "")
    assert yaml.safe_load(out) == document


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--now", "tomorrow"], "--now: not an ISO 8601 date-time"),
        (["--config", "/nonexistent-folder"], "no such folder"),
    ],
)
def test_config_bad_input(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    status, out, err = run(capsys, "config", *argv)
    assert (status, out) == (2, "")
    assert fragment in err and len(err.splitlines()) == 1
