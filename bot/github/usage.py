"""Which repositories the App is installed on, for usage reports.

A workflow's token names its repository; a report is taken only when the App
is installed there (``GET /repos/{owner}/{repo}/installation`` as the App),
and the bot's comment is then edited through that installation. Answers are
cached for a while: a workflow may report several runs in a row.
"""

from __future__ import annotations

import threading
import time

import requests
from github import GithubException

from model_assigner.bot.github.api import GitHubApp, _unavailable
from model_assigner.bot.github.gateway import IssueGateway

INSTALLED_TTL = 600.0  # seconds a "yes, installed" is trusted
NOT_INSTALLED_TTL = 60.0


class Installations:
    """The App's installation per repository, through the App's own JWT."""

    def __init__(self, app: GitHubApp) -> None:
        self.app = app
        self._known: dict[str, tuple[float, int | None]] = {}
        self._lock = threading.Lock()

    def installation_id(self, repo: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            cached = self._known.get(repo.lower())
        if cached is not None and cached[0] > now:
            return cached[1]
        owner, _, name = repo.partition("/")
        try:
            found: int | None = int(self.app.integration.get_repo_installation(owner, name).id)
        except GithubException as exc:
            if exc.status != 404:
                raise _unavailable(f"GET /repos/{repo}/installation", exc) from None
            found = None
        except requests.RequestException as exc:
            raise _unavailable(f"GET /repos/{repo}/installation", exc) from None
        ttl = INSTALLED_TTL if found is not None else NOT_INSTALLED_TTL
        with self._lock:
            if len(self._known) > 4096:
                self._known.clear()
            self._known[repo.lower()] = (now + ttl, found)
        return found

    def installed(self, repo: str) -> bool:
        return self.installation_id(repo) is not None

    def gateway(self, repo: str) -> IssueGateway | None:
        installation = self.installation_id(repo)
        return None if installation is None else self.app.installation(installation)
