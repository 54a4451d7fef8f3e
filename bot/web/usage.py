"""POST /usage and the wiring of the usage intake into the server."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask, Response, request

from model_assigner.bot.github.gateway import GitHubUnavailable
from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.queue.db import QueueDbError
from model_assigner.bot.queue.jobs import JobQueue
from model_assigner.bot.settings import Settings
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import StoreError
from model_assigner.bot.usage_intake import UsageIntake, UsageSettings, load_usage_settings

if TYPE_CHECKING:
    from model_assigner.bot.github.api import GitHubApp

log = logging.getLogger("model_assigner.usage")


def build_usage_intake(
    settings: Settings, handler: Handler, usage: UsageSettings | None = None,
    github: GitHubApp | None = None, queue: JobQueue | None = None,
) -> UsageIntake:
    """With App credentials the repository must have the App installed (asked
    of GitHub, through the process's one App client ``github``); in dry-run,
    it must be one the store has seen an issue of. The bot's comment gets
    the usage through ``queue`` (its workers write at the installation's
    pace); without a queue (the inline mode of unit tests), in the request."""
    usage = usage or load_usage_settings()
    installed: Callable[[str], bool]
    installation_of: Callable[[str], int | None] = lambda _repo: None  # noqa: E731
    update_comment: Callable[[str, int, int | None], str]
    if settings.dry_run:
        installed = lambda repo: known_repository(handler.store, repo)  # noqa: E731
        update_comment = lambda _repo, _number, _installation: "none"  # noqa: E731
    else:
        from model_assigner.bot.github.api import GitHubApp
        from model_assigner.bot.github.usage import Installations

        installations = Installations(github or GitHubApp(settings))
        installed, installation_of = installations.installed, installations.installation_id
        update_comment = (_queued(queue) if queue is not None
                          else _inline(handler, installations))
    return UsageIntake(
        store=handler.store,
        models=handler.engine.models,
        issue_locks=handler.issue_locks,
        clock=handler.clock,
        settings=usage,
        installed=installed,
        update_comment=update_comment,
        installation_of=installation_of,
    )


def _queued(queue: JobQueue) -> Callable[[str, int, int | None], str]:
    from model_assigner.bot.usage_writeback import enqueue_usage_comment

    def update(repo: str, number: int, installation: int | None) -> str:
        try:
            enqueue_usage_comment(queue, repo, number, installation)
        # The report is recorded and charged: whatever the queue's back end
        # (the SQLite file's QueueDbError, PostgreSQL's DatabaseError, a
        # StoreError), the answer is the same, and the next report queues it.
        except (QueueDbError, StoreError) as exc:
            log.warning("usage for %s#%s recorded; comment update not queued: %s",
                        repo, number, exc)
            return "failed"
        return "queued"

    return update


def _inline(handler: Handler, installations: object) -> Callable[[str, int, int | None], str]:
    from model_assigner.bot.github.usage import Installations
    from model_assigner.bot.usage_writeback import write_usage_comment

    assert isinstance(installations, Installations)

    def update(repo: str, number: int, installation: int | None) -> str:
        try:
            gateway = installations.gateway(repo) if installation is None else \
                installations.app.installation(installation)
            if gateway is None:
                return "none"
            return "updated" if write_usage_comment(handler, gateway, repo, number) else "none"
        except (GitHubUnavailable, LookupError) as exc:
            log.warning("usage for %s#%s recorded; comment not updated: %s", repo, number, exc)
            return "failed"

    return update


def known_repository(store: StateStore, repo: str) -> bool:
    prefix = repo.lower() + "#"
    return store.view(
        lambda state: any(
            key.lower().startswith(prefix)
            for section in (state.records, state.reservations, state.usage)
            for key in section
        )
    )


def register_usage_routes(app: Flask, intake: UsageIntake) -> None:
    @app.post("/usage")
    def usage() -> Response:
        try:
            outcome = intake.post(request.headers.get("Authorization"), request.get_data())
        except GitHubUnavailable as exc:
            log.warning("usage report: GitHub unavailable: %s", exc)
            status, body = 503, {"error": "GitHub API unavailable; retry later"}
        except StoreError as exc:
            log.error("usage report: store: %s", exc)
            status, body = 503, {"error": "quota store unavailable"}
        else:
            status, body = outcome.status, outcome.body
        return Response(json.dumps(body) + "\n", status=status, mimetype="application/json")
