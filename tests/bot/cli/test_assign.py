"""``model-assigner assign``: output, strategies, and errors as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from model_assigner.bot.cli import main
from tests.bot.cli.support import JSON_FIELDS, SEED_FILE, SEED_NOW, run, task, write_tasks
from tests.helpers import CONFIG_DIR

# The seed's select_model decides a single task under its own strategies.
SEED_STRATEGY = ("--strategy", "maximize_subscription_usage")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    status, out, err = run(capsys, "assign", *argv, "--json")
    assert (status, err) == (0, "")
    result = json.loads(out)
    assert isinstance(result, list)
    return result


# --- the seed's example ------------------------------------------------------------


def test_seed_example_prints_sonnet_and_78_7(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "assign", str(SEED_FILE), "--now", SEED_NOW, *SEED_STRATEGY)
    assert status == 0 and err == ""
    assert "sonnet-4.5" in out
    assert "78.7/100" in out
    table_row = next(line for line in out.splitlines() if line.startswith("po-123"))
    assert table_row.split()[:3] == ["po-123", "sonnet-4.5", "78.7"]
    assert "subscription:claude" in table_row
    assert "why: its value, 78.7, puts it in the high band" in out


def test_seed_example_json(capsys: pytest.CaptureFixture[str]) -> None:
    (result,) = run_json(capsys, str(SEED_FILE), "--now", SEED_NOW, *SEED_STRATEGY)
    assert set(result) >= JSON_FIELDS
    assert result["id"] == "po-123"
    assert result["model"] == "sonnet-4.5"
    assert result["value_score"] == pytest.approx(78.65, abs=1e-9)
    assert result["complexity"] == "moderate"
    assert result["domain"] == "backend"
    assert result["risk"] == "production"
    assert result["time_bonus"] == 15
    assert (result["input_tokens"], result["output_tokens"]) == (27500, 3500)
    assert result["cost_usd"] == pytest.approx((27500 * 3 + 3500 * 15) / 1e6)
    assert result["paid_by"] == "subscription:claude"
    assert result["strategy"] == "maximize_subscription_usage"
    assert "where sonnet-4.5 is the first choice" in result["reason"]


def test_the_default_strategy_is_online(capsys: pytest.CaptureFixture[str]) -> None:
    """config/scoring.yaml: online; with no history, as minimize_cost decides."""
    (result,) = run_json(capsys, str(SEED_FILE), "--now", SEED_NOW)
    assert result["strategy"] == "online"
    assert (result["model"], result["paid_by"]) == ("sonnet-4.5", "subscription:claude")
    assert "too few issues seen yet" in result["reason"]


def test_now_moves_the_time_bonus(capsys: pytest.CaptureFixture[str]) -> None:
    # 5 h before the deadline: urgent (12), (40 + 12) x 1.1 x 1.3 = 74.36
    (result,) = run_json(capsys, str(SEED_FILE), "--now", "2026-02-10T09:00:00+00:00",
                         *SEED_STRATEGY)
    assert result["time_bonus"] == 12
    assert result["value_score"] == pytest.approx(74.36)
    assert result["model"] == "deepseek-v3"
    assert result["paid_by"] == "api"


@pytest.mark.parametrize(
    ("now", "bonus"),
    [
        ("2026-02-10T10:00:00Z", 15),  # exactly 4 h before the deadline
        ("2026-02-10T10:00:00", 15),  # naive: UTC
        ("2026-02-10T10:00:00+01:00", 12),  # 09:00 UTC: 5 h before
        ("2026-02-10T09:59:59Z", 12),
    ],
)
def test_now_offsets(capsys: pytest.CaptureFixture[str], now: str, bonus: int) -> None:
    (result,) = run_json(capsys, str(SEED_FILE), "--now", now)
    assert result["time_bonus"] == bonus


# --- strategies, single and batch ---------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "model"),
    [
        ("maximize_value", None),
        ("minimize_cost", "glm-4.7"),
        ("maximize_subscription_usage", "glm-4.7"),
    ],
)
def test_single_low_value_task_by_strategy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, strategy: str, model: str | None
) -> None:
    path = write_tasks(tmp_path, task("low", priority="P4"))
    (result,) = run_json(capsys, path, "--strategy", strategy, "--now", SEED_NOW)
    assert result["model"] == model
    assert result["strategy"] == strategy
    if model is None:
        assert result["paid_by"] is None
        assert result["cost_usd"] == 0
        assert "below 40" in result["reason"]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("maximize_subscription_usage", {"big": "opus-4.6", "a": "sonnet-4.5", "low": None}),
        ("maximize_value", {"big": "opus-4.6", "a": "sonnet-4.5", "low": None}),
        ("minimize_cost", {"big": "opus-4.6", "a": "sonnet-4.5", "low": None}),
    ],
)
def test_batch_file_by_strategy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, strategy: str, expected: dict[str, str]
) -> None:
    tasks = [
        task("low", priority="P4"),
        task(
            "a",
            priority="P0",
            labels=["backend", "hotfix"],
            estimated_files=3,
            deadline="2026-02-10T14:00:00Z",
        ),
        task(
            "big", priority="P0", labels=["k8s"], estimated_files=6, deadline="2026-02-10T14:00:00Z"
        ),
    ]
    results = run_json(
        capsys, write_tasks(tmp_path, tasks), "--strategy", strategy, "--now", SEED_NOW
    )
    assert [r["id"] for r in results] == ["low", "a", "big"]
    assert {r["id"]: r["model"] for r in results} == expected
    assert {r["strategy"] for r in results} == {strategy}
    big = results[2]
    assert big["value_score"] == 90.0 and big["paid_by"] == "subscription:claude"


def test_batch_dependencies_raise_the_time_bonus(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tasks = [task("base", priority="P1", estimated_files=3), task("child", dependencies=["base"])]
    base, _child = run_json(capsys, write_tasks(tmp_path, tasks), "--now", SEED_NOW)
    assert base["time_bonus"] == 12


def test_human_output_lists_every_task(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tasks = [task("one", priority="P4"), task("two", priority="P0", estimated_files=3)]
    status, out, _err = run(
        capsys, "assign", write_tasks(tmp_path, tasks, "t.yaml"), "--now", SEED_NOW
    )
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["task", "model", "value", "tokens", "cost", "paid", "by"]
    assert "== one" in lines and "== two" in lines
    assert "model: deferred" in out
    # online, with no history yet: decided as minimize_cost decides
    assert "model: deepseek-v3" in out


def test_config_folder_option(capsys: pytest.CaptureFixture[str], config_copy: Path) -> None:
    scoring = config_copy / "scoring.yaml"
    scoring.write_text(scoring.read_text().replace("  P0: 40", "  P0: 45", 1))
    (result,) = run_json(capsys, str(SEED_FILE), "--now", SEED_NOW, "--config", str(config_copy))
    assert result["value_score"] == pytest.approx((45 + 15) * 1.1 * 1.3)


# --- errors: one line, exit status 2, no traceback ------------------------------------


def assert_one_line_error(status: int, out: str, err: str, *fragments: str) -> None:
    assert status == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("model-assigner: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (task("x", title=None), ["task 'x'", "title: Input should be a valid string"]),
        ({"id": "x", "priority": "P1"}, ["task 'x'", "title: missing"]),
        (task("x", priority="P7"), ["task 'x'", "priority: Input should be 'P0'"]),
        (
            task("x", deadline="tomorrow-ish"),
            ["task 'x'", "deadline: Input should be a valid datetime"],
        ),
        ([task("ok"), task("bad", estimated_files="lots")], ["task 'bad'", "estimated_files:"]),
        ([task("a"), task("a")], ["task 'a'", "id: appears more than once"]),
    ],
)
def test_bad_task_fields(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: object, fragments: list[str]
) -> None:
    path = write_tasks(tmp_path, content)
    status, out, err = run(capsys, "assign", path, "--now", SEED_NOW)
    assert_one_line_error(status, out, err, path, *fragments)


def test_invalid_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\ntitle: [unclosed\n")
    status, out, err = run(capsys, "assign", str(path), "--now", SEED_NOW)
    assert_one_line_error(status, out, err, str(path), "not valid yaml")


def test_unreadable_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    status, out, err = run(capsys, "assign", str(path), "--now", SEED_NOW)
    assert_one_line_error(status, out, err, str(path), "cannot read")


@pytest.mark.parametrize("now", ["yesterday", "2026-02-30T00:00:00Z", ""])
def test_bad_now(capsys: pytest.CaptureFixture[str], now: str) -> None:
    status, out, err = run(capsys, "assign", str(SEED_FILE), "--now", now)
    assert_one_line_error(status, out, err, "--now", "not an ISO 8601 date-time")


def test_bad_config_folder(capsys: pytest.CaptureFixture[str], config_copy: Path) -> None:
    scoring = config_copy / "scoring.yaml"
    scoring.write_text(scoring.read_text().replace("  P0: 40", "  P0: -1", 1))
    status, out, err = run(
        capsys, "assign", str(SEED_FILE), "--now", SEED_NOW, "--config", str(config_copy)
    )
    assert_one_line_error(status, out, err, str(scoring), "priority_weights.P0")


def test_unknown_strategy_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["assign", str(SEED_FILE), "--strategy", "cheapest"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'cheapest'" in capsys.readouterr().err


# --- the installed console script ---------------------------------------------------


def console_script() -> str:
    script = Path(sys.executable).parent / "model-assigner"
    if not script.exists():
        if os.environ.get("CI"):  # CI installs the package: a skip there would hide a failure
            pytest.fail(f"the model-assigner console script is missing in CI: {script}")
        pytest.skip("the model-assigner console script is not installed next to this Python")
    return str(script)


def test_console_script_on_the_seed_example(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: q\ntitle: t\npriority: P0\ndeadline: not-a-date\n")
    done = subprocess.run(
        [
            console_script(),
            "assign",
            str(SEED_FILE),
            "--now",
            SEED_NOW,
            "--json",
            "--config",
            str(CONFIG_DIR),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert (result["model"], round(result["value_score"], 1)) == ("sonnet-4.5", 78.7)

    failed = subprocess.run(
        [console_script(), "assign", str(bad), "--now", SEED_NOW],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
    assert "task 'q': deadline:" in failed.stderr
