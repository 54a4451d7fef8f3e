"""Which store the settings name: the JSON file (one machine, nothing to
install) or PostgreSQL (several replicas). The one place that chooses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from model_assigner.bot.locks import FileIssueLocks, IssueLocks
from model_assigner.bot.queue.jobs import JobQueue
from model_assigner.bot.queue.ratelimit import RateLimits, RatePolicy
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.protocol import StateStore
from model_assigner.core.config_subscriptions import SubscriptionsConfig


def open_state_store(
    location: str | Path,
    defaults: SubscriptionsConfig,
    clock: Callable[[], datetime] | None = None,
) -> StateStore:
    """A store for ``location``: a postgresql:// URL, or a file path."""
    if isinstance(location, str) and location.lower().startswith(("postgresql://", "postgres://")):
        from model_assigner.bot.store.postgresql import (
            PgStore,  # psycopg only when a database is named
        )

        return PgStore(location, defaults, clock)
    return Store(Path(location), defaults, clock)


def open_queue(
    store: StateStore, queue_path: Path, policy: RatePolicy | None = None
) -> tuple[JobQueue, RateLimits]:
    """The delivery queue and the rate policy next to the store: in the same
    database (every replica shares them), or in the SQLite file beside the
    JSON store (every process of the machine shares them)."""
    database = getattr(store, "db", None)
    if store.kind == "postgresql" and database is not None:
        from model_assigner.bot.queue.pg import PgJobQueue, PgRateLimiter

        return PgJobQueue(database), PgRateLimiter(database, policy)
    from model_assigner.bot.queue.db import QueueDb
    from model_assigner.bot.queue.jobs import SqliteJobQueue
    from model_assigner.bot.queue.ratelimit import RateLimiter

    db = QueueDb(queue_path)
    return SqliteJobQueue(db), RateLimiter(db, policy)


def issue_locks_for(store: StateStore, lock_dir: Path) -> IssueLocks:
    """One issue at a time: across replicas with a database, on this machine
    (lock files) with the JSON store."""
    locks = getattr(store, "issue_locks", None)
    return locks if locks is not None else FileIssueLocks(lock_dir)


def describe_store(store: StateStore) -> str:
    """How commands name the store: the file, or the database without password."""
    display = getattr(store, "display", None)
    return str(display) if display is not None else str(getattr(store, "path", store))
