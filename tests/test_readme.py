"""The README and docs/: what a new user runs, and pages that hold together.

The README's first two commands are what a new user runs and what CI runs;
the rest of these tests keep the documentation self-contained (no path
outside the repository, no link to a page that does not exist) and keep the
README short, with the detail in docs/.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 200
LINK = re.compile(r"\]\(([^)\s]+)\)")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text, re.S)


def markdown_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI"):  # CI runs in a checkout: a skip there would hide a failure
            pytest.fail(f"git ls-files failed in CI: {exc}")
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_readme_opens_with_run_then_test_command() -> None:
    commands = readme_commands()
    run, test = commands[0], commands[1]
    assert run.startswith("python3 -m venv .venv") and run.endswith("model-assigner serve")
    assert test.startswith("python3 -m venv .venv") and "pytest" in test


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test = readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    commands = [line for line in ci if line and not line.startswith(("#", "echo"))]
    # After set -e, cd and the PostgreSQL server the tests need (started when
    # it is not running): the README's command, then the shifted-clock runs.
    assert commands[:3] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', ".ci/postgres"]
    assert commands[3] == test
    assert all(c.startswith("MODEL_ASSIGNER_TEST_CLOCK=") for c in commands[4:])


def test_readme_is_short_and_points_into_docs() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    for page in ("algorithm", "design-decisions", "architecture", "configuration",
                 "operations", "security-model", "security", "performance"):
        assert f"](docs/{page}.md" in text, page
    # The design decisions and the benchmark tables live in docs/, not here.
    assert "## Design decisions" not in text and "deliveries/s" not in text


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        relative = path.relative_to(ROOT).as_posix()
        assert path.exists(), f"{page.name}: {target} ({relative})"


def test_docs_index_lists_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.name != "index.md":
            assert f"]({page.name})" in index, page.name


def test_the_seed_is_defined_inside_the_repository() -> None:
    algorithm = (DOCS / "algorithm.md").read_text()
    assert '**"the seed"**' in algorithm
    # Its numbers and the worked example are stated here, not pointed at.
    for fact in ("P0 40", "27,500", ">= 90", "78.65", "sonnet-4.5", "minimize_cost"):
        assert fact in algorithm, fact
    readme = (ROOT / "README.md").read_text()
    assert '"the seed"' in readme and "](docs/algorithm.md)" in readme


def test_nothing_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|/work/shared|shared/seed/")
    offenders = [
        file.relative_to(ROOT).as_posix()
        for file in tracked_files()
        if file.is_file()
        and file.suffix in {".md", ".py", ".yaml", ".yml", ".toml", ".json", ".txt", ""}
        and file != Path(__file__).resolve()
        and outside.search(file.read_text(errors="replace"))
    ]
    assert offenders == []


def test_cited_design_decisions_exist() -> None:
    decisions = (DOCS / "design-decisions.md").read_text()
    numbers = {int(n) for n in re.findall(r"^(\d+)\. \*\*", decisions, re.M)}
    assert numbers == set(range(1, max(numbers) + 1))
    for page in markdown_pages():
        for cited in re.findall(r"Design decision (\d+)", page.read_text()):
            assert int(cited) in numbers, (page.name, cited)


def readme_assign_commands() -> list[list[str]]:
    lines = [line for block in readme_commands() for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if "model-assigner assign " in line]


def test_readme_assign_examples_pin_the_clock() -> None:
    commands = readme_assign_commands()
    assert len(commands) >= 2
    for command in commands:
        assert "--now" in command, command


@pytest.mark.parametrize("wall_clock", ["2027-03-01T09:00:00Z", "2035-12-31T23:00:00Z"])
def test_readme_assign_examples_say_the_same_thing_on_any_day(
    wall_clock: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time_machine

    from model_assigner.bot.cli import main

    monkeypatch.chdir(ROOT)
    outputs = []
    for moment in (None, wall_clock):
        with time_machine.travel(moment, tick=False) if moment else contextlib.nullcontext():
            for command in readme_assign_commands():
                assert main(command) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert "sonnet-4.5" in outputs[0] and "78.7/100" in outputs[0]
