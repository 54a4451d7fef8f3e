"""What a process builds once, shared by the web app and the command line.

The server (``bot/web/app.py``), the queue worker (``model-assigner worker``)
and ``plan --apply`` all need the same handler, store, queue and GitHub App,
built from the same settings; building them here, away from Flask, lets the
command line construct them without importing the web framework.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from model_assigner.bot.backends import issue_locks_for, open_queue, open_state_store
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.github.api import GitHubApp
from model_assigner.bot.github.gateway import DryRunGateway, GitHubUnavailable, IssueGateway
from model_assigner.bot.github.repo_config import load_labels_config
from model_assigner.bot.handling.event import BadPayload
from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.metrics import metrics, safely
from model_assigner.bot.queue.db import QueueDbError
from model_assigner.bot.queue.jobs import JobQueue
from model_assigner.bot.queue.ratelimit import RateLimits, RatePolicy
from model_assigner.bot.queue.worker import Worker
from model_assigner.bot.settings import Settings
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.usage_writeback import EVENT as USAGE_EVENT
from model_assigner.bot.usage_writeback import usage_comment_task

log = logging.getLogger("model_assigner")

DRY_RUN_BOT_LOGIN = "model-assigner[bot]"


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


@dataclass
class Services:
    """What a process builds once: the handler (decides and writes back), the
    queue, the installation rate policy, and the workers."""

    settings: Settings
    handler: Handler
    store: StateStore
    queue: JobQueue
    limiter: RateLimits
    github: GitHubApp | None
    _worker: Worker | None = None
    _worker_pid: int = 0
    _login_saved: bool = False

    def known_bot_login(self) -> str | None:
        """The App's login without asking GitHub: set, learnt by this process,
        or learnt by another one (kept in the queue's file)."""
        if self.github is None:
            return self.handler.bot_login()
        login = self.github.known_bot_login()
        if login is not None:
            if not getattr(self, "_login_saved", False):
                self.queue.db.set_meta("bot_login", login)
                self._login_saved = True
            return login
        return self.queue.db.get_meta("bot_login")

    def worker(self, threads: int | None = None, periodic: bool = True) -> Worker:
        """Queue workers (and the catch-up, unless ``periodic`` is False)."""
        q = self.settings.queue
        from model_assigner.bot.plan_queue import PLAN_EVENT, plan_write_task
        from model_assigner.bot.queue.catchup import CatchUp

        catchup = (CatchUp(self) if periodic and self.github is not None
                   and q.catchup_seconds > 0 else None)
        return Worker(
            self.handler, self.queue, self.limiter,
            threads=q.workers if threads is None else threads,
            max_attempts=q.max_attempts,
            retry_base=q.retry_base_seconds,
            on_outcome=count_outcome(frozenset(m.name for m in self.handler.engine.models)),
            periodic=catchup.run if catchup is not None else None,
            periodic_seconds=q.catchup_seconds,
            tasks={USAGE_EVENT: usage_comment_task(self.handler),
                   PLAN_EVENT: plan_write_task(self.handler)},
        )

    def start_workers(self) -> None:
        """Once per process (after gunicorn forks: threads do not survive a fork)."""
        if self._worker_pid == os.getpid() or self.settings.queue.workers <= 0:
            return
        self._worker_pid = os.getpid()
        self._worker = self.worker()
        self._worker.start()
        if self.github is not None:
            # GET /app once per process, so that the webhook can tell the
            # App's own events without asking GitHub (kept in the queue file).
            threading.Thread(target=self._learn_login, name="bot-login", daemon=True).start()

    def _learn_login(self) -> None:
        assert self.github is not None
        try:
            self.github.bot_login()
            self.known_bot_login()
        except (GitHubUnavailable, QueueDbError) as exc:
            log.warning("the App's login is not known yet: %s", exc)


def count_outcome(catalog: frozenset[str]) -> Callable[[int, dict[str, Any]], None]:
    def count(status: int, body: dict[str, Any]) -> None:
        # Counting must never change an outcome: the delivery's work is done.
        safely(lambda: _count(status, body))

    def _count(status: int, body: dict[str, Any]) -> None:
        outcome = str(body.get("status") or status)
        m = metrics()
        if outcome in ("assigned", "override") and body.get("model"):
            # A person's label may name any model: the series stay the catalog's.
            model = str(body["model"])
            m.decisions.labels(model if model in catalog else "other").inc()
        elif outcome == "deferred":
            m.deferrals.inc()

    return count


def build_services(
    settings: Settings, clock: Callable[[], datetime] | None = None
) -> Services:
    engine = load_engine_config(settings.config_dir)
    labels = load_labels_config(settings.config_dir)
    clock = clock or (lambda: datetime.now(UTC))
    store = open_state_store(settings.database_url or settings.state_path, engine.quotas, clock)
    migrate = getattr(store, "migrate", None)
    if migrate is not None:  # the schema migrations this database lacks, at start-up
        for version in migrate():
            log.info("model-assigner: database schema migrated to version %s", version)
    store.ensure_writable()
    store.check()
    store.remove_stale_temporaries()
    q = settings.queue
    policy = RatePolicy(
        per_minute=q.writes_per_minute, per_hour=q.writes_per_hour,
        min_interval=q.write_interval_seconds, secondary_wait=q.secondary_wait_seconds,
    )
    queue, limiter = open_queue(store, settings.queue_path, policy)

    gateway_for: Callable[[int | None], IssueGateway]
    bot_login: Callable[[], str]
    app: GitHubApp | None = None
    if settings.dry_run:
        dry = DryRunGateway()
        gateway_for = lambda _installation: dry  # noqa: E731
        bot_login = lambda: settings.bot_login or DRY_RUN_BOT_LOGIN  # noqa: E731
    else:
        # Inline (unit tests) decides within one request: no shared pacing.
        github_app = app = GitHubApp(settings, None if settings.inline_delivery else limiter)

        def gateway_for(installation: int | None) -> IssueGateway:
            if installation is None:  # not a GitHub App's delivery: retrying cannot help
                raise BadPayload("installation.id: missing (not a GitHub App delivery)")
            return github_app.installation(installation)

        bot_login = app.bot_login

    handler = Handler(
        engine=engine,
        labels=labels,
        store=store,
        gateway_for=gateway_for,
        bot_login=bot_login,
        clock=clock,
        lock_dir=settings.state_path.parent / "locks",
        issue_locks=issue_locks_for(store, settings.state_path.parent / "locks"),
    )
    return Services(settings, handler, store, queue, limiter, app)


def build_handler(
    settings: Settings, clock: Callable[[], datetime] | None = None
) -> tuple[Handler, StateStore]:
    services = build_services(settings, clock)
    return services.handler, services.store
