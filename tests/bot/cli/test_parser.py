"""The command line as a whole: --version, help for every option, typos."""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path

import pytest

from model_assigner.bot.cli import build_parser, main


def test_version_is_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"model-assigner {version('model-assigner')}"


def _options(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _options(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            found.append((path, action))
    return found


def test_every_option_and_argument_has_help() -> None:
    options = _options(build_parser(), "model-assigner")
    assert any("--json" in action.option_strings for _, action in options)
    missing = [f"{path} {action.option_strings or action.dest}"
               for path, action in options if not action.help]
    assert missing == []


def test_a_misspelt_task_field_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = tmp_path / "task.yaml"
    task.write_text("id: t1\ntitle: Fix it\npriorty: P0\n")
    assert main(["assign", str(task)]) == 2
    err = capsys.readouterr().err
    assert err == (f"model-assigner: {task}: task 't1': priorty: unknown field "
                   "(did you mean 'priority'?)\n")
    task.write_text("id: t1\ntitle: Fix it\n")  # no priority at all: the default weight
    assert main(["assign", str(task), "--json"]) == 0
    assert '"priority_weight": 20' in capsys.readouterr().out
