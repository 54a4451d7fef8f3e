"""``model-assigner plan OWNER/REPO --issues FILE``: plan without GitHub.

The same batch plan as ``plan``, from issues saved to a file (GitHub's own
answer to ``GET /repos/{owner}/{repo}/issues``, e.g. ``gh api
repos/OWNER/REPO/issues > issues.json``) instead of read through the App: no
credentials, no network, and nothing written to GitHub or to the store. Useful to
try a strategy or a config change on real issues before ``plan --apply``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from model_assigner.bot.github.repo_config import effective_config
from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.issue_task import issue_key
from model_assigner.bot.plan import RepoPlan, RepoSnapshot, plan_repo


class IssuesFileError(ValueError):
    """An issues file the command cannot use; ``str()`` is the one-line message."""


def read_issues(path: Path) -> list[dict[str, Any]]:
    """A JSON array of GitHub issue objects; pull requests are dropped, as the
    online command drops them."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IssuesFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise IssuesFileError(f"{path}: not JSON ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise IssuesFileError(f"{path}: expected a JSON array of issues")
    issues = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("number"), int):
            raise IssuesFileError(f"{path}: item #{index + 1}: not an issue (no number)")
        if "pull_request" not in item and item.get("state", "open") == "open":
            issues.append(item)
    return issues


def offline_plan(
    handler: Handler, repo: str, path: Path, now: datetime, strategy: str | None
) -> RepoPlan:
    """Plan the open issues in ``path`` against the store as it is (read, never
    written), with the defaults' scoring (a repository's own config file is
    on GitHub, which is not asked)."""
    issues = read_issues(path)
    repo_config = effective_config(
        None, handler.engine.scoring, handler.labels, handler.engine.catalog
    )
    snap = RepoSnapshot(repo, {issue_key(repo, i["number"]): i for i in issues}, None, repo_config)
    return plan_repo(handler, snap, handler.store.read(), now, strategy)
