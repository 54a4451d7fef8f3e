"""The stand-in's data: repositories, issues, comments, labels, recorded
requests, faults and deliveries, and the JSON answers' shared helpers."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

ROOT = Path(__file__).resolve().parents[2]
# GitHub's documented answers, shared with the tests (data, not test code).
EXAMPLES = ROOT / "tests" / "fixtures" / "github" / "rest-examples"
DOCS = "https://docs.github.com/rest"
CONFIG_PATH = ".github/model-assigner.yml"
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit and have been temporarily blocked from "
    "content creation. Please retry your request again later."
)
FAULT_KINDS = ("500", "502", "503", "secondary_rate_limit", "primary_rate_limit", "hang")
PRIMARY_RATE_LIMIT_MESSAGE = "API rate limit exceeded for installation ID {id}."
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()


_EXAMPLE_CACHE: dict[str, str] = {}


def example(operation: str, base_url: str) -> Any:
    """GitHub's documented example answer for an operation, its URLs pointed at
    ``base_url`` (PyGithub refuses absolute URLs on another host)."""
    text = _EXAMPLE_CACHE.get(operation)
    if text is None:
        text = (EXAMPLES / f"{operation}.json").read_text(encoding="utf-8")
        _EXAMPLE_CACHE[operation] = text
    data = json.loads(text.replace("https://api.github.com", base_url))
    if isinstance(data, dict) and set(data) == {"value", "x-github-breaking-changes"}:
        data = data["value"]  # issues/get.json wraps the example
    return data


# -- state -------------------------------------------------------------------


@dataclass
class Comment:
    id: int
    body: str
    login: str
    user_type: str
    created_at: datetime
    updated_at: datetime


@dataclass
class Issue:
    number: int
    title: str
    body: str
    labels: list[str] = field(default_factory=list)
    milestone_due_on: str | None = None
    milestone_title: str = "v1.0"
    milestone_set: bool = False
    state: str = "open"
    state_reason: str | None = None
    author: str = "octocat"
    comments: list[Comment] = field(default_factory=list)
    deleted: bool = False
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)


@dataclass
class Label:
    name: str
    color: str = "ededed"
    description: str | None = None
    id: int = 0


@dataclass
class Repo:
    full_name: str
    installation_id: int
    default_branch: str = "main"
    files: int = 0
    config_text: str | None = None
    revision: int = 1
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # lower(name) -> Label
    # A person's role (lower(login) -> role_name). People not listed have
    # ``default_role``: the stand-in's people are collaborators unless a test
    # says otherwise.
    roles: dict[str, str] = field(default_factory=dict)
    default_role: str = "write"

    @property
    def commit_sha(self) -> str:
        return _sha("commit", self.full_name, self.revision)

    @property
    def tree_sha(self) -> str:
        return _sha("tree", self.full_name, self.revision)

    def paths(self) -> list[str]:
        """The files of the default branch's tree: ``files`` generated ones, plus
        the config file when there is one."""
        found = [f"src/pkg{i // 25}/module_{i}.py" for i in range(self.files)]
        if self.config_text is not None:
            found.append(CONFIG_PATH)
        return found


@dataclass
class RecordedRequest:
    method: str
    path: str  # percent-decoded, without the query
    raw_path: str  # as sent
    query: dict[str, str]
    body: Any  # parsed JSON, the text when not JSON, None when empty
    auth: str  # "jwt", "token", "none" or "invalid"
    status: int = 0
    fault: str | None = None
    started: float = 0.0
    finished: float = 0.0


@dataclass
class HookDelivery:
    """One attempt at a webhook delivery, as GET /app/hook/deliveries lists it."""

    id: int
    guid: str
    delivered_at: datetime
    redelivery: bool
    status_code: int
    event: str
    action: str | None
    installation_id: int | None
    body: bytes
    duration: float = 0.1


@dataclass
class Fault:
    path: str  # fnmatch pattern on the decoded path, e.g. "/repos/*/issues/*/comments"
    kind: str  # one of FAULT_KINDS
    times: int | None  # None: until cleared
    method: str | None = None
    retry_after: int | None = 1
    hang_seconds: float = 5.0
    then_status: int | None = 502
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)


class HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "documentation_url": DOCS, **extra}
        self.body.setdefault("status", str(status))


# -- the API -----------------------------------------------------------------

Handler = Callable[["Call"], tuple[int, Any]]


@dataclass
class Call:
    """One API request after routing and authentication."""

    request: Request
    base: str
    params: dict[str, str]
    body: Any
    installation_id: int | None  # from the installation token; None for JWT calls


@dataclass
class _Paged:
    items: list[Any]
    link: str


def _not_modified(etag: str) -> Response:
    response = Response(b"", status=304, headers={"ETag": etag})
    response.headers.pop("Content-Type", None)
    return response


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    text = "" if payload is None else json.dumps(payload, default=str)
    response = Response(
        text, status=status, mimetype="application/json", headers=headers or {}
    )
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    response.headers["X-GitHub-Media-Type"] = "github.v3; format=json"
    return response
