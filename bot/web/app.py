"""The Flask app factory: POST /webhook, GET /healthz.

The view does only HTTP: size limit, signature, JSON, and mapping outcomes to
status codes. Everything else is the Handler's. No traceback ever reaches a
client: unexpected errors answer a short JSON 500 and are logged here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from model_assigner.bot.backends import (
    describe_store,
)
from model_assigner.bot.github.gateway import GitHubUnavailable
from model_assigner.bot.handling.event import Outcome
from model_assigner.bot.metrics import ENV, metrics, prepare_multiprocess_dir, safely
from model_assigner.bot.queue.db import QueueDbError
from model_assigner.bot.settings import Settings, SettingsError, load_settings, redacted_url
from model_assigner.bot.store.state import StoreError
from model_assigner.bot.web.event import Event, Refused, from_http, header
from model_assigner.bot.web.usage import build_usage_intake, register_usage_routes
from model_assigner.bot.wiring import Services, build_services, configure_logging, count_outcome
from model_assigner.core.loader import ConfigError

if TYPE_CHECKING:
    from model_assigner.bot.github.credentials import CredentialsCheck

log = logging.getLogger("model_assigner")

KNOWN_EVENTS = frozenset(
    {"issues", "issue_comment", "ping", "installation", "installation_repositories"}
)


# app.extensions key: what starts this app's queue workers in a process.
START_WORKERS = "model_assigner.start_workers"
# app.extensions key: the operator's quota strategy (bot/heap.py: whether a
# serving process loads scipy before it freezes its heap).
STRATEGY = "model_assigner.quota_strategy"


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body) + "\n", status=status, mimetype="application/json")


def accept(services: Services, event: str, delivery: str | None,
           payload: dict[str, Any]) -> Outcome:
    """Acknowledge: answer what needs no GitHub call, record the rest in the
    queue (durably, once per delivery id) and answer 202. No GitHub call, no
    engine: the workers decide."""
    found = services.handler.triage(event, delivery, payload, services.known_bot_login(),
                                    check_store=False)
    if isinstance(found, Outcome):
        return found
    if found.installation_id is None and services.github is not None:
        return Outcome(400, {"error": "not an issues event payload: installation.id: missing "
                                      "(not a GitHub App delivery)"})
    path = getattr(services.store, "path", None)  # the JSON store's file (not PostgreSQL's)
    if path is not None and not path.is_file():  # a stat, not a read: the worker reads it
        raise StoreError(f"{path}: vanished while the server was running")
    delivery_id = delivery or f"local-{uuid.uuid4()}"
    if not services.queue.accept(delivery_id, event, payload, found.key, found.installation_id):
        return Outcome(200, {"status": "duplicate", "delivery": delivery_id})
    return Outcome(202, {"status": "queued", "delivery": delivery_id, "issue": found.key})


def create_app(
    settings: Settings | None = None,
    clock: Callable[[], datetime] | None = None,
    check_credentials: bool | None = None,
) -> Flask:
    """Gunicorn calls this (``bot.web.app:create_app()``). A bad setting, config or
    store stops start-up with one line naming it. With App credentials, the
    server also asks GitHub whether it accepts them, before it serves and then
    from /healthz (bot/github/credentials.py): ``check_credentials``, by default only
    when the settings come from the environment (gunicorn's call), not for an
    app built from given settings (tests)."""
    from_environment = settings is None if check_credentials is None else check_credentials
    credentials: CredentialsCheck | None = None
    try:
        settings = settings or load_settings()
        configure_logging(settings.log_level)
        if from_environment and not settings.dry_run:
            # Before anything is built or started: a rejected App stops here.
            from model_assigner.bot.github.credentials import (
                CredentialsCheck,  # PyGithub: only with an App
            )

            credentials = CredentialsCheck(settings)
            if problem := credentials.check():
                raise SettingsError(problem)
        services = build_services(settings, clock)
        handler, store = services.handler, services.store
        usage = build_usage_intake(
            settings, handler, github=services.github,
            queue=None if settings.inline_delivery else services.queue,
        )
        # From here on the file must exist: one that vanishes while the server
        # runs is an error, never a reason to start a fresh store.
        store.ensure_exists()
    except (SettingsError, ConfigError, StoreError, QueueDbError) as exc:
        print(f"model-assigner: cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(4) from None

    release = getattr(store, "release", None)
    if release is not None:  # the master forks the workers: none of its connections
        release()
    try:
        prepare_multiprocess_dir(settings.state_path.parent / "metrics")
        metrics()  # created in the master (--preload), shared by the workers' files
    except OSError as exc:  # a full disk, a file-size limit (ulimit -f)
        print(
            f"model-assigner: cannot start: metrics folder {os.environ.get(ENV, '')}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(4) from None
    if settings.dry_run:
        log.warning(
            "dry-run mode: no GitHub App credentials; decisions are recorded in %s and the "
            "labels and comments are logged, not written%s",
            describe_store(store),
            ""
            if settings.webhook_secret
            else "; GITHUB_WEBHOOK_SECRET unset, signatures not checked",
        )
    else:
        log.info("model-assigner: App %s at %s", settings.app_id, redacted_url(settings.api_url))

    app = Flask("model_assigner")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["model_assigner.store"] = store  # tests close its connections
    app.extensions[STRATEGY] = handler.engine.scoring.quota_strategy
    catalog_models = frozenset(model.name for model in handler.engine.models)
    count = count_outcome(catalog_models)
    if not settings.inline_delivery:
        # gunicorn --preload builds the app in its master and forks the
        # workers: the Procfile's worker class (bot/web/worker.py) starts each
        # one's queue workers once it has the app, after the fork; with
        # another worker class, the first request does. Not
        # os.register_at_fork: a hook cannot be taken back, so every process
        # forked later from this one (a test's, a library's) would start
        # queue workers of its own on this queue.
        app.extensions[START_WORKERS] = services.start_workers
        app.before_request(services.start_workers)

    @app.post("/webhook")
    def webhook() -> Response:
        started = time.perf_counter()
        status, body, event = deliver()
        outcome = str(body.get("status") or body.get("outcome") or status)
        seconds = time.perf_counter() - started
        label = event if event in KNOWN_EVENTS else "other"
        # Counting must never change the answer: the delivery's work is done.
        safely(lambda: metrics().deliveries.labels(label, outcome).inc())
        safely(lambda: metrics().delivery_seconds.labels(label).observe(seconds))
        count(status, body)
        response = _json(status, body)
        if status == 408:  # what is left of the body is not worth reading
            response.headers["Connection"] = "close"
        return response

    def deliver() -> tuple[int, dict[str, Any], str]:
        """The answer, and the event it is counted under: the parsed
        delivery's name, the one it was handled as; a delivery refused
        before it was parsed is counted under what its header claims."""
        headers = dict(request.headers.items())
        claimed = header(headers, "X-GitHub-Event") or ""
        try:
            body = request.get_data(cache=False)
        except (OSError, ClientDisconnected):  # bot.web.worker's read deadline, or a client gone
            return 408, {"error": "request body not received in time",
                         "outcome": "timeout"}, claimed
        try:
            parsed = from_http(headers, body, settings.webhook_secret)
        except Refused as refused:
            return refused.status, refused.body(), claimed
        status, answer = handle(parsed)
        return status, answer, parsed.name

    def handle(parsed: Event) -> tuple[int, dict[str, Any]]:
        event, delivery, payload = parsed.name, parsed.delivery, parsed.payload
        try:
            if event == "issue_comment":  # a usage report in a comment, or nothing
                outcome = usage.comment_event(delivery, payload)
            elif settings.inline_delivery:
                outcome = handler.handle(event, delivery, payload)
            else:
                outcome = accept(services, event, delivery, payload)
        except GitHubUnavailable as exc:
            safely(lambda: metrics().github_errors.inc())
            log.warning("delivery %s: GitHub unavailable: %s", delivery, exc)
            return 503, {
                "error": "GitHub API unavailable; redeliver later",
                "outcome": "github_unavailable",
            }
        except StoreError as exc:
            log.error("delivery %s: store: %s", delivery, exc)
            return 503, {"error": "quota store unavailable", "outcome": "store_unavailable"}
        except QueueDbError as exc:
            log.error("delivery %s: queue: %s", delivery, exc)
            return 503, {"error": "delivery queue unavailable", "outcome": "queue_unavailable"}
        return outcome.status, outcome.body

    register_usage_routes(app, usage)

    @app.get("/metrics")
    def prometheus() -> Response:
        try:
            data, content_type = metrics().exposition(store, services.queue, services.limiter)
        except StoreError as exc:
            log.error("metrics: %s", exc)
            return _json(503, {"error": "quota store unavailable"})
        except (OSError, ValueError) as exc:  # the metrics folder went away or is unreadable
            log.error("metrics: %s", exc)
            return _json(503, {"error": "metrics unavailable"})
        return Response(data, status=200, content_type=content_type)

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            store.ensure_writable()
        except StoreError as exc:
            log.error("healthz: %s", exc)
            return _json(503, {"status": "store not writable" if store.kind == "file"
                               else "database unavailable"})
        try:
            store.check_file()  # there, a file, readable, valid: not only its folder
        except StoreError as exc:
            log.error("healthz: %s", exc)
            return _json(503, {"status": "store unavailable"})
        if credentials is not None and (problem := credentials.current()):
            log.error("healthz: %s", problem)
            return _json(503, {"status": "GitHub rejects the App's credentials",
                               "problem": problem})
        return _json(200, {"status": "ok", "dry_run": settings.dry_run})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _json(exc.code or 500, {"error": exc.name})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return _json(500, {"error": "internal error"})

    return app
