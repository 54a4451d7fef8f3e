"""The real IssueGateway, through PyGithub, authenticated as a GitHub App.

Choices that matter for a webhook handler (GitHub gives it 10 seconds):
- PyGithub's default pacing (0.25 s between requests, 1 s between writes) is
  for scripts that crawl; a handler makes a handful of calls, so pacing is off
  and we rely on GitHub's own rate-limit answers instead, which the retry
  policy (bot/github/retry.py) honours.
- Retries are few and short, and a ``Retry-After`` longer than we can wait
  inside the delivery window fails fast: GitHub can redeliver, and the store
  is left as it was.
- Objects are lazy: acting on an issue, a comment or a label costs only the
  write itself, not a GET first.
- Installation tokens are cached by PyGithub's AppInstallationAuth and renewed
  shortly before they expire; clients are kept per installation.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException, GithubIntegration
from github.IssueComment import IssueComment

from model_assigner.bot.github.app_key import jwt_signer
from model_assigner.bot.github.conditional import ConditionalReads
from model_assigner.bot.github.gateway import (
    CommentGone,
    GitHubRateLimited,
    GitHubUnavailable,
    IssueGone,
    Workspace,
)
from model_assigner.bot.github.retry import (
    BudgetTimeout,
    DeliveryBudgetSpent,
    RateLimitHit,
    RetryAfterTooLong,
    delivery_retry,
    rate_limit_of,
)
from model_assigner.bot.queue.ratelimit import RateLimits
from model_assigner.bot.settings import Settings

log = logging.getLogger("model_assigner.github")

REQUEST_TIMEOUT = 3  # seconds, per request
# Seconds a default branch's head commit is trusted before it is read again
# (conditionally: an unchanged branch answers 304, free of the rate limit).
BRANCH_TTL_ENV = "MODEL_ASSIGNER_BRANCH_TTL_SECONDS"


def _branch_ttl() -> float:
    try:
        value = float(os.environ.get(BRANCH_TTL_ENV, "") or 60.0)
    except ValueError:
        return 60.0
    return value if 0 <= value <= 3600 else 60.0


BRANCH_TTL = _branch_ttl()
PERMISSION_TTL = 300.0  # seconds a person's role on a repository is trusted
# GitHub's roles; a custom role reads as the base permission GitHub gives with it.
ROLES = ("none", "read", "triage", "write", "maintain", "admin")
CACHE_SIZE = 512

K = TypeVar("K")
V = TypeVar("V")


CLIENT_OPTIONS: dict[str, Any] = {
    "timeout": REQUEST_TIMEOUT,
    "seconds_between_requests": None,
    "seconds_between_writes": None,
    "lazy": True,
}


class BoundedCache(OrderedDict[K, V]):
    """A tiny LRU: per-worker caches must not grow with every repository seen."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        super().__init__()
        self.size = size

    def put(self, key: K, value: V) -> V:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


def _status(exc: GithubException) -> int:
    return int(exc.status or 0)


def _unavailable(what: str, exc: Exception) -> GitHubUnavailable:
    if isinstance(exc, RateLimitHit):
        return GitHubRateLimited(f"{what}: rate limited (HTTP {exc.status})", wait=exc.wait,
                                 answered=True)
    if isinstance(exc, RetryAfterTooLong):
        return GitHubRateLimited(f"{what}: {exc.data['message']}", wait=exc.wait, answered=True)
    if isinstance(exc, GithubException) and _status(exc) in (403, 429):
        message = exc.data.get("message") if isinstance(exc.data, dict) else ""
        hit = rate_limit_of(_status(exc), exc.headers or {}, str(message or ""))
        if hit is not None:
            return GitHubRateLimited(f"{what}: rate limited (HTTP {exc.status})", wait=hit.wait,
                                     answered=True)
    if isinstance(exc, DeliveryBudgetSpent):
        return GitHubUnavailable(f"{what}: {exc.data['message']}")
    if isinstance(exc, GithubException):
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        detail = f"HTTP {exc.status}" + (f": {message}" if message else "")
    else:
        detail = type(exc).__name__
    return GitHubUnavailable(f"{what}: {detail}")


class GitHubApp:
    """One per worker: the App's identity and its installation clients."""

    def __init__(self, settings: Settings, limiter: RateLimits | None = None) -> None:
        assert settings.app_id is not None and settings.private_key is not None
        self.limiter = limiter
        self._auth = Auth.AppAuth(settings.app_id, sign_func=jwt_signer(settings.private_key))
        options = {**CLIENT_OPTIONS, "timeout": BudgetTimeout(CLIENT_OPTIONS["timeout"])}
        self.integration = GithubIntegration(
            auth=self._auth, base_url=settings.api_url, retry=delivery_retry(), **options
        )
        self._bot_login = settings.bot_login
        self._clients: BoundedCache[int, InstallationGateway] = BoundedCache(CACHE_SIZE)
        self._lock = threading.Lock()
        self._login_lock = threading.Lock()

    def bot_login(self) -> str:
        """``<slug>[bot]``, the login our own events arrive from (GET /app, once)."""
        with self._login_lock:  # one GET /app per process, not one per thread
            if self._bot_login is None:
                try:
                    slug = self.integration.get_app().slug
                except (GithubException, requests.RequestException) as exc:
                    raise _unavailable("GET /app", exc) from None
                self._bot_login = f"{slug}[bot]"
            return self._bot_login

    def known_bot_login(self) -> str | None:
        """The login if this process knows it already (no GitHub call)."""
        return self._bot_login

    def installation(self, installation_id: int) -> InstallationGateway:
        with self._lock:
            client = self._clients.get(installation_id)
            if client is None:
                github = self.integration.get_github_for_installation(installation_id)
                client = self._clients.put(
                    installation_id,
                    InstallationGateway(github, self.bot_login, self.limiter, installation_id),
                )
            return client


class InstallationGateway:
    """IssueGateway for one installation."""

    dry_run = False

    def __init__(
        self, github: Github, bot_login: Callable[[], str] | None = None,
        limiter: RateLimits | None = None, installation_id: int = 0,
    ) -> None:
        self.github = github
        self._bot_login = bot_login
        self.limiter = limiter
        self.installation_id = installation_id
        self._branches: BoundedCache[tuple[str, str], tuple[float, str, str]] = BoundedCache()
        # By tree SHA: a new commit with the same tree costs no request.
        self._tree_counts: BoundedCache[tuple[str, str], int] = BoundedCache()
        self._configs: BoundedCache[tuple[str, str], str | None] = BoundedCache()
        # The config file's blob SHA at a commit (from its tree), and the text
        # of a blob: a commit that leaves the config as it was costs no read.
        self._config_blobs: BoundedCache[tuple[str, str], str] = BoundedCache()
        self._config_texts: BoundedCache[tuple[str, str], str | None] = BoundedCache()
        self.reads = ConditionalReads(github.requester)
        self._labels: BoundedCache[tuple[str, str], bool] = BoundedCache(4 * CACHE_SIZE)
        self._permissions: BoundedCache[tuple[str, str], tuple[float, str]] = BoundedCache()
        self._lock = threading.Lock()

    def _repo(self, repo: str) -> Any:
        return self.github.get_repo(repo)

    def _read_gate(self) -> None:
        """While the installation is rate limited, not even a read is sent."""
        if self.limiter is not None:
            self.limiter.check(self.installation_id)

    def _write_gate(self) -> None:
        """Content-creating requests are paced by the installation's policy."""
        if self.limiter is not None:
            self.limiter.before_write(self.installation_id)

    def get_issue(self, repo: str, number: int, payload_issue: Mapping[str, Any]) -> dict[str, Any]:
        self._read_gate()
        try:
            data = dict(self._repo(repo).get_issue(number).raw_data)
        except GithubException as exc:
            if _status(exc) in (404, 410):
                raise IssueGone(f"{repo}#{number}") from None
            raise _unavailable(f"GET issue {repo}#{number}", exc) from None
        except requests.RequestException as exc:
            raise _unavailable(f"GET issue {repo}#{number}", exc) from None
        # A transferred issue answers 301, and requests follows it to the issue
        # in its new repository: for this repository it is gone.
        where = str(data.get("repository_url") or "")
        if data.get("number") != number or not where.casefold().endswith(
            f"/repos/{repo}".casefold()
        ):
            raise IssueGone(f"{repo}#{number} (moved to {where.rsplit('/repos/', 1)[-1]})")
        return data

    def workspace(self, repo: str, default_branch: str) -> Workspace:
        """File count of the default branch's tree, cached per commit."""
        self._read_gate()
        try:
            commit_sha, tree_sha = self._head(repo, default_branch)
            with self._lock:
                count = self._tree_counts.get((repo, tree_sha))
            if count is None:
                url = f"{self._repo(repo).url}/git/trees/{tree_sha}?recursive=1"
                count, config_blob = self.reads.get(url, _tree_summary)
                with self._lock:
                    self._tree_counts.put((repo, tree_sha), count)
                    if config_blob is not None:
                        self._config_blobs.put((repo, commit_sha), config_blob)
            return Workspace(commit_sha=commit_sha, file_count=count)
        except GithubException as exc:
            if _status(exc) in (404, 409):  # empty repository or missing branch
                return Workspace(commit_sha=None, file_count=0)
            raise _unavailable(f"GET tree {repo}", exc) from None
        except requests.RequestException as exc:
            raise _unavailable(f"GET tree {repo}", exc) from None

    def _head(self, repo: str, branch: str) -> tuple[str, str]:
        now = time.monotonic()
        with self._lock:
            cached = self._branches.get((repo, branch))
        if cached is not None and now - cached[0] < BRANCH_TTL:
            return cached[1], cached[2]
        url = f"{self._repo(repo).url}/branches/{urllib.parse.quote(branch, safe='')}"
        commit_sha, tree_sha = self.reads.get(url, _head_of)
        with self._lock:
            self._branches.put((repo, branch), (now, commit_sha, tree_sha))
        return commit_sha, tree_sha

    def repo_config_text(self, repo: str, ref: str | None) -> str | None:
        from model_assigner.bot.github.repo_config import REPO_CONFIG_PATH

        if ref is None:
            return None
        with self._lock:
            if (repo, ref) in self._configs:
                return self._configs[(repo, ref)]
            blob = self._config_blobs.get((repo, ref))
            if blob is not None and (repo, blob) in self._config_texts:
                text = self._config_texts[(repo, blob)]
                self._configs.put((repo, ref), text)
                return text
        self._read_gate()
        try:
            url = (f"{self._repo(repo).url}/contents/{REPO_CONFIG_PATH}"
                   f"?ref={urllib.parse.quote(ref, safe='')}")
            text = self.reads.get(url, _config_text)
        except GithubException as exc:
            if _status(exc) != 404:
                raise _unavailable(f"GET {REPO_CONFIG_PATH} {repo}", exc) from None
            text = None
        except requests.RequestException as exc:
            raise _unavailable(f"GET {REPO_CONFIG_PATH} {repo}", exc) from None
        with self._lock:
            self._configs.put((repo, ref), text)
            if blob is not None:
                self._config_texts.put((repo, blob), text)
        return text

    def find_comment(self, repo: str, number: int, marker: str) -> tuple[int, str] | None:
        self._read_gate()
        try:
            ours = self._bot_login().casefold() if self._bot_login else None
            for comment in self._repo(repo).get_issue(number).get_comments():
                # Only our own comment: a person quoting our marker, or another
                # App's copy of it, must not become the comment we edit (we
                # could not: 403, and every delivery for the issue would 503).
                user = comment.user
                if marker not in (comment.body or "") or user is None:
                    continue
                if (user.login or "").casefold() == ours if ours else user.type == "Bot":
                    return comment.id, comment.body
        except GithubException as exc:
            raise _unavailable(f"GET comments {repo}#{number}", exc) from None
        except requests.RequestException as exc:
            raise _unavailable(f"GET comments {repo}#{number}", exc) from None
        return None

    def create_comment(self, repo: str, number: int, body: str) -> int:
        self._write_gate()
        try:
            return int(self._repo(repo).get_issue(number).create_comment(body).id)
        except (GithubException, requests.RequestException) as exc:
            raise _unavailable(f"POST comment {repo}#{number}", exc) from None

    def edit_comment(self, repo: str, comment_id: int, body: str) -> None:
        self._write_gate()
        url = f"{self._repo(repo).url}/issues/comments/{comment_id}"
        try:
            IssueComment(self.github.requester, url=url).edit(body)
        except GithubException as exc:
            if _status(exc) in (404, 410):
                raise CommentGone(f"{repo} comment {comment_id}") from None
            raise _unavailable(f"PATCH comment {repo}/{comment_id}", exc) from None
        except requests.RequestException as exc:
            raise _unavailable(f"PATCH comment {repo}/{comment_id}", exc) from None

    def ensure_label(self, repo: str, name: str, color: str, description: str) -> None:
        """Create the label once per repository, whatever the number of
        workers, processes and replicas: the first to claim it in the queue's
        database sends the POST (422 means it exists); the others, and this
        process afterwards, do not."""
        with self._lock:
            if (repo, name.lower()) in self._labels:
                return
        if self.limiter is None or self.limiter.claim_label(repo, name):
            try:
                self._write_gate()
                self._repo(repo).create_label(name, color, description)
            except GithubException as exc:
                if _status(exc) != 422:
                    self._forget_label(repo, name)
                    raise _unavailable(f"POST label {repo} {name}", exc) from None
            except requests.RequestException as exc:
                self._forget_label(repo, name)
                raise _unavailable(f"POST label {repo} {name}", exc) from None
            except BaseException:
                self._forget_label(repo, name)
                raise
        with self._lock:
            self._labels.put((repo, name.lower()), True)

    def _forget_label(self, repo: str, name: str) -> None:
        if self.limiter is not None:
            self.limiter.forget_label(repo, name)

    def add_label(self, repo: str, number: int, name: str) -> None:
        self._write_gate()
        try:
            self._repo(repo).get_issue(number).add_to_labels(name)
        except (GithubException, requests.RequestException) as exc:
            raise _unavailable(f"POST labels {repo}#{number}", exc) from None

    def remove_label(self, repo: str, number: int, name: str) -> None:
        self._write_gate()
        # Not issue.remove_from_labels: it leaves a "/" in the name unquoted,
        # which sends the request to the wrong path.
        issue = self._repo(repo).get_issue(number)
        try:
            issue.requester.requestJsonAndCheck(
                "DELETE", f"{issue.url}/labels/{urllib.parse.quote(name, safe='')}"
            )
        except GithubException as exc:
            if _status(exc) != 404:  # already gone: what we wanted
                raise _unavailable(f"DELETE label {repo}#{number}", exc) from None
        except requests.RequestException as exc:
            raise _unavailable(f"DELETE label {repo}#{number}", exc) from None

    def permission(self, repo: str, login: str) -> str | None:
        """GET /repos/{owner}/{repo}/collaborators/{username}/permission: the
        person's role (``role_name``: triage and maintain included), cached
        for PERMISSION_TTL per repository and person. Not a collaborator, or
        not a user (a plain 403 or 404): "none".

        A rate limit is a 403 too, but says nothing of the person: it is
        raised (GitHubRateLimited: the job waits in the queue) and nothing is
        cached, or a maintainer's model label would be refused, and taken
        off, for PERMISSION_TTL."""
        key = (repo.lower(), login.lower())
        now = time.monotonic()
        with self._lock:
            cached = self._permissions.get(key)
        if cached is not None and now - cached[0] < PERMISSION_TTL:
            return cached[1]
        self._read_gate()
        url = (f"{self._repo(repo).url}/collaborators/"
               f"{urllib.parse.quote(login, safe='')}/permission")
        try:
            _, data = self.github.requester.requestJsonAndCheck("GET", url)
            role = str(data.get("role_name") or "")
            if role not in ROLES:
                role = str(data.get("permission") or "none")
            role = role if role in ROLES else "none"
        except GithubException as exc:
            failure = _unavailable(f"GET permission {repo} {login}", exc)
            if isinstance(failure, GitHubRateLimited) or _status(exc) not in (403, 404):
                raise failure from None
            role = "none"
        except requests.RequestException as exc:
            raise _unavailable(f"GET permission {repo} {login}", exc) from None
        with self._lock:
            self._permissions.put(key, (now, role))
        return role


def _head_of(data: Any) -> tuple[str, str]:
    """GET /repos/{o}/{r}/branches/{branch}: the head commit's SHA and its tree's."""
    commit = data["commit"]
    return str(commit["sha"]), str(commit["commit"]["tree"]["sha"])


def _tree_summary(data: Any) -> tuple[int, str | None]:
    """GET .../git/trees/{sha}?recursive=1: the number of files, and the blob
    SHA of the repository's config file when it is a regular file there."""
    from model_assigner.bot.github.repo_config import REPO_CONFIG_PATH

    count = 0
    config_blob: str | None = None
    for element in data.get("tree") or []:
        if element.get("type") != "blob":
            continue
        count += 1
        if element.get("path") == REPO_CONFIG_PATH and element.get("mode") in ("100644",
                                                                               "100755"):
            config_blob = str(element.get("sha") or "") or None
    return count, config_blob


def _config_text(data: Any) -> str | None:
    """GET .../contents/.github/model-assigner.yml?ref=...: the text, or why
    it cannot be used (repo_config.Unreadable)."""
    from model_assigner.bot.github.repo_config import REPO_CONFIG_MAX_BYTES, Unreadable

    if isinstance(data, list):
        return Unreadable("a folder, not a file")
    kind = data.get("type")
    if kind in ("symlink", "submodule"):
        # GitHub sends no content to decode.
        return Unreadable(f"a {kind}, not a file")
    if kind != "file":
        return Unreadable("not a file")
    if int(data.get("size") or 0) > REPO_CONFIG_MAX_BYTES or data.get("encoding") != "base64":
        # Over 1 MB GitHub inlines nothing ("encoding": "none").
        return Unreadable(f"larger than {REPO_CONFIG_MAX_BYTES:,} bytes")
    try:
        raw = base64.b64decode(str(data.get("content") or ""))
    except (binascii.Error, ValueError):
        return Unreadable("not base64 content")
    return raw.decode("utf-8", errors="replace")
