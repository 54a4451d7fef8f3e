"""A task file's local workspace folder, counted by the CLI (never by the engine)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from model_assigner.bot.local_workspace import count_workspace_files, with_local_workspaces
from model_assigner.core.config import ScoringConfig
from model_assigner.core.scoring import calculate_task_value
from model_assigner.core.tokens import estimate_token_usage, workspace_size
from model_assigner.core.types import Task, TokenEstimate
from tests.helpers import NOW, build_task


@pytest.fixture(autouse=True)
def _fresh_count_cache() -> Iterator[None]:
    count_workspace_files.cache_clear()
    yield
    count_workspace_files.cache_clear()


def estimate(task: Task, scoring: ScoringConfig) -> TokenEstimate:
    breakdown = calculate_task_value(task, scoring, NOW)
    return estimate_token_usage(task, scoring, breakdown.complexity, breakdown.domain)


def make_tree(root: Path, files: int, git_files: int = 0) -> Path:
    """``files`` files spread over nested folders, plus ``git_files`` under .git
    (and a nested .git) that must not be counted."""
    root.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        folder = root / f"pkg{index % 3}" / f"sub{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index}.py").write_text("x = 1\n")
    for index in range(git_files):
        git = root / ".git" / "objects" / f"{index:02x}"
        git.mkdir(parents=True, exist_ok=True)
        (git / "obj").write_text("blob")
        nested = root / "vendor" / "lib" / ".git"
        nested.mkdir(parents=True, exist_ok=True)
        (nested / f"HEAD{index}").write_text("ref")
    return root


def test_count_workspace_files_skips_git(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "repo", files=7, git_files=4)
    (root / "README.md").write_text("hi")
    assert count_workspace_files(str(root)) == 8


@pytest.mark.parametrize("path", ["", "/definitely/not/here"])
def test_count_workspace_files_of_a_missing_folder_is_zero(path: str) -> None:
    assert count_workspace_files(path) == 0


def test_count_workspace_files_of_a_file_is_zero(tmp_path: Path) -> None:
    file = tmp_path / "one.txt"
    file.write_text("x")
    assert count_workspace_files(str(file)) == 0


@pytest.mark.parametrize(("files", "factor"), [(50, 1.0), (51, 1.15), (100, 1.15), (101, 1.3)])
def test_workspace_path_is_counted(
    scoring: ScoringConfig, tmp_path: Path, files: int, factor: float
) -> None:
    # .git holds 30 files that would cross a threshold if they were counted
    root = make_tree(tmp_path / "ws", files=files, git_files=30)
    (task,) = with_local_workspaces([build_task(estimated_files=3, workspace_path=str(root))])
    tokens = estimate(task, scoring)
    assert tokens.workspace_files == files
    assert tokens.input_tokens == round(27500 * factor)


def test_workspace_files_field_wins_over_the_path(scoring: ScoringConfig, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ws", files=101)
    (task,) = with_local_workspaces(
        [build_task(estimated_files=3, workspace_path=str(root), workspace_files=0)]
    )
    assert workspace_size(task) == 0
    assert estimate(task, scoring).input_tokens == 27500




def test_a_webhook_never_counts_a_local_folder_named_like_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dry-run leak: the payload's ``owner/repo`` was walked as a folder
    relative to the server's working directory, so a folder of the server's
    that happened to share the repository's name (here 150 files, over the
    workspace factors' thresholds) changed the estimate. A dry-run knows no
    size: the estimate is the one for an empty workspace."""
    from model_assigner.bot.config_files import load_engine_config
    from model_assigner.bot.github.repo_config import load_labels_config
    from model_assigner.bot.issue_task import issue_to_task
    from model_assigner.bot.web.app import create_app
    from model_assigner.core.assessment import assess
    from tests.bot.hostile_support import make_settings, post
    from tests.bot.support import REPO, SMALL_BACKEND, encode, issue_fields, webhook

    make_tree(tmp_path / REPO, files=150)
    monkeypatch.chdir(tmp_path)
    settings = make_settings(tmp_path, dry_run=True)
    payload = webhook("issues.opened", **issue_fields(["P1", "backend"], SMALL_BACKEND))
    status, answer = post(create_app(settings).test_client(), encode(payload))
    assert status == 200, answer

    task = issue_to_task(payload["issue"], REPO, load_labels_config(settings.config_dir), 0, [])
    empty = assess(task, load_engine_config(settings.config_dir).scoring, datetime.now(UTC))
    assert answer["tokens"] == empty.tokens.total
