"""What the webhook handler needs from GitHub, as a small interface.

The handler talks to this Protocol, never to PyGithub directly: the real
implementation (bot/github/api.py) and the dry-run one (below) are
interchangeable, and the handler's logic stays readable as a sequence of
decisions rather than HTTP calls.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("model_assigner.github")


class GitHubUnavailable(RuntimeError):
    """GitHub failed or timed out after our retries: answer 5xx so that the
    delivery can be redelivered, and leave the store as it was."""


class GitHubRateLimited(GitHubUnavailable):
    """GitHub (or our own pacing) says wait. ``answered``: GitHub refused with
    a rate limit, and the installation must stop until ``until`` (an epoch
    time; None: a secondary limit that gave no retry-after, whose wait the
    rate policy decides). Not answered: our pacing found no write slot
    before ``until``; nothing was sent."""

    def __init__(
        self, message: str, until: float | None = None, wait: float | None = None,
        answered: bool = False,
    ) -> None:
        super().__init__(message)
        self.until = until
        self.wait = wait
        self.answered = answered


class IssueGone(LookupError):
    """The issue no longer exists (deleted or transferred)."""


class CommentGone(LookupError):
    """The comment to edit no longer exists (someone deleted it)."""


@dataclass(frozen=True)
class Workspace:
    """The default branch's head commit and how many files its tree holds."""

    commit_sha: str | None
    file_count: int | None


class IssueGateway(Protocol):
    dry_run: bool

    def get_issue(self, repo: str, number: int, payload_issue: Mapping[str, Any]) -> dict[str, Any]:
        """The issue's latest state (the payload may already be stale)."""
        ...

    def workspace(self, repo: str, default_branch: str) -> Workspace: ...

    def repo_config_text(self, repo: str, ref: str | None) -> str | None: ...

    def find_comment(self, repo: str, number: int, marker: str) -> tuple[int, str] | None: ...

    def create_comment(self, repo: str, number: int, body: str) -> int: ...

    def edit_comment(self, repo: str, comment_id: int, body: str) -> None:
        """Raises CommentGone when the comment was deleted."""
        ...

    def ensure_label(self, repo: str, name: str, color: str, description: str) -> None: ...

    def add_label(self, repo: str, number: int, name: str) -> None: ...

    def remove_label(self, repo: str, number: int, name: str) -> None: ...

    def permission(self, repo: str, login: str) -> str | None:
        """``login``'s role on ``repo`` (none, read, triage, write, maintain,
        admin); None when it cannot be known (dry-run)."""
        ...


class DryRunGateway:
    """No credentials: read only what the payload holds, log every write."""

    dry_run = True

    def __init__(self) -> None:
        # The last writes it would have made, for a look in a debugger; bounded,
        # as a dry-run server may run for as long as a real one.
        self.writes: deque[dict[str, Any]] = deque(maxlen=100)
        self._next_comment = 1

    def _record(self, action: str, **details: Any) -> None:
        self.writes.append({"action": action, **details})
        shown = {k: v for k, v in details.items() if k != "body"}
        if "body" in details:  # what trying the App out is for: the comment itself
            log.info("dry-run: would %s %s:\n%s", action, shown, details["body"])
        else:
            log.info("dry-run: would %s %s", action, shown)

    def get_issue(self, repo: str, number: int, payload_issue: Mapping[str, Any]) -> dict[str, Any]:
        return dict(payload_issue)

    def workspace(self, repo: str, default_branch: str) -> Workspace:
        return Workspace(commit_sha=None, file_count=None)

    def repo_config_text(self, repo: str, ref: str | None) -> str | None:
        return None

    def find_comment(self, repo: str, number: int, marker: str) -> tuple[int, str] | None:
        return None

    def create_comment(self, repo: str, number: int, body: str) -> int:
        self._record("create comment", repo=repo, issue=number, body=body)
        self._next_comment += 1
        return self._next_comment - 1

    def edit_comment(self, repo: str, comment_id: int, body: str) -> None:
        self._record("edit comment", repo=repo, comment=comment_id, body=body)

    def ensure_label(self, repo: str, name: str, color: str, description: str) -> None:
        return None

    def add_label(self, repo: str, number: int, name: str) -> None:
        self._record("add label", repo=repo, issue=number, label=name)

    def remove_label(self, repo: str, number: int, name: str) -> None:
        self._record("remove label", repo=repo, issue=number, label=name)

    def permission(self, repo: str, login: str) -> str | None:
        return None  # no credentials to ask with: not checked in dry-run
