"""POST /usage and the wiring of the usage intake into the server."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from flask import Flask, Response, request

from model_assigner.bot.github.gateway import GitHubUnavailable, IssueGateway
from model_assigner.bot.handler import Handler
from model_assigner.bot.settings import Settings
from model_assigner.bot.store import StateStore, StoreError
from model_assigner.bot.usage_intake import UsageIntake, UsageSettings, load_usage_settings

log = logging.getLogger("model_assigner.usage")


def build_usage_intake(
    settings: Settings, handler: Handler, usage: UsageSettings | None = None
) -> UsageIntake:
    """With App credentials the repository must have the App installed (asked
    of GitHub); in dry-run, it must be one the store has seen an issue of."""
    usage = usage or load_usage_settings()
    installed: Callable[[str], bool]
    gateway_for_repo: Callable[[str], IssueGateway | None]
    if settings.dry_run:
        installed = lambda repo: known_repository(handler.store, repo)  # noqa: E731
        gateway_for_repo = lambda _repo: None  # noqa: E731
    else:
        from model_assigner.bot.github.api import GitHubApp
        from model_assigner.bot.github.usage import Installations

        installations = Installations(GitHubApp(settings))
        installed, gateway_for_repo = installations.installed, installations.gateway
    return UsageIntake(
        store=handler.store,
        models=handler.engine.models,
        issue_locks=handler.issue_locks,
        clock=handler.clock,
        settings=usage,
        installed=installed,
        gateway_for_repo=gateway_for_repo,
    )


def known_repository(store: StateStore, repo: str) -> bool:
    prefix = repo.lower() + "#"
    return store.view(
        lambda state: any(
            key.lower().startswith(prefix)
            for section in (state.comments, state.reservations, state.usage)
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
