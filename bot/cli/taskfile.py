"""Reading the CLI's task files (YAML or JSON, one task or a list)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from model_assigner.core.loader import ConfigError, parse_yaml
from model_assigner.core.types import Task


class TaskFileError(ValueError):
    """A task file the CLI cannot use; ``str()`` is the one-line message."""


def _problem(task_id: str, error: ValidationError) -> str:
    """Every problem, unknown fields first: a misspelt key (``priorty``) is
    usually the cause of the others, so its line must not be hidden."""
    problems = []
    for item in sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden"):
        field = ".".join(str(part) for part in item["loc"]) or "(task)"
        message = str(item["msg"])
        if item["type"] == "missing":
            message = "missing"
        elif item["type"] == "extra_forbidden":
            message = "unknown field"
            close = difflib.get_close_matches(field, list(Task.model_fields), n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
        problems.append(f"{field}: {message}")
    return f"task {task_id}: " + "; ".join(problems)


def parse_tasks(data: Any, source: str) -> list[Task]:
    items = data if isinstance(data, list) else [data]
    if not items:
        raise TaskFileError(f"{source}: no tasks")
    tasks = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise TaskFileError(f"{source}: task #{index + 1}: expected a mapping of fields")
        task_id = repr(item["id"]) if "id" in item else f"#{index + 1}"
        try:
            tasks.append(Task.model_validate(item))
        except ValidationError as exc:
            raise TaskFileError(f"{source}: {_problem(task_id, exc)}") from None
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise TaskFileError(f"{source}: task {task.id!r}: id: appears more than once")
        seen.add(task.id)
    return tasks


def load_tasks(path: Path) -> list[Task]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise TaskFileError(f"{path}: not UTF-8 text") from None
    kind = path.suffix.lstrip(".") or "YAML"
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = parse_yaml(text, str(path), kind=kind)
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{path}: not valid {kind} ({str(exc).splitlines()[0]})") from None
    except ConfigError as exc:
        raise TaskFileError(str(exc)) from None
    return parse_tasks(data, str(path))
