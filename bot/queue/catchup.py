"""Catch up what was missed: failed deliveries and undecided open issues.

Run by one worker thread of each process at start and every
``MODEL_ASSIGNER_CATCHUP_SECONDS`` (600 by default); a run that another
process made less than that long ago is skipped (the queue's file says
when), so the App is not asked once per process.

1. Deliveries. ``GET /app/hook/deliveries`` (every page, newest first, until
   GitHub's 3-day window ends) lists each attempt with its GUID (the
   ``X-GitHub-Delivery`` id) and status code. A GUID that no attempt
   delivered (no 2xx) and that neither the queue nor the store knows is
   redelivered (``POST /app/hook/deliveries/{id}/attempts``): it then
   arrives as an ordinary, signed delivery.
2. Issues. For each installation (``GET /app/installations``) and each of
   its repositories (``GET /installation/repositories``), the open issues
   (``GET /repos/{o}/{r}/issues?state=open``) that carry no model label and
   of which the store has no trace, and that are not in the queue, are
   enqueued as an ``opened`` delivery of their current state. This finds
   what no delivery can: issues opened while the App's webhook was off, or
   whose deliveries are older than three days.
3. Deferred issues. The issues the online strategy deferred and whose value
   now covers its prices (as a reset nears, every one that fits;
   bot/queue/redecide.py) are enqueued as an ``edited`` delivery of their current
   state, at most once an hour each, and decided again like any other.
Reads are not content-creating, so they are not paced; a rate limit stops
the run (the workers' rate policy then holds the installation).
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import requests
from github import GithubException

from model_assigner.bot.github.api import GitHubApp
from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.issue_task import issue_key, label_names
from model_assigner.bot.queue.jobs import JobQueue, QueueMeta
from model_assigner.bot.queue.redecide import due_issue_keys
from model_assigner.bot.settings import Settings
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import State

log = logging.getLogger("model_assigner.catchup")

WINDOW = timedelta(days=3)
PER_PAGE = 100
LAST_RUN = "catchup_at"


def _claim_run(db: QueueMeta, every: float) -> bool:
    """Whether this process should run now (and note that it does)."""
    return db.claim_run(LAST_RUN, every)


class CatchUpServices(Protocol):
    """What a catch-up uses of the process's services (bot/wiring.py's
    ``Services``, which builds it): named here so this module does not import
    the module that imports it."""

    settings: Settings
    handler: Handler
    store: StateStore
    queue: JobQueue
    github: GitHubApp | None


class CatchUp:
    def __init__(self, services: CatchUpServices) -> None:
        assert services.github is not None
        self.services = services
        self.app = services.github
        self.requester = services.github.integration.requester

    def run(self, force: bool = False) -> dict[str, int]:
        """One catch-up; returns how many deliveries were redelivered and how
        many issues enqueued."""
        every = self.services.settings.queue.catchup_seconds
        if not force and not _claim_run(self.services.queue.db, every):
            return {"redelivered": 0, "enqueued": 0}
        found = {"redelivered": 0, "enqueued": 0}
        try:
            found["redelivered"] = self.redeliver_failed()
            found["enqueued"] = self.sweep_issues()
        except (GithubException, requests.RequestException) as exc:
            log.warning("catch-up stopped: GitHub: %s", exc)
        total = found["redelivered"] + found["enqueued"]
        if total:
            self.services.queue.add_counter("caught_up", total)
            log.info("catch-up: %d deliveries redelivered, %d issues enqueued",
                     found["redelivered"], found["enqueued"])
        return found

    # -- deliveries --------------------------------------------------------

    def _get(self, url: str, parameters: dict[str, Any] | None = None
             ) -> tuple[dict[str, Any], Any]:
        headers, data = self.requester.requestJsonAndCheck("GET", url, parameters=parameters)
        return headers, data

    def recent_deliveries(self) -> list[dict[str, Any]]:
        """Every attempt of the last three days (GitHub pages with a cursor in
        the Link header)."""
        cutoff = datetime.now(UTC) - WINDOW
        found: list[dict[str, Any]] = []
        url: str | None = "/app/hook/deliveries"
        parameters: dict[str, Any] | None = {"per_page": PER_PAGE}
        while url is not None:
            headers, page = self._get(url, parameters)
            if not isinstance(page, list):
                break
            old = False
            for item in page:
                if not isinstance(item, dict):
                    continue
                try:
                    when = datetime.fromisoformat(str(item.get("delivered_at")))
                except ValueError:
                    continue
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                if when < cutoff:
                    old = True
                    continue
                found.append(item)
            url, parameters = (None, None) if old else (_next_link(headers), None)
        return found

    def redeliver_failed(self) -> int:
        attempts = self.recent_deliveries()
        delivered = {str(a.get("guid")) for a in attempts if _ok(a.get("status_code"))}
        queue, store = self.services.queue, self.services.store
        redelivered = 0
        seen: set[str] = set()
        for attempt in attempts:  # newest first: the newest attempt of each GUID
            guid = str(attempt.get("guid") or "")
            if not guid or guid in delivered or guid in seen:
                continue
            seen.add(guid)
            if attempt.get("event") not in ("issues",):
                continue
            if queue.seen(guid) or store.seen_delivery(guid):
                continue
            self.requester.requestJsonAndCheck(
                "POST", f"/app/hook/deliveries/{int(attempt['id'])}/attempts"
            )
            redelivered += 1
        return redelivered

    # -- issues ------------------------------------------------------------

    def sweep_issues(self) -> int:
        handler = self.services.handler
        known = handler.store.view(settled_keys)
        pending = self.services.queue.pending_keys()
        # Deferred by the online strategy and now worth their price: decided
        # again, as an `edited` delivery of their current state.
        due = due_issue_keys(handler)
        hour = handler.clock().strftime("%Y-%m-%dT%H")
        enqueued = 0
        for installation in self.app.integration.get_installations():
            gateway = self.app.installation(int(installation.id))
            gateway._read_gate()
            requester = gateway.github.requester
            for repo in _installation_repositories(requester):
                name, branch = repo.get("full_name"), repo.get("default_branch") or "main"
                if not isinstance(name, str):
                    continue
                for raw in _open_issues(requester, name):
                    if "pull_request" in raw or not isinstance(raw.get("number"), int):
                        continue
                    key = issue_key(name, raw["number"])
                    if key in pending:
                        continue
                    redecide = key in due
                    if not redecide and key in known:
                        continue
                    if not redecide and any(
                        handler.labels.is_model_label(n) for n in label_names(raw)
                    ):
                        continue
                    payload = {
                        "action": "edited" if redecide else "opened",
                        "issue": raw,
                        "repository": {"full_name": name, "default_branch": branch},
                        "installation": {"id": int(installation.id)},
                        "sender": raw.get("user") or {},
                    }
                    stamp = f"{key}@{raw.get('updated_at')}".encode()
                    delivery = "catchup-" + hashlib.sha1(stamp).hexdigest()
                    if redecide:  # once an hour at most
                        again = f"{key}@{raw.get('updated_at')}@{hour}".encode()
                        delivery = "redecide-" + hashlib.sha1(again).hexdigest()
                    if self.services.queue.accept(delivery, "issues", payload, key,
                                                  int(installation.id)):
                        enqueued += 1
        return enqueued


def settled_keys(state: State) -> set[str]:
    """The issues the store holds a decision of. A record with no issue
    time is not one by itself: ``plan --apply`` leaves such a record (and
    its reservation) before its label is written, and a plan that died
    before queueing the issue leaves only that; the sweep then decides the
    issue unless GitHub shows a model label on it (bot/plan.py's write-back
    leaves the time unknown too, with the label written)."""
    unsettled = {key for key, record in state.records.items() if record.issue_updated_at is None}
    return (set(state.records) | set(state.reservations)) - unsettled


def _installation_repositories(requester: Any) -> Iterator[dict[str, Any]]:
    """Every repository of the installation: an installation on a large
    organisation has more than one page of them."""
    return _pages(requester, "/installation/repositories", {},
                  lambda data: data.get("repositories") if isinstance(data, dict) else None)


def _open_issues(requester: Any, repo: str) -> Iterator[dict[str, Any]]:
    """The repository's open issues (and pull requests, which the caller
    skips), as the listing returns them: one request per 100. Not through
    PyGithub's ``Issue.raw_data``, which fetches each listed issue again
    (one more request per open issue, every sweep)."""
    return _pages(requester, f"/repos/{urllib.parse.quote(repo, safe='/')}/issues",
                  {"state": "open"}, lambda data: data if isinstance(data, list) else None)


def _pages(requester: Any, url: str, parameters: dict[str, Any],
           items: Callable[[Any], object]) -> Iterator[dict[str, Any]]:
    """Every item of a listing GitHub pages (at most 100 a page, a Link
    header to the next)."""
    next_url: str | None = url
    query: dict[str, Any] | None = {**parameters, "per_page": PER_PAGE}
    while next_url is not None:
        headers, data = requester.requestJsonAndCheck("GET", next_url, parameters=query)
        found = items(data)
        if isinstance(found, list):
            yield from (item for item in found if isinstance(item, dict))
        next_url, query = _next_link(headers), None


def _ok(status: object) -> bool:
    return isinstance(status, int) and 200 <= status < 300


def _next_link(headers: dict[str, Any]) -> str | None:
    link = next((v for k, v in headers.items() if k.lower() == "link"), None)
    if not isinstance(link, str):
        return None
    for part in link.split(","):
        target, _, rel = part.partition(";")
        if 'rel="next"' in rel:
            return target.strip().strip("<>")
    return None
