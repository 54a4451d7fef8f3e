"""The stand-in's state and the JSON it answers with: repositories, issues,
comments and labels, set up and inspected directly in thread mode."""

from __future__ import annotations

import base64
import copy
import fnmatch
import itertools
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from bench.github_standin.model import (
    Call,
    Comment,
    Fault,
    HookDelivery,
    HttpError,
    Issue,
    Label,
    RecordedRequest,
    Repo,
    _iso,
    _now,
    _Paged,
    example,
)


class StandInState:
    """The state. Thread-safe: one lock guards it."""

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

    def served(self, path: str) -> dict[int, int]:
        """How many GETs whose path matches the glob were answered with each
        status (200: the whole answer; 304: not modified, free of the rate
        limit)."""
        counts: dict[int, int] = {}
        for call in self.calls("GET", path):
            counts[call.status] = counts.get(call.status, 0) + 1
        return counts

    def issue_json(self, full_name: str, number: int, base_url: str) -> dict[str, Any]:
        """The issue as GET /repos/{o}/{r}/issues/{n} shows it (for webhook payloads)."""
        with self.lock:
            repo = self.repo(full_name)
            return self._issue_json(repo, repo.issues[number], base_url)

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
