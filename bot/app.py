"""The Flask app factory: POST /webhook, GET /healthz.

The view does only HTTP: size limit, signature, JSON, and mapping outcomes to
status codes. Everything else is the Handler's. No traceback ever reaches a
client: unexpected errors answer a short JSON 500 and are logged here.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from bot.gateway import DryRunGateway, GitHubUnavailable, IssueGateway
from bot.handler import BadPayload, Handler
from bot.metrics import metrics, prepare_multiprocess_dir
from bot.repo_config import load_labels_config
from bot.settings import Settings, SettingsError, load_settings
from bot.signature import verify
from bot.store import Store, StoreError
from bot.usage_api import build_usage_intake, register_usage_routes
from core.loader import ConfigError, load_engine_config

log = logging.getLogger("model_assigner")

DRY_RUN_BOT_LOGIN = "model-assigner[bot]"
KNOWN_EVENTS = frozenset(
    {"issues", "issue_comment", "ping", "installation", "installation_repositories"}
)


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body) + "\n", status=status, mimetype="application/json")


def configure_logging(level: str = "INFO") -> None:
    """Plain lines for people, and the decision log as pure JSON lines (one
    object per line, nothing around it) so log pipelines can parse it."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    decisions = logging.getLogger("model_assigner.decisions")
    if not decisions.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        decisions.addHandler(handler)
        decisions.propagate = False
        decisions.setLevel(logging.INFO)


def build_handler(
    settings: Settings, clock: Callable[[], datetime] | None = None
) -> tuple[Handler, Store]:
    engine = load_engine_config(settings.config_dir)
    labels = load_labels_config(settings.config_dir)
    clock = clock or (lambda: datetime.now(UTC))
    store = Store(settings.state_path, engine.quotas, clock)
    store.ensure_writable()
    store.check()
    store.remove_stale_temporaries()

    gateway_for: Callable[[int | None], IssueGateway]
    bot_login: Callable[[], str]
    if settings.dry_run:
        dry = DryRunGateway()
        gateway_for = lambda _installation: dry  # noqa: E731
        bot_login = lambda: settings.bot_login or DRY_RUN_BOT_LOGIN  # noqa: E731
    else:
        from bot.github_api import GitHubApp

        app = GitHubApp(settings)

        def gateway_for(installation: int | None) -> IssueGateway:
            if installation is None:  # not a GitHub App's delivery: retrying cannot help
                raise BadPayload("installation.id: missing (not a GitHub App delivery)")
            return app.installation(installation)

        bot_login = app.bot_login

    handler = Handler(
        engine=engine,
        labels=labels,
        store=store,
        gateway_for=gateway_for,
        bot_login=bot_login,
        clock=clock,
        lock_dir=settings.state_path.parent / "locks",
    )
    return handler, store


def create_app(
    settings: Settings | None = None, clock: Callable[[], datetime] | None = None
) -> Flask:
    """Gunicorn calls this (``bot.app:create_app()``). A bad setting, config or
    store stops start-up with one line naming it."""
    try:
        settings = settings or load_settings()
        configure_logging(settings.log_level)
        handler, store = build_handler(settings, clock)
        usage = build_usage_intake(settings, handler)
    except (SettingsError, ConfigError, StoreError) as exc:
        print(f"model-assigner: cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(4) from None

    prepare_multiprocess_dir(settings.state_path.parent / "metrics")
    metrics()  # created in the master (--preload), shared by the workers' files
    if settings.dry_run:
        log.warning(
            "dry-run mode: no GitHub App credentials; decisions are recorded in %s and the "
            "labels and comments are logged, not written%s",
            settings.state_path,
            ""
            if settings.webhook_secret
            else "; GITHUB_WEBHOOK_SECRET unset, signatures not checked",
        )
    else:
        log.info("model-assigner: App %s at %s", settings.app_id, settings.api_url)

    app = Flask("model_assigner")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    catalog_models = frozenset(model.name for model in handler.engine.models)

    @app.post("/webhook")
    def webhook() -> Response:
        started = time.perf_counter()
        event = request.headers.get("X-GitHub-Event") or ""
        status, body = deliver(event)
        outcome = str(body.get("status") or body.get("outcome") or status)
        m = metrics()
        label = event if event in KNOWN_EVENTS else "other"
        m.deliveries.labels(label, outcome).inc()
        m.delivery_seconds.labels(label).observe(time.perf_counter() - started)
        if outcome in ("assigned", "override") and body.get("model"):
            # A person's label may name any model: the series stay the catalog's.
            model = str(body["model"])
            m.decisions.labels(model if model in catalog_models else "other").inc()
        elif outcome == "deferred":
            m.deferrals.inc()
        response = _json(status, body)
        if status == 408:  # what is left of the body is not worth reading
            response.headers["Connection"] = "close"
        return response

    def deliver(event: str) -> tuple[int, dict[str, Any]]:
        try:
            body = request.get_data(cache=False)
        except (OSError, ClientDisconnected):  # bot.worker's read deadline, or a client gone
            return 408, {"error": "request body not received in time", "outcome": "timeout"}
        if settings.webhook_secret is not None and not verify(
            settings.webhook_secret, body, request.headers.get("X-Hub-Signature-256")
        ):
            return 401, {"error": "missing or wrong X-Hub-Signature-256", "outcome": "unauthorized"}
        if not event:
            return 400, {"error": "missing X-GitHub-Event header", "outcome": "bad_request"}
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return 400, {"error": "body is not JSON", "outcome": "bad_request"}
        except RecursionError:  # nested deeper than Python's stack: no payload of GitHub's
            return 400, {"error": "body is nested too deeply", "outcome": "bad_request"}
        if not isinstance(payload, dict):
            return 400, {"error": "body is not a JSON object", "outcome": "bad_request"}
        delivery = request.headers.get("X-GitHub-Delivery") or None
        try:
            if event == "issue_comment":  # a usage report in a comment, or nothing
                outcome = usage.comment_event(delivery, payload)
            else:
                outcome = handler.handle(event, delivery, payload)
        except GitHubUnavailable as exc:
            metrics().github_errors.inc()
            log.warning("delivery %s: GitHub unavailable: %s", delivery, exc)
            return 503, {
                "error": "GitHub API unavailable; redeliver later",
                "outcome": "github_unavailable",
            }
        except StoreError as exc:
            log.error("delivery %s: store: %s", delivery, exc)
            return 503, {"error": "quota store unavailable", "outcome": "store_unavailable"}
        return outcome.status, outcome.body

    register_usage_routes(app, usage)

    @app.get("/metrics")
    def prometheus() -> Response:
        data, content_type = metrics().exposition(store)
        return Response(data, status=200, content_type=content_type)

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            store.ensure_writable()
        except StoreError as exc:
            log.error("healthz: %s", exc)
            return _json(503, {"status": "store not writable"})
        return _json(200, {"status": "ok", "dry_run": settings.dry_run})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _json(exc.code or 500, {"error": exc.name})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return _json(500, {"error": "internal error"})

    return app
