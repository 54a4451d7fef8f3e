"""An in-memory GitHub for the handler's behaviour tests (like CPython
bedevere's ``FakeGH``): it implements the ``IssueGateway`` protocol
(bot/github/gateway.py) over a few dictionaries, so a test says what the
issue looks like, delivers an event, and reads back the labels, comments and
store it ends with, with no HTTP in between. The wire (which REST calls, in
which order) is the business of the other tests of tests/bot/handling/,
with ``responses``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from model_assigner.bot.github.gateway import (
    CommentGone,
    GitHubUnavailable,
    IssueGone,
    Workspace,
)

ISSUE_TIME = datetime(2026, 11, 10, 11, 0, tzinfo=UTC)


@dataclass
class FakeIssue:
    """One issue as GitHub holds it."""

    number: int
    labels: list[str] = field(default_factory=list)
    body: str = ""
    title: str = "An issue"
    state: str = "open"
    state_reason: str | None = None
    updated: datetime = ISSUE_TIME
    gone: bool = False  # deleted or transferred away

    def touch(self) -> None:
        """GitHub moves ``updated_at`` on every change, by whole seconds."""
        self.updated += timedelta(seconds=1)


@dataclass
class FakeComment:
    id: int
    repo: str
    number: int
    body: str
    author: str


class FakeGitHub:
    """``IssueGateway`` in memory. ``writes`` lists every write made, in
    order (("create_comment", number), ("add_label", number, name) ...);
    ``fail`` names the writes that answer GitHubUnavailable (as after the
    gateway's retries), to test what a failed write-back leaves behind."""

    dry_run = False

    def __init__(self, repo: str, files: int = 42, role: str | None = "write",
                 repo_config: str | None = None, bot: str = "model-assigner[bot]") -> None:
        self.repo = repo
        self.files = files
        self.role = role
        self.repo_config = repo_config
        self.bot = bot
        self.issues: dict[int, FakeIssue] = {}
        self.comments: dict[int, FakeComment] = {}
        self.repo_labels: dict[str, tuple[str, str]] = {}
        self.writes: list[tuple[Any, ...]] = []
        self.reads: list[tuple[Any, ...]] = []
        self.fail: set[str] = set()
        self._next_id = 900

    # -- what a test sets up and reads back ---------------------------------

    def issue(self, number: int, **fields: Any) -> FakeIssue:
        """The issue ``number``, created (or changed) with ``fields``."""
        issue = self.issues.setdefault(number, FakeIssue(number))
        for key, value in fields.items():
            setattr(issue, key, value)
        if fields:
            issue.touch()
        return issue

    def issue_json(self, number: int) -> dict[str, Any]:
        """The issue as GitHub's REST API and webhooks show it (the fields
        the handler reads)."""
        issue = self.issues[number]
        return {
            "number": number,
            "title": issue.title,
            "body": issue.body,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "labels": [{"name": name} for name in issue.labels],
            "comments": sum(1 for c in self.comments.values() if c.number == number),
            "milestone": None,
            "updated_at": issue.updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user": {"login": "monalisa", "type": "User"},
        }

    def payload(self, action: str, number: int, sender: str = "monalisa",
                label: str | None = None, installation: int = 1) -> dict[str, Any]:
        """The webhook GitHub sends for ``action`` on the issue as it is now."""
        body: dict[str, Any] = {
            "action": action,
            "issue": self.issue_json(number),
            "repository": {"full_name": self.repo, "default_branch": "main"},
            "sender": {"login": sender, "type": "User"},
            "installation": {"id": installation},
        }
        if label is not None:
            body["label"] = {"name": label}
        return body

    def bot_comments(self, number: int) -> list[FakeComment]:
        return [c for c in self.comments.values() if c.number == number and c.author == self.bot]

    def labels_of(self, number: int) -> list[str]:
        return list(self.issues[number].labels)

    def person_labels(self, number: int, *names: str) -> None:
        """A person adds labels (the issue's ``updated_at`` moves)."""
        issue = self.issues[number]
        issue.labels = [*issue.labels, *names]
        issue.touch()

    # -- IssueGateway -------------------------------------------------------

    def _write(self, name: str, *details: Any) -> None:
        if name in self.fail:
            raise GitHubUnavailable(f"{name}: GitHub answered 502 (fake)")
        self.writes.append((name, *details))

    def _existing(self, number: int) -> FakeIssue:
        issue = self.issues.get(number)
        if issue is None or issue.gone:
            raise IssueGone(f"{self.repo}#{number}")
        return issue

    def get_issue(self, repo: str, number: int, payload_issue: Mapping[str, Any]) -> dict[str, Any]:
        self.reads.append(("get_issue", number))
        self._existing(number)
        return self.issue_json(number)

    def workspace(self, repo: str, default_branch: str) -> Workspace:
        return Workspace(commit_sha="c0ffee", file_count=self.files)

    def repo_config_text(self, repo: str, ref: str | None) -> str | None:
        return self.repo_config

    def find_comment(self, repo: str, number: int, marker: str) -> tuple[int, str] | None:
        self.reads.append(("find_comment", number))
        for comment in self.bot_comments(number):
            if marker in comment.body:
                return comment.id, comment.body
        return None

    def create_comment(self, repo: str, number: int, body: str) -> int:
        self._write("create_comment", number)
        self._next_id += 1
        self.comments[self._next_id] = FakeComment(self._next_id, repo, number, body, self.bot)
        self._existing(number).touch()
        return self._next_id

    def edit_comment(self, repo: str, comment_id: int, body: str) -> None:
        self._write("edit_comment", comment_id)
        comment = self.comments.get(comment_id)
        if comment is None:
            raise CommentGone(str(comment_id))
        comment.body = body

    def ensure_label(self, repo: str, name: str, color: str, description: str) -> None:
        if name not in self.repo_labels:
            self._write("create_label", name)
            self.repo_labels[name] = (color, description)

    def add_label(self, repo: str, number: int, name: str) -> None:
        self._write("add_label", number, name)
        issue = self._existing(number)
        if name not in issue.labels:
            issue.labels.append(name)
            issue.touch()

    def remove_label(self, repo: str, number: int, name: str) -> None:
        self._write("remove_label", number, name)
        issue = self._existing(number)
        if name in issue.labels:
            issue.labels.remove(name)
            issue.touch()

    def permission(self, repo: str, login: str) -> str | None:
        return self.role

    def snapshot(self) -> dict[str, Any]:
        """Everything GitHub holds, to compare before and after."""
        return copy.deepcopy({"issues": self.issues, "comments": self.comments,
                              "labels": self.repo_labels})
