"""Reading the CLI's task files: YAML or JSON, one task or a list."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from model_assigner.bot.cli.taskfile import TaskFileError, load_tasks, parse_tasks
from tests.helpers import EXAMPLES_DIR

GOOD = {
    "id": "a",
    "title": "A task",
    "description": "Fix it",
    "priority": "P1",
    "labels": ["backend"],
    "estimated_files": 2,
    "estimated_loc": 40,
    "dependencies": [],
    "workspace_path": "/srv/api",
    "deadline": "2026-02-11T09:30:00Z",
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_seed_example_file() -> None:
    (task,) = load_tasks(EXAMPLES_DIR / "seed-task.yaml")
    assert task.id == "po-123"
    assert task.priority == "P0"
    assert task.labels == ["security", "backend", "hotfix"]
    assert (task.estimated_files, task.estimated_loc) == (3, 150)
    assert task.deadline == datetime(2026, 2, 10, 14, 0, tzinfo=UTC)


def test_yaml_list(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tasks.yaml",
        "- {id: a, title: A, priority: P0}\n"
        "- {id: b, title: B, priority: null, dependencies: [a], deadline: 2026-02-12}\n",
    )
    a, b = load_tasks(path)
    assert (a.id, a.priority, a.labels, a.deadline) == ("a", "P0", [], None)
    assert (b.priority, b.dependencies) == (None, ["a"])
    assert b.deadline == datetime(2026, 2, 12, tzinfo=UTC)  # a bare date is midnight UTC


@pytest.mark.parametrize("payload", [GOOD, [GOOD, GOOD | {"id": "b"}]])
def test_json_file(tmp_path: Path, payload: object) -> None:
    tasks = load_tasks(write(tmp_path, "tasks.json", json.dumps(payload)))
    assert tasks[0].id == "a"
    assert tasks[0].deadline == datetime(2026, 2, 11, 9, 30, tzinfo=UTC)
    assert len(tasks) == (2 if isinstance(payload, list) else 1)


def test_offset_deadline_is_converted_to_utc(tmp_path: Path) -> None:
    (task,) = parse_tasks(GOOD | {"deadline": "2026-02-11T09:30:00+02:00"}, "x")
    assert task.deadline == datetime(2026, 2, 11, 7, 30, tzinfo=UTC)


def test_a_misspelt_key_is_named_before_the_problems_it_causes() -> None:
    data = {k: v for k, v in GOOD.items() if k != "title"} | {"priorty": "P0", "titel": "A"}
    with pytest.raises(TaskFileError) as caught:
        parse_tasks(data, "tasks.yaml")
    assert str(caught.value) == (
        "tasks.yaml: task 'a': priorty: unknown field (did you mean 'priority'?); "
        "titel: unknown field (did you mean 'title'?); title: missing"
    )


def test_priority_is_optional() -> None:
    (task,) = parse_tasks({k: v for k, v in GOOD.items() if k != "priority"}, "x")
    assert task.priority is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({k: v for k, v in GOOD.items() if k != "title"}, "task 'a': title: missing"),
        ({k: v for k, v in GOOD.items() if k != "id"}, "task #1: id: missing"),
        (
            GOOD | {"priority": "P9"},
            "task 'a': priority: Input should be 'P0', 'P1', 'P2', 'P3' or 'P4'",
        ),
        (GOOD | {"priority": "urgent"}, "task 'a': priority: Input should be"),
        (
            GOOD | {"deadline": "next tuesday"},
            "task 'a': deadline: Input should be a valid datetime",
        ),
        (GOOD | {"deadline": "2026-13-01"}, "task 'a': deadline: Input should be a valid datetime"),
        (GOOD | {"estimated_files": -1}, "task 'a': estimated_files: Input should be greater than"),
        (
            GOOD | {"estimated_loc": "many"},
            "task 'a': estimated_loc: Input should be a valid integer",
        ),
        (GOOD | {"labels": "backend"}, "task 'a': labels: Input should be a valid list"),
        (GOOD | {"prority": "P1"}, "task 'a': prority: unknown field (did you mean 'priority'?)"),
        (GOOD | {"id": ""}, "task '': id: String should have at least 1 character"),
        (
            GOOD | {"priority": "P9", "deadline": "soon"},
            "task 'a': priority: Input should be 'P0', 'P1', 'P2', 'P3' or 'P4'; "
            "deadline: Input should be a valid datetime",
        ),
        ([GOOD, GOOD | {"id": "b", "deadline": "x"}], "task 'b': deadline:"),
        ([GOOD, {"title": "no id"}], "task #2: id: missing"),
        ([GOOD, GOOD], "task 'a': id: appears more than once"),
        ([], "no tasks"),
        ("just a string", "task #1: expected a mapping of fields"),
        (None, "task #1: expected a mapping of fields"),
        ([GOOD, 3], "task #2: expected a mapping of fields"),
    ],
)
def test_bad_tasks_name_the_task_and_field(data: object, message: str) -> None:
    with pytest.raises(TaskFileError) as caught:
        parse_tasks(data, "tasks.yaml")
    text = str(caught.value)
    assert text.startswith("tasks.yaml: ")
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.yaml", "id: [unclosed\n", "not valid yaml"),
        ("bad.yml", "id: a\n  title: b\n", "not valid yml"),
        ("bad.json", '{"id": ', "not valid json"),
        ("noext", "{{{", "not valid YAML"),
    ],
)
def test_unparsable_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(TaskFileError) as caught:
        load_tasks(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text
    assert "\n" not in text


TASK = "id: a\ntitle: b\npriority: P1\n"


@pytest.mark.parametrize(
    ("content", "key", "problem"),
    [
        (f"{TASK}deadline: 2026-13-01\n", "deadline", "month value is outside"),
        (f"{TASK}deadline: 2026-02-30T10:00:00Z\n", "deadline", "day value is outside"),
        (f"{TASK}deadline: !!timestamp 2026-13-01\n", "", "month must be in 1..12"),
    ],
)
def test_an_impossible_date_is_one_line_naming_the_key(
    tmp_path: Path, content: str, key: str, problem: str
) -> None:
    """PyYAML would raise a bare ValueError for these; dates stay text and
    pydantic names the key (an explicit tag: the file and the problem)."""
    path = write(tmp_path, "tasks.yaml", content)
    with pytest.raises(TaskFileError) as caught:
        load_tasks(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and key in text and problem in text
    assert "\n" not in text


def test_unquoted_dates_still_parse(tmp_path: Path) -> None:
    path = write(tmp_path, "tasks.yaml", f"{TASK}deadline: 2026-02-10T14:00:00Z\n")
    assert load_tasks(path)[0].deadline == datetime(2026, 2, 10, 14, tzinfo=UTC)


def test_unreadable_files(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.yaml", tmp_path):
        with pytest.raises(TaskFileError, match=r"cannot read \("):
            load_tasks(path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"id: \xff\xfe\n")
    with pytest.raises(TaskFileError, match="not UTF-8 text"):
        load_tasks(binary)
