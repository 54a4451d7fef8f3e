"""An in-memory stand-in for the part of GitHub's REST API that model-assigner calls.

A WSGI app (werkzeug) that keeps the state of a few repositories (issues with
labels and milestone, comments, labels, a git tree of N files, an optional
``.github/model-assigner.yml``), records every request, checks authentication
like GitHub does (a JWT signed with the App's key for ``/app`` endpoints, an
installation token for the others) and can be told to fail.

Endpoints, exactly the ones the bot calls (answers shaped like GitHub's
documented examples in ``tests/fixtures/github/rest-examples``)::

    GET    /app                                       (Bearer JWT)
    POST   /app/installations/{id}/access_tokens      (Bearer JWT; token valid 1 h)
    GET    /repos/{o}/{r}/issues/{n}
    GET    /repos/{o}/{r}/issues/{n}/comments         (paginated: per_page, page, Link)
    POST   /repos/{o}/{r}/issues/{n}/comments
    PATCH  /repos/{o}/{r}/issues/comments/{id}
    POST   /repos/{o}/{r}/labels                      (422 already_exists)
    POST   /repos/{o}/{r}/issues/{n}/labels           (bare JSON list or {"labels": [...]})
    DELETE /repos/{o}/{r}/issues/{n}/labels/{name}
    GET    /repos/{o}/{r}/branches/{branch}
    GET    /repos/{o}/{r}/git/trees/{sha}?recursive=1
    GET    /repos/{o}/{r}/contents/{path}?ref=...     (404 when absent)
    GET    /app/hook/deliveries                       (Bearer JWT; cursor paging, newest first)
    POST   /app/hook/deliveries/{id}/attempts         (Bearer JWT; 202, then redelivers)
    GET    /app/installations                         (Bearer JWT)
    GET    /installation/repositories                 (installation token)

Conditional requests: every 200 answer to a GET carries an ``ETag`` (a
digest of the answer, as GitHub's); a GET whose ``If-None-Match`` names it is
answered ``304 Not Modified`` with no body, and does not count against the
primary limit. ``served(path_glob)`` counts the GETs answered 200 and 304.

GitHub's pace, when asked: ``latency`` (seconds added to every API call,
a (low, high) range), ``limit_writes(per_minute, per_hour, retry_after)``
(the secondary limit on content-creating requests: past it, 403 with
``Retry-After``, or none), ``limit_requests(remaining, reset_in)`` (the
primary limit: past it, 403 with ``x-ratelimit-remaining: 0`` and
``x-ratelimit-reset``). ``refused`` counts the requests a limit refused.

Webhook deliveries: ``send_delivery`` POSTs a signed delivery to
``webhook_url`` and records the attempt as GitHub does (status code, 0 when
nothing answered); the deliveries endpoints list and redeliver them.

Use it in a thread (``StandInServer(standin).start()``; the state is then
read and changed directly on the ``GitHubStandIn`` object), or as its own
process (``python -m tests.github_standin --help``; the state is then read and
changed through the small JSON control API: ``GET``/``DELETE /_standin/requests``,
``POST``/``GET /_standin/pace`` (latency and write limits; the refused count),
``POST /_standin/repos``, ``POST /_standin/issues``, ``GET
/_standin/issues/{o}/{r}/{n}``, ``POST``/``DELETE /_standin/faults``; bodies
are the keyword arguments of the methods of the same names).

Fault injection: ``inject_fault(path_glob, kind, times)`` makes the next
``times`` requests whose path matches answer 500/502/503, a 403 secondary rate
limit (with ``Retry-After``), or hang for ``hang_seconds`` first (then answer
``then_status``, or handle the request normally when it is None: a slow GitHub
that still did the work).

This module deliberately imports nothing from pytest, so that a benchmark can
reuse it.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import hashlib
import hmac
import itertools
import json
import random
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "github" / "rest-examples"
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


class GitHubStandIn:
    """The state and the WSGI app. Thread-safe: one lock guards the state."""

    def __init__(
        self,
        app_id: int,
        public_key_pem: str | bytes,
        *,
        slug: str = "model-assigner-test",
        token_ttl: timedelta = timedelta(hours=1),
        per_page_max: int = 100,
    ) -> None:
        self.app_id = app_id
        self.public_key = public_key_pem
        self.slug = slug
        self.token_ttl = token_ttl
        self.per_page_max = per_page_max
        self.repos: dict[str, Repo] = {}
        self.installations: set[int] = set()
        self.tokens: dict[str, tuple[int, datetime]] = {}
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self._ids = itertools.count(1001)
        # GitHub's pace (see the module's docstring).
        self.latency: tuple[float, float] = (0.0, 0.0)
        self.write_limits: tuple[int, int, int | None] | None = None
        self.primary: dict[int, tuple[int, float]] = {}  # installation -> (left, reset at)
        self.primary_limit: tuple[int, float] | None = None
        self.write_times: dict[int, list[float]] = {}
        self.refused = 0
        # Writes must come at least this far apart per installation (None:
        # any pace); those that do not are refused and listed in ``unpaced``.
        self.write_interval: float | None = None
        self.last_write: dict[int, float] = {}
        self.unpaced: list[tuple[str, str]] = []
        # Webhook deliveries.
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.hook_deliveries: list[HookDelivery] = []
        self._delivery_ids = itertools.count(50_000_001)
        self._routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        for method, pattern, handler, auth in (
            ("GET", r"/app", self._get_app, "jwt"),
            ("POST", r"/app/installations/(?P<iid>\d+)/access_tokens", self._token, "jwt"),
            ("GET", repo + r"/installation", self._get_repo_installation, "jwt"),
            ("GET", r"/app/hook/deliveries", self._list_hook_deliveries, "jwt"),
            ("POST", r"/app/hook/deliveries/(?P<did>\d+)/attempts", self._redeliver, "jwt"),
            ("GET", r"/app/installations", self._list_installations, "jwt"),
            ("GET", r"/installation/repositories", self._list_installation_repos, "token"),
            ("GET", repo, self._get_repo, "token"),
            ("GET", repo + r"/issues", self._list_issues, "token"),
            ("GET", repo + r"/issues/(?P<number>\d+)", self._get_issue, "token"),
            ("GET", repo + r"/issues/(?P<number>\d+)/comments", self._list_comments, "token"),
            ("POST", repo + r"/issues/(?P<number>\d+)/comments", self._create_comment, "token"),
            ("PATCH", repo + r"/issues/comments/(?P<cid>\d+)", self._update_comment, "token"),
            ("POST", repo + r"/labels", self._create_label, "token"),
            ("POST", repo + r"/issues/(?P<number>\d+)/labels", self._add_labels, "token"),
            (
                "DELETE",
                repo + r"/issues/(?P<number>\d+)/labels/(?P<name>[^/]+)",
                self._remove_label,
                "token",
            ),
            ("GET", repo + r"/branches/(?P<branch>.+)", self._get_branch, "token"),
            ("GET", repo + r"/git/trees/(?P<sha>[^/]+)", self._get_tree, "token"),
            ("GET", repo + r"/contents/(?P<path>.+)", self._get_content, "token"),
            (
                "GET",
                repo + r"/collaborators/(?P<username>[^/]+)/permission",
                self._get_permission,
                "token",
            ),
        ):
            self._routes.append((method, re.compile(pattern + r"/?\Z"), handler, auth))

    # -- state set-up and inspection (thread mode) ---------------------------

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"

    def add_repo(
        self,
        full_name: str,
        *,
        installation_id: int = 1,
        files: int = 20,
        default_branch: str = "main",
        config_text: str | None = None,
    ) -> Repo:
        with self.lock:
            self.installations.add(installation_id)
            repo = Repo(full_name, installation_id, default_branch, files, config_text)
            for name in ("bug", "enhancement", "documentation"):
                self._label(repo, name, "d73a4a" if name == "bug" else "a2eeef")
            self.repos[full_name.lower()] = repo
            return repo

    def repo(self, full_name: str) -> Repo:
        with self.lock:
            return self.repos[full_name.lower()]

    def set_role(self, full_name: str, login: str, role: str) -> None:
        """A person's role on the repository (none, read, triage, write, maintain, admin)."""
        with self.lock:
            self.repo(full_name).roles[login.lower()] = role

    def set_config(self, full_name: str, text: str | None) -> None:
        """Commit a new ``.github/model-assigner.yml`` (None removes it)."""
        with self.lock:
            repo = self.repo(full_name)
            repo.config_text = text
            repo.revision += 1

    def add_issue(
        self,
        full_name: str,
        number: int,
        *,
        title: str = "An issue",
        body: str = "",
        labels: Iterable[str] = (),
        milestone_due_on: str | None = None,
        milestone: bool | None = None,
        author: str = "octocat",
    ) -> Issue:
        with self.lock:
            repo = self.repo(full_name)
            issue = Issue(number=number, title=title, body=body, author=author)
            issue.milestone_due_on = milestone_due_on
            issue.milestone_set = milestone if milestone is not None else bool(milestone_due_on)
            repo.issues[number] = issue
            for name in labels:
                self.label_issue(full_name, number, name)
            return issue

    def issue(self, full_name: str, number: int) -> Issue:
        with self.lock:
            return self.repo(full_name).issues[number]

    def label_issue(self, full_name: str, number: int, name: str) -> None:
        """A person adds a label (created in the repository if missing)."""
        with self.lock:
            repo = self.repo(full_name)
            issue = repo.issues[number]
            label = repo.labels.get(name.lower()) or self._label(repo, name, "ededed")
            if label.name.lower() not in (n.lower() for n in issue.labels):
                issue.labels.append(label.name)
            issue.updated_at = _now()

    def unlabel_issue(self, full_name: str, number: int, name: str) -> None:
        with self.lock:
            issue = self.issue(full_name, number)
            issue.labels = [n for n in issue.labels if n.lower() != name.lower()]
            issue.updated_at = _now()

    def set_milestone(self, full_name: str, number: int, due_on: str | None) -> None:
        with self.lock:
            issue = self.issue(full_name, number)
            issue.milestone_set = due_on is not None
            issue.milestone_due_on = due_on
            issue.updated_at = _now()

    def close_issue(self, full_name: str, number: int, reason: str = "completed") -> None:
        with self.lock:
            issue = self.issue(full_name, number)
            issue.state, issue.state_reason = "closed", reason
            issue.updated_at = _now()

    def delete_issue(self, full_name: str, number: int) -> None:
        with self.lock:
            self.issue(full_name, number).deleted = True

    def add_comment(
        self, full_name: str, number: int, body: str, *, login: str = "octocat"
    ) -> Comment:
        """A comment written by someone (a person by default)."""
        with self.lock:
            kind = "Bot" if login.endswith("[bot]") else "User"
            return self._add_comment(self.issue(full_name, number), body, login, kind)

    def delete_comment(self, full_name: str, comment_id: int) -> None:
        with self.lock:
            for issue in self.repo(full_name).issues.values():
                issue.comments = [c for c in issue.comments if c.id != comment_id]

    def labels_of(self, full_name: str, number: int) -> list[str]:
        with self.lock:
            return list(self.issue(full_name, number).labels)

    def comments_of(self, full_name: str, number: int) -> list[Comment]:
        with self.lock:
            return list(self.issue(full_name, number).comments)

    def inject_fault(
        self,
        path: str,
        kind: str = "500",
        times: int | None = 1,
        *,
        method: str | None = None,
        retry_after: int | None = 1,
        hang_seconds: float = 5.0,
        then_status: int | None = 502,
    ) -> Fault:
        """The next ``times`` requests (None: all, until ``clear_faults``) whose
        decoded path matches the glob ``path`` (and ``method``, if given) fail
        with ``kind``: "500", "502", "503", "secondary_rate_limit" (403 with a
        ``Retry-After: retry_after`` header unless None) or "hang" (wait
        ``hang_seconds``, then answer ``then_status``, or handle normally when
        None)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        fault = Fault(path, kind, times, method, retry_after, hang_seconds, then_status)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def calls(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded API requests, optionally filtered by method and path glob."""
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path is None or fnmatch.fnmatchcase(r.path, path))
            ]

    def clear_calls(self) -> None:
        with self.lock:
            self.requests.clear()

    def issue_json(self, full_name: str, number: int, base_url: str) -> dict[str, Any]:
        """The issue as GET /repos/{o}/{r}/issues/{n} shows it (for webhook payloads)."""
        with self.lock:
            repo = self.repo(full_name)
            return self._issue_json(repo, repo.issues[number], base_url)

    # -- WSGI ------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
        raw_path = urllib.parse.urlsplit(raw_uri).path if raw_uri else request.path
        path = urllib.parse.unquote(raw_path)
        if path.startswith("/_standin/"):
            return self._control(request, path)
        base = request.host_url.rstrip("/")
        body = self._body(request)
        auth_kind, installation = self._authenticate(request.headers.get("Authorization"))
        record = RecordedRequest(
            method=request.method,
            path=path,
            raw_path=raw_path,
            query=dict(request.args.items()),
            body=body,
            auth=auth_kind,
            started=time.monotonic(),
        )
        with self.lock:
            self.requests.append(record)
            fault = next((f for f in self.faults if f.matches(request.method, path)), None)
            if fault is not None:
                fault.hits += 1
                record.fault = fault.kind
        low, high = self.latency
        if high > 0:
            self.stopping.wait(random.uniform(low, high))
        try:
            if fault is not None:
                answer = self._fault(fault, installation)
                if answer is not None:
                    return self._finish(record, answer)
            limited = self._limited(request.method, auth_kind, installation, path)
            if limited is not None:
                record.fault = "rate_limit"
                return self._finish(record, limited)
            answer = self._route(request, raw_path, base, body, auth_kind, installation)
            if answer.status_code == 304 and installation is not None:
                self._refund(installation)  # a 304 does not count against the limit
            return self._finish(record, answer)
        except HttpError as exc:
            return self._finish(record, _json_response(exc.status, exc.body))

    @staticmethod
    def _finish(record: RecordedRequest, response: Response) -> Response:
        record.status = response.status_code
        record.finished = time.monotonic()
        return response

    @staticmethod
    def _body(request: Request) -> Any:
        data = request.get_data(cache=True)
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode("utf-8", errors="replace")

    # -- GitHub's pace -----------------------------------------------------------

    def limit_writes(self, per_minute: int = 80, per_hour: int = 500,
                     retry_after: int | None = 60) -> None:
        """The secondary limit on content-creating requests, per installation."""
        with self.lock:
            self.write_limits = (per_minute, per_hour, retry_after)
            self.write_times.clear()

    def limit_requests(self, remaining: int, reset_in: float) -> None:
        """The primary limit: ``remaining`` requests per installation, then 403
        until ``reset_in`` seconds from now."""
        with self.lock:
            self.primary_limit = (remaining, reset_in)
            self.primary.clear()

    def require_write_interval(self, seconds: float | None) -> None:
        """Refuse (403, a secondary limit with ``Retry-After: 1``) any
        content-creating request that arrives less than ``seconds`` after
        the installation's previous one: a client that paces every write
        never sees it; a write sent outside the pacing is caught."""
        with self.lock:
            self.write_interval = seconds
            self.last_write.clear()
            self.unpaced.clear()

    def _refund(self, installation: int) -> None:
        with self.lock:
            if self.primary_limit is not None and installation in self.primary:
                left, reset_at = self.primary[installation]
                self.primary[installation] = (left + 1, reset_at)

    def served(self, path: str) -> dict[int, int]:
        """How many GETs whose path matches the glob were answered with each
        status (200: the whole answer; 304: not modified, free of the rate
        limit)."""
        counts: dict[int, int] = {}
        for call in self.calls("GET", path):
            counts[call.status] = counts.get(call.status, 0) + 1
        return counts

    def _limited(self, method: str, auth: str, installation: int | None,
                 path: str) -> Response | None:
        if auth != "token" or installation is None:
            return None
        now = time.monotonic()
        with self.lock:
            if self.primary_limit is not None:
                left, reset_at = self.primary.get(
                    installation, (self.primary_limit[0], time.time() + self.primary_limit[1])
                )
                if time.time() >= reset_at:
                    left, reset_at = self.primary_limit[0], time.time() + self.primary_limit[1]
                if left <= 0:
                    self.refused += 1
                    return self._primary_answer(installation, reset_at)
                self.primary[installation] = (left - 1, reset_at)
            if self.write_interval is not None and method in WRITE_METHODS:
                last = self.last_write.get(installation)
                if last is not None and now - last < self.write_interval:
                    self.refused += 1
                    self.unpaced.append((method, path))
                    return self._secondary_answer(1)
                self.last_write[installation] = now
            if self.write_limits is None or method not in WRITE_METHODS:
                return None
            per_minute, per_hour, retry_after = self.write_limits
            times = [t for t in self.write_times.get(installation, []) if t > now - 3600]
            self.write_times[installation] = times
            if len(times) >= per_hour or len([t for t in times if t > now - 60]) >= per_minute:
                self.refused += 1
                return self._secondary_answer(retry_after)
            times.append(now)
        return None

    @staticmethod
    def _secondary_answer(retry_after: int | None) -> Response:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return _json_response(
            403,
            {
                "message": SECONDARY_RATE_LIMIT_MESSAGE,
                "documentation_url": "https://docs.github.com/rest/overview/"
                "rate-limits-for-the-rest-api#about-secondary-rate-limits",
            },
            headers,
        )

    @staticmethod
    def _primary_answer(installation: int | None, reset_at: float) -> Response:
        return _json_response(
            403,
            {
                "message": PRIMARY_RATE_LIMIT_MESSAGE.format(id=installation),
                "documentation_url": "https://docs.github.com/rest/overview/"
                "rate-limits-for-the-rest-api#about-rate-limits",
            },
            {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
             "x-ratelimit-used": "5000", "x-ratelimit-resource": "core",
             "x-ratelimit-reset": str(int(reset_at + 0.999))},
        )

    # -- webhook deliveries ---------------------------------------------------------

    def send_delivery(self, payload: Any, event: str = "issues", guid: str | None = None,
                      redelivery: bool = False) -> int:
        """POST a signed delivery to ``webhook_url`` as GitHub does, and record
        the attempt (status 0 when nothing answered). Returns the status."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        guid = guid or str(uuid.uuid4())
        headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
                   "X-GitHub-Delivery": guid, "User-Agent": "GitHub-Hookshot/standin"}
        if self.webhook_secret:
            digest = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
        started = time.monotonic()
        status = 0
        if self.webhook_url is not None:
            request = urllib.request.Request(self.webhook_url, data=body, headers=headers,
                                             method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    status = answer.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (urllib.error.URLError, OSError):
                status = 0
        data = json.loads(body) if body.strip().startswith(b"{") else {}
        with self.lock:
            self.hook_deliveries.append(HookDelivery(
                id=next(self._delivery_ids), guid=guid, delivered_at=_now(),
                redelivery=redelivery, status_code=status, event=event,
                action=data.get("action") if isinstance(data, dict) else None,
                installation_id=(data.get("installation") or {}).get("id")
                if isinstance(data, dict) else None,
                body=body, duration=round(time.monotonic() - started, 3),
            ))
        return status

    def _list_hook_deliveries(self, call: Call) -> tuple[int, Any]:
        """Newest first; ``per_page`` and an opaque ``cursor`` (GitHub's paging
        for this endpoint: a Link header to the next page)."""
        args = call.request.args
        per_page = min(max(int(args.get("per_page", "30")), 1), self.per_page_max)
        start = int(args.get("cursor") or 0)
        with self.lock:
            newest = sorted(self.hook_deliveries, key=lambda d: d.id, reverse=True)
        wanted = args.get("status")
        if wanted in ("success", "failure"):
            newest = [d for d in newest if (200 <= d.status_code < 300) == (wanted == "success")]
        page = newest[start : start + per_page]
        [template] = example("apps/list-webhook-deliveries", call.base)[:1]
        items = [
            {**template, "id": d.id, "guid": d.guid, "delivered_at": _iso(d.delivered_at),
             "redelivery": d.redelivery, "duration": d.duration,
             "status": "OK" if 200 <= d.status_code < 300 else f"Invalid HTTP Response: "
             f"{d.status_code}" if d.status_code else "Couldn't connect to server",
             "status_code": d.status_code, "event": d.event, "action": d.action,
             "installation_id": d.installation_id, "repository_id": 1296269,
             "throttled_at": None}
            for d in page
        ]
        if start + per_page < len(newest):
            url = f"{call.base}/app/hook/deliveries?per_page={per_page}&cursor={start + per_page}"
            return 200, _Paged(items, f'<{url}>; rel="next"')
        return 200, items

    def _redeliver(self, call: Call) -> tuple[int, Any]:
        wanted = int(call.params["did"])
        with self.lock:
            found = next((d for d in self.hook_deliveries if d.id == wanted), None)
        if found is None:
            raise HttpError(404, "Not Found")
        # GitHub answers 202 and delivers a moment later.
        threading.Thread(
            target=self.send_delivery, args=(found.body, found.event, found.guid, True),
            daemon=True,
        ).start()
        return 202, None

    def _list_installations(self, call: Call) -> tuple[int, Any]:
        [template] = example("apps/list-installations", call.base)[:1]
        with self.lock:
            ids = sorted(self.installations)
        return 200, [{**template, "id": i, "app_id": self.app_id, "app_slug": self.slug,
                      "access_tokens_url": f"{call.base}/app/installations/{i}/access_tokens"}
                     for i in ids]

    def _list_installation_repos(self, call: Call) -> tuple[int, Any]:
        data = example("apps/list-repos-accessible-to-installation", call.base)
        [template] = data["repositories"][:1]
        with self.lock:
            mine = [r for r in self.repos.values() if r.installation_id == call.installation_id]
        repos = []
        for repo in mine:
            owner, name = repo.full_name.split("/")
            repos.append({**template, "name": name, "full_name": repo.full_name,
                          "owner": {**template["owner"], "login": owner},
                          "default_branch": repo.default_branch,
                          "url": f"{call.base}/repos/{repo.full_name}"})
        return 200, {**data, "total_count": len(repos), "repositories": repos}

    def _fault(self, fault: Fault, installation: int | None = None) -> Response | None:
        if fault.kind == "hang":
            self.stopping.wait(fault.hang_seconds)
            if fault.then_status is None:
                return None
            return _json_response(fault.then_status, {"message": "Server Error"})
        if fault.kind == "secondary_rate_limit":
            return self._secondary_answer(fault.retry_after)
        if fault.kind == "primary_rate_limit":  # resets ``retry_after`` seconds from now
            return self._primary_answer(installation, time.time() + (fault.retry_after or 60))
        if fault.kind == "502":  # GitHub's 502 is an HTML page, not JSON
            return Response(
                "<html><body><h1>502 Bad Gateway</h1></body></html>\n",
                status=502,
                mimetype="text/html",
            )
        return _json_response(int(fault.kind), {"message": "Server Error"})

    def _authenticate(self, header: str | None) -> tuple[str, int | None]:
        if not header:
            return "none", None
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        with self.lock:
            held = self.tokens.get(credential)
        if held is not None and scheme.lower() in ("token", "bearer"):
            installation, expires = held
            return ("token", installation) if expires > _now() else ("invalid", None)
        if scheme.lower() == "bearer":
            try:
                claims = jwt.decode(
                    credential,
                    self.public_key,
                    algorithms=["RS256"],
                    options={"require": ["iat", "exp", "iss"]},
                    leeway=60,
                )
            except jwt.PyJWTError:
                return "invalid", None
            # GitHub: iss is the App's id; a JWT may live at most 10 minutes.
            if str(claims.get("iss")) != str(self.app_id):
                return "invalid", None
            if int(claims["exp"]) - int(claims["iat"]) > 660:
                return "invalid", None
            return "jwt", None
        return "invalid", None

    def _route(
        self,
        request: Request,
        raw_path: str,
        base: str,
        body: Any,
        auth_kind: str,
        installation: int | None,
    ) -> Response:
        for method, pattern, handler, needs in self._routes:
            match = pattern.match(raw_path)
            if match is None or method != request.method:
                continue
            if needs == "jwt" and auth_kind != "jwt":
                if auth_kind == "token":
                    raise HttpError(
                        401,
                        "A JSON web token could not be decoded",
                    )
                raise HttpError(401, "Bad credentials")
            if needs == "token" and auth_kind != "token":
                raise HttpError(401, "Bad credentials")
            params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
            call = Call(request, base, params, body, installation)
            status, payload = handler(call)
            headers: dict[str, str] = {}
            if isinstance(payload, _Paged):
                headers["Link"] = payload.link
                payload = payload.items
            if request.method == "GET" and status == 200:
                # GitHub's ETag: a digest of the answer. A GET naming it in
                # If-None-Match is answered 304 with no body.
                etag = 'W/"' + hashlib.sha256(
                    json.dumps(payload, default=str, sort_keys=True).encode()).hexdigest() + '"'
                headers["ETag"] = etag
                asked = request.headers.get("If-None-Match", "")
                if etag in [tag.strip() for tag in asked.split(",")]:
                    return _not_modified(etag)
            return _json_response(status, payload, headers)
        raise HttpError(404, "Not Found")

    # -- endpoint helpers -----------------------------------------------------

    def _repo_for(self, call: Call) -> Repo:
        name = f"{call.params['owner']}/{call.params['repo']}".lower()
        repo = self.repos.get(name)
        # An installation sees only its own repositories; others are 404 as on GitHub.
        if repo is None or repo.installation_id != call.installation_id:
            raise HttpError(404, "Not Found")
        return repo

    def _issue_for(self, call: Call, repo: Repo) -> Issue:
        issue = repo.issues.get(int(call.params["number"]))
        if issue is None:
            raise HttpError(404, "Not Found")
        if issue.deleted:
            raise HttpError(410, "This issue was deleted")
        return issue

    def _label(self, repo: Repo, name: str, color: str, description: str | None = None) -> Label:
        label = Label(name=name, color=color, description=description, id=next(self._ids))
        repo.labels[name.lower()] = label
        return label

    def _label_json(self, repo: Repo, label: Label, base: str) -> dict[str, Any]:
        data: dict[str, Any] = example("issues/create-label", base)
        data.update(
            id=label.id,
            node_id=base64.b64encode(f"Label{label.id}".encode()).decode(),
            url=f"{base}/repos/{repo.full_name}/labels/{urllib.parse.quote(label.name, safe='')}",
            name=label.name,
            description=label.description,
            color=label.color,
            default=False,
        )
        return data

    def _issue_labels_json(self, repo: Repo, issue: Issue, base: str) -> list[dict[str, Any]]:
        return [self._label_json(repo, repo.labels[n.lower()], base) for n in issue.labels]

    def _user_json(self, login: str, kind: str, base: str) -> dict[str, Any]:
        data: dict[str, Any] = copy.deepcopy(example("issues/create-comment", base)["user"])
        for key, value in list(data.items()):
            if isinstance(value, str):
                data[key] = value.replace("octocat", login)
        data.update(login=login, type=kind)
        return data

    def _issue_json(self, repo: Repo, issue: Issue, base: str) -> dict[str, Any]:
        data: dict[str, Any] = example("issues/get", base)
        api = f"{base}/repos/{repo.full_name}"
        data.pop("pull_request", None)  # an issue, not a pull request
        milestone: dict[str, Any] | None = None
        if issue.milestone_set:
            milestone = data["milestone"]
            milestone.update(
                url=f"{api}/milestones/1",
                html_url=f"https://github.com/{repo.full_name}/milestone/1",
                labels_url=f"{api}/milestones/1/labels",
                title=issue.milestone_title,
                due_on=issue.milestone_due_on,
            )
        data.update(
            id=10_000 + issue.number,
            node_id=base64.b64encode(f"Issue{issue.number}".encode()).decode(),
            url=f"{api}/issues/{issue.number}",
            repository_url=api,
            labels_url=f"{api}/issues/{issue.number}/labels{{/name}}",
            comments_url=f"{api}/issues/{issue.number}/comments",
            events_url=f"{api}/issues/{issue.number}/events",
            html_url=f"https://github.com/{repo.full_name}/issues/{issue.number}",
            number=issue.number,
            state=issue.state,
            state_reason=issue.state_reason,
            title=issue.title,
            body=issue.body,
            user=self._user_json(issue.author, "User", base),
            labels=self._issue_labels_json(repo, issue, base),
            assignee=None,
            assignees=[],
            milestone=milestone,
            comments=len(issue.comments),
            closed_at=_iso(issue.updated_at) if issue.state == "closed" else None,
            closed_by=None,
            created_at=_iso(issue.created_at),
            updated_at=_iso(issue.updated_at),
        )
        return data

    def _comment_json(
        self, repo: Repo, issue_number: int, comment: Comment, base: str
    ) -> dict[str, Any]:
        data: dict[str, Any] = example("issues/create-comment", base)
        api = f"{base}/repos/{repo.full_name}"
        data.update(
            id=comment.id,
            node_id=base64.b64encode(f"IssueComment{comment.id}".encode()).decode(),
            url=f"{api}/issues/comments/{comment.id}",
            html_url=f"https://github.com/{repo.full_name}/issues/{issue_number}"
            f"#issuecomment-{comment.id}",
            body=comment.body,
            user=self._user_json(comment.login, comment.user_type, base),
            created_at=_iso(comment.created_at),
            updated_at=_iso(comment.updated_at),
            issue_url=f"{api}/issues/{issue_number}",
            author_association="NONE" if comment.user_type == "Bot" else "COLLABORATOR",
        )
        return data

    def _add_comment(self, issue: Issue, body: str, login: str, kind: str) -> Comment:
        moment = _now()
        comment = Comment(next(self._ids), body, login, kind, moment, moment)
        issue.comments.append(comment)
        return comment

    # -- endpoints ----------------------------------------------------------------

    def _get_app(self, call: Call) -> tuple[int, Any]:
        data = example("apps/get-authenticated", call.base)
        data.update(
            id=self.app_id,
            slug=self.slug,
            name=self.slug,
            html_url=f"https://github.com/apps/{self.slug}",
            permissions={"metadata": "read", "contents": "read", "issues": "write"},
            events=["issues"],
        )
        return 200, data

    def _token(self, call: Call) -> tuple[int, Any]:
        installation = int(call.params["iid"])
        with self.lock:
            if installation not in self.installations:
                raise HttpError(404, "Not Found")
            token = "ghs_" + secrets.token_hex(18)
            expires = _now() + self.token_ttl
            self.tokens[token] = (installation, expires)
        data = example("apps/create-installation-access-token", call.base)
        data.update(
            token=token,
            expires_at=_iso(expires),
            permissions={"issues": "write", "contents": "read", "metadata": "read"},
            repository_selection="all",
        )
        data.pop("repositories", None)
        return 201, data

    def _get_repo_installation(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self.repos.get(f"{call.params['owner']}/{call.params['repo']}".lower())
            if repo is None:
                raise HttpError(404, "Not Found")
            data = example("apps/get-repo-installation", call.base)
            data.update(id=repo.installation_id, app_id=self.app_id, app_slug=self.slug)
            return 200, data

    def _get_repo(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self._repo_for(call)
            data = example("repos/get", call.base)
            owner, name = repo.full_name.split("/")
            data.update(
                name=name,
                full_name=repo.full_name,
                default_branch=repo.default_branch,
                url=f"{call.base}/repos/{repo.full_name}",
                html_url=f"https://github.com/{repo.full_name}",
            )
            data["owner"] = {**data["owner"], "login": owner}
            return 200, data

    def _list_issues(self, call: Call) -> tuple[int, Any]:
        """GET .../issues?state=open (the only query the bot sends), paged."""
        state = call.request.args.get("state", "open")
        with self.lock:
            repo = self._repo_for(call)
            chosen = [i for _, i in sorted(repo.issues.items())
                      if not i.deleted and (state == "all" or i.state == state)]
            return self._paged(call, chosen, lambda i: self._issue_json(repo, i, call.base),
                               query=f"state={state}&")

    def _paged(
        self, call: Call, everything: list[Any], render: Callable[[Any], Any], query: str = ""
    ) -> tuple[int, Any]:
        """One page of ``everything`` as GitHub pages lists: ``page`` and
        ``per_page`` in the query, a Link header to the next and last page."""
        args = call.request.args
        per_page = min(max(int(args.get("per_page", "30")), 1), self.per_page_max)
        page = max(int(args.get("page", "1")), 1)
        items = [render(x) for x in everything[(page - 1) * per_page : page * per_page]]
        pages = max(1, -(-len(everything) // per_page))
        links = []
        url = f"{call.base}{call.request.path}?{query}"
        if page < pages:
            links.append(f'<{url}page={page + 1}&per_page={per_page}>; rel="next"')
            links.append(f'<{url}page={pages}&per_page={per_page}>; rel="last"')
        return 200, _Paged(items, ", ".join(links)) if links else items

    def _get_issue(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self._repo_for(call)
            return 200, self._issue_json(repo, self._issue_for(call, repo), call.base)

    def _list_comments(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self._repo_for(call)
            issue = self._issue_for(call, repo)
            return self._paged(call, list(issue.comments),
                               lambda c: self._comment_json(repo, issue.number, c, call.base))

    def _create_comment(self, call: Call) -> tuple[int, Any]:
        body = call.body.get("body") if isinstance(call.body, dict) else None
        if not isinstance(body, str) or not body:
            raise HttpError(422, "Validation Failed", errors=[{"field": "body", "code": "missing"}])
        with self.lock:
            repo = self._repo_for(call)
            issue = self._issue_for(call, repo)
            comment = self._add_comment(issue, body, self.bot_login, "Bot")
            return 201, self._comment_json(repo, issue.number, comment, call.base)

    def _update_comment(self, call: Call) -> tuple[int, Any]:
        body = call.body.get("body") if isinstance(call.body, dict) else None
        if not isinstance(body, str) or not body:
            raise HttpError(422, "Validation Failed", errors=[{"field": "body", "code": "missing"}])
        wanted = int(call.params["cid"])
        with self.lock:
            repo = self._repo_for(call)
            for issue in repo.issues.values():
                for comment in issue.comments:
                    if comment.id == wanted:
                        if comment.login != self.bot_login:
                            raise HttpError(403, "Resource not accessible by integration")
                        comment.body, comment.updated_at = body, _now()
                        return 200, self._comment_json(repo, issue.number, comment, call.base)
        raise HttpError(404, "Not Found")

    def _create_label(self, call: Call) -> tuple[int, Any]:
        data = call.body if isinstance(call.body, dict) else {}
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise HttpError(422, "Validation Failed", errors=[{"field": "name", "code": "missing"}])
        color = str(data.get("color") or "ededed").lstrip("#")
        with self.lock:
            repo = self._repo_for(call)
            if name.lower() in repo.labels:
                raise HttpError(
                    422,
                    "Validation Failed",
                    errors=[{"resource": "Label", "code": "already_exists", "field": "name"}],
                )
            description = data.get("description")
            if not isinstance(description, str):
                description = None
            label = self._label(repo, name, color, description)
            return 201, self._label_json(repo, label, call.base)

    def _add_labels(self, call: Call) -> tuple[int, Any]:
        names = call.body.get("labels") if isinstance(call.body, dict) else call.body
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise HttpError(422, "Invalid request.\n\nFor 'links/0/schema', nil is not an array.")
        with self.lock:
            repo = self._repo_for(call)
            issue = self._issue_for(call, repo)
            for name in names:
                # GitHub creates a missing label (default colour) when it is added.
                label = repo.labels.get(name.lower()) or self._label(repo, name, "ededed")
                if label.name.lower() not in (n.lower() for n in issue.labels):
                    issue.labels.append(label.name)
            issue.updated_at = _now()
            return 200, self._issue_labels_json(repo, issue, call.base)

    def _remove_label(self, call: Call) -> tuple[int, Any]:
        name = call.params["name"]
        with self.lock:
            repo = self._repo_for(call)
            issue = self._issue_for(call, repo)
            if name.lower() not in (n.lower() for n in issue.labels):
                raise HttpError(404, "Label does not exist")
            issue.labels = [n for n in issue.labels if n.lower() != name.lower()]
            issue.updated_at = _now()
            return 200, self._issue_labels_json(repo, issue, call.base)

    def _get_branch(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self._repo_for(call)
            if call.params["branch"] != repo.default_branch:
                raise HttpError(404, "Branch not found")
            commit_sha, tree_sha = repo.commit_sha, repo.tree_sha
            api = f"{call.base}/repos/{repo.full_name}"
        data = example("repos/get-branch", call.base)
        data["name"] = repo.default_branch
        commit = data["commit"]
        commit.update(
            sha=commit_sha,
            url=f"{api}/commits/{commit_sha}",
            html_url=f"https://github.com/{repo.full_name}/commit/{commit_sha}",
            comments_url=f"{api}/comments/{commit_sha}/comments",
        )
        commit["commit"]["url"] = f"{api}/git/commits/{commit_sha}"
        commit["commit"]["tree"] = {"sha": tree_sha, "url": f"{api}/git/trees/{tree_sha}"}
        data["_links"] = {
            "html": f"https://github.com/{repo.full_name}/tree/{repo.default_branch}",
            "self": f"{api}/branches/{repo.default_branch}",
        }
        data["protection_url"] = f"{api}/branches/{repo.default_branch}/protection"
        return 200, data

    def _get_tree(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            repo = self._repo_for(call)
            if call.params["sha"] not in (repo.tree_sha, repo.commit_sha, repo.default_branch):
                raise HttpError(404, "Not Found")
            paths = repo.paths()
            tree_sha = repo.tree_sha
        recursive = call.request.args.get("recursive") not in (None, "", "0", "false")
        api = f"{call.base}/repos/{repo.full_name}"
        entries: list[dict[str, Any]] = []
        seen_dirs: set[str] = set()
        for path in paths:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in seen_dirs and (recursive or depth == 1):
                    seen_dirs.add(folder)
                    sha = _sha("dir", repo.full_name, repo.revision, folder)
                    entries.append(
                        {"path": folder, "mode": "040000", "type": "tree", "sha": sha,
                         "url": f"{api}/git/trees/{sha}"}
                    )
            if recursive or len(parts) == 1:
                sha = _sha("blob", path)
                entries.append(
                    {"path": path, "mode": "100644", "type": "blob", "size": 100, "sha": sha,
                     "url": f"{api}/git/blobs/{sha}"}
                )
        data = example("git/get-tree.response-recursively-retrieving-a-tree", call.base)
        data.update(sha=tree_sha, url=f"{api}/git/trees/{tree_sha}", tree=entries, truncated=False)
        return 200, data

    def _get_permission(self, call: Call) -> tuple[int, Any]:
        """GET /repos/{o}/{r}/collaborators/{username}/permission: the role in
        ``role_name``, the legacy base role in ``permission`` (maintain reads
        as write, triage as read), as GitHub documents it."""
        repo = self._repo_for(call)
        login = call.params["username"]
        role = repo.roles.get(login.lower(), repo.default_role)
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
        data = example("repos/get-collaborator-permission-level", call.base)
        data.update(permission=legacy, role_name=role)
        data["user"] = self._user_json(login, "User", call.base)
        return 200, data

    def _get_content(self, call: Call) -> tuple[int, Any]:
        path = call.params["path"]
        ref = call.request.args.get("ref")
        with self.lock:
            repo = self._repo_for(call)
            if ref not in (None, repo.default_branch, repo.commit_sha):
                raise HttpError(404, f"No commit found for the ref {ref}")
            text = repo.config_text if path == CONFIG_PATH else None
            commit_sha = repo.commit_sha
        if text is None:
            raise HttpError(404, "Not Found")
        raw = text.encode("utf-8")
        sha = _sha("blob", path, text)
        api = f"{call.base}/repos/{repo.full_name}"
        data = example("repos/get-content", call.base)
        data.update(
            type="file",
            encoding="base64",
            size=len(raw),
            name=path.rsplit("/", 1)[-1],
            path=path,
            content=base64.encodebytes(raw).decode(),  # GitHub wraps at 60-76 columns
            sha=sha,
            url=f"{api}/contents/{path}?ref={commit_sha}",
            git_url=f"{api}/git/blobs/{sha}",
            html_url=f"https://github.com/{repo.full_name}/blob/{commit_sha}/{path}",
            download_url=None,
            _links={
                "self": f"{api}/contents/{path}?ref={commit_sha}",
                "git": f"{api}/git/blobs/{sha}",
                "html": f"https://github.com/{repo.full_name}/blob/{commit_sha}/{path}",
            },
        )
        return 200, data

    # -- control API (process mode) -------------------------------------------

    def _control(self, request: Request, path: str) -> Response:
        """A small JSON API to drive the stand-in from another process."""
        body = self._body(request)
        data = body if isinstance(body, dict) else {}
        what = path[len("/_standin/") :].strip("/")
        try:
            if what == "requests" and request.method == "GET":
                return _json_response(200, [asdict(r) for r in self.calls()])
            if what == "requests" and request.method == "DELETE":
                self.clear_calls()
                return _json_response(204, None)
            if what == "repos" and request.method == "POST":
                repo = self.add_repo(
                    data["full_name"],
                    installation_id=int(data.get("installation_id", 1)),
                    files=int(data.get("files", 20)),
                    default_branch=data.get("default_branch", "main"),
                    config_text=data.get("config_text"),
                )
                return _json_response(201, {"full_name": repo.full_name})
            if what == "issues" and request.method == "POST":
                self.add_issue(
                    data["repo"],
                    int(data["number"]),
                    title=data.get("title", "An issue"),
                    body=data.get("body", ""),
                    labels=data.get("labels", []),
                    milestone_due_on=data.get("milestone_due_on"),
                    author=data.get("author", "octocat"),
                )
                base = request.host_url.rstrip("/")
                return _json_response(201, self.issue_json(data["repo"], int(data["number"]), base))
            match = re.fullmatch(r"issues/([^/]+/[^/]+)/(\d+)", what)
            if match and request.method == "GET":
                issue = self.issue(match.group(1), int(match.group(2)))
                base = request.host_url.rstrip("/")
                return _json_response(
                    200,
                    {
                        "issue": self.issue_json(match.group(1), issue.number, base),
                        "comments": [asdict(c) for c in issue.comments],
                    },
                )
            if what == "faults" and request.method == "POST":
                fault = self.inject_fault(
                    data["path"],
                    str(data.get("kind", "500")),
                    data.get("times", 1),
                    method=data.get("method"),
                    retry_after=data.get("retry_after", 1),
                    hang_seconds=float(data.get("hang_seconds", 5.0)),
                    then_status=data.get("then_status", 502),
                )
                return _json_response(201, asdict(fault))
            if what == "pace" and request.method == "POST":
                low, high = data.get("latency", [0.0, 0.0])
                with self.lock:
                    self.latency = (float(low), float(high))
                limits = data.get("write_limits")
                if limits:
                    self.limit_writes(int(limits[0]), int(limits[1]),
                                      None if limits[2] is None else int(limits[2]))
                else:
                    with self.lock:
                        self.write_limits = None
                return _json_response(204, None)
            if what == "pace" and request.method == "GET":
                with self.lock:
                    return _json_response(200, {"refused": self.refused,
                                                "latency": list(self.latency)})
            if what == "faults" and request.method == "DELETE":
                self.clear_faults()
                return _json_response(204, None)
        except (KeyError, ValueError, TypeError) as exc:
            return _json_response(400, {"message": f"bad control request: {exc!r}"})
        return _json_response(404, {"message": "Not Found"})


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


# -- serving -------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class StandInServer:
    """Serve a GitHubStandIn from a thread of this process, on loopback."""

    def __init__(self, standin: GitHubStandIn, host: str = "127.0.0.1", port: int = 0) -> None:
        self.standin = standin
        self.host = host
        self._server: BaseWSGIServer = make_server(
            host, port, standin, threaded=True, request_handler=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> StandInServer:
        self.standin.stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="github-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.standin.stopping.set()  # wake hanging requests
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.github_standin",
        description="Serve the GitHub REST stand-in on loopback (control API under /_standin/).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--app-id", type=int, required=True)
    parser.add_argument("--public-key-file", required=True, help="the App's public key (PEM)")
    parser.add_argument("--slug", default="model-assigner-test")
    parser.add_argument("--repo", action="append", default=[], help="owner/name (repeatable)")
    parser.add_argument("--installation", type=int, default=1)
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args(argv)
    standin = GitHubStandIn(
        args.app_id, Path(args.public_key_file).read_text(encoding="utf-8"), slug=args.slug
    )
    for name in args.repo:
        standin.add_repo(name, installation_id=args.installation, files=args.files)
    server = StandInServer(standin, args.host, args.port)
    print(f"github-standin listening on {server.url}", flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stopping.set()
        server._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
