"""What the command-line tests share: running ``main`` and reading its output,
task files, the seed's example, and the fixed clock of the operator commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from model_assigner.bot.cli import main
from tests.helpers import EXAMPLES_DIR

SEED_FILE = EXAMPLES_DIR / "seed-task.yaml"
SEED_NOW = "2026-02-10T12:00:00Z"  # the example's deadline is 2 h later
JSON_FIELDS = {
    "id",
    "model",
    "value_score",
    "complexity",
    "domain",
    "risk",
    "time_bonus",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "reason",
    "paid_by",
}

# A fixed clock: the store is seeded with it and every command gets it (--now).
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def task(task_id: str, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"id": task_id, "title": task_id, "priority": "P2"}
    data.update(fields)
    return data


def write_tasks(tmp_path: Path, tasks: object, name: str = "tasks.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return str(path)
