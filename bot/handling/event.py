"""An ``issues`` delivery's payload, parsed without I/O, and the answer.

``IssueEvent.parse`` checks the shape GitHub sends and nothing else (the
repository name goes into API paths, so only a name GitHub would give a
repository passes); ``Outcome`` is what the webhook answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from model_assigner.bot.issue_task import issue_key

ASSIGN_ACTIONS = frozenset(
    {"opened", "reopened", "edited", "labeled", "unlabeled", "milestoned", "demilestoned"}
)
RELEASE_REASONS = frozenset({"not_planned", "duplicate"})
# The issue is no longer this repository's: deleted, or moved to another one
# (where, if the App is installed there, it arrives as a new issue). Its
# reservation is released, or the quota would stay held for ever.
GONE_ACTIONS = frozenset({"deleted", "transferred"})
# Owner and repository names as GitHub (and GitHub Enterprise Server) allow them.
REPO_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")


@dataclass
class Outcome:
    """What the webhook answers: an HTTP status and a small JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


class BadPayload(ValueError):
    """A signed, well-formed JSON body that is not the shape GitHub sends."""


def _get(mapping: Mapping[str, Any], *path: str) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class IssueEvent:
    action: str
    repo: str
    number: int
    installation_id: int | None
    sender: str | None
    label: str | None
    issue: Mapping[str, Any]
    default_branch: str
    state_reason: str | None

    @property
    def key(self) -> str:
        return issue_key(self.repo, self.number)

    def as_deleted(self) -> IssueEvent:
        """The same event as a ``deleted`` one: the issue is gone from GitHub."""
        return IssueEvent(**{**self.__dict__, "action": "deleted"})

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> IssueEvent:
        action, repo = payload.get("action"), _get(payload, "repository", "full_name")
        issue, number = payload.get("issue"), _get(payload, "issue", "number")
        if not isinstance(action, str):
            raise BadPayload("action: missing")
        if not isinstance(repo, str) or repo.count("/") != 1:
            raise BadPayload("repository.full_name: missing")
        if not REPO_NAME.fullmatch(repo) or set(repo.split("/")) & {".", ".."}:
            # It goes into API paths: nothing GitHub would not name a repository.
            raise BadPayload("repository.full_name: not a repository name")
        # type(), not isinstance(): JSON's true is a Python int too.
        if not isinstance(issue, Mapping) or type(number) is not int or number < 1:
            raise BadPayload("issue.number: missing")
        installation = _get(payload, "installation", "id")
        branch = _get(payload, "repository", "default_branch")
        label = _get(payload, "label", "name")
        reason = _get(payload, "issue", "state_reason")
        sender = _get(payload, "sender", "login")
        return cls(
            action=action,
            repo=repo,
            number=number,
            installation_id=(
                installation if type(installation) is int and installation > 0 else None
            ),
            sender=sender if isinstance(sender, str) else None,
            label=label if isinstance(label, str) else None,
            issue=issue,
            default_branch=branch if isinstance(branch, str) and branch else "main",
            state_reason=reason if isinstance(reason, str) else None,
        )
