"""Database commands: ``migrate`` (the schema), ``state migrate --to``
(copy a store into another, empty one, verified by totals), and the
database side of ``state backup`` / ``state restore``.

A copy is checked by totals read back from the target: entries per section,
tokens and dollars held by reservations, and each counter. Any difference
stops with the two figures (the target then holds the copy, for a look;
it is never the source that changes).
"""

from __future__ import annotations

import argparse
from typing import Any

from model_assigner.bot.backends import describe_store
from model_assigner.bot.cli.stores import fail, open_store, read_state
from model_assigner.bot.store.codec import BIG_SECTIONS
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import State, StoreError


def _pg(store: StateStore) -> Any:
    from model_assigner.bot.store.postgresql import PgStore

    if not isinstance(store, PgStore):
        raise fail(f"{describe_store(store)}: not a database")
    return store


def export_text(store: StateStore) -> str:
    try:
        return str(_pg(store).serialize())
    except StoreError as exc:
        raise fail(str(exc)) from None


def restore_into(store: StateStore, state: State) -> None:
    pg = _pg(store)
    try:
        pg.migrate()
        pg.replace(state)
    except StoreError as exc:
        raise fail(f"not restored: {exc}") from None


def totals(state: State) -> dict[str, Any]:
    """What a copy must keep, figure by figure."""
    figures: dict[str, Any] = {
        f"{section} entries": len(getattr(state, section)) for section in BIG_SECTIONS
    }
    figures["reconciled entries"] = len(state.reconciled)
    figures["reserved tokens"] = sum(r.tokens for r in state.reservations.values())
    figures["reserved usd"] = round(sum(r.cost_usd for r in state.reservations.values()), 6)
    for family, sub in sorted(state.subscriptions.items()):
        figures[f"{family} tokens today"] = sub.tokens_used_today
        figures[f"{family} tokens this month"] = sub.tokens_used_month
    figures["api spent usd"] = round(state.api_budget.spent_usd, 6)
    return figures


def queued_jobs(store: StateStore) -> int:
    """The jobs in the queue beside ``store`` (waiting, running or dead):
    deliveries acknowledged to GitHub and not yet decided, or kept for an
    operator. Zero when there is no queue."""
    if store.kind == "postgresql":
        from model_assigner.bot.queue.pg import PgJobQueue

        stats = PgJobQueue(_pg(store).db).stats()
    else:
        from model_assigner.bot.queue.db import QueueDb, QueueDbError
        from model_assigner.bot.queue.jobs import SqliteJobQueue
        from model_assigner.bot.settings import load_settings
        from model_assigner.bot.store.json_store import Store

        assert isinstance(store, Store)
        settings = load_settings()
        # the server's queue when this is the server's store, else the one beside it
        path = (settings.queue_path if store.path == settings.state_path
                else store.path.with_name("queue.sqlite3"))
        if not path.exists():
            return 0
        try:
            stats = SqliteJobQueue(QueueDb(path)).stats()
        except QueueDbError as exc:  # unreadable, or a SQLite too old: one line
            raise fail(str(exc)) from None
    return stats.waiting + stats.running + stats.dead


def migrate_state(args: argparse.Namespace, source: StateStore) -> int:
    """Copy ``source`` into the empty store ``--to`` names (a database, or a
    file that does not exist yet), then compare their totals.

    The queue is not copied: its jobs are deliveries GitHub was told were
    accepted, and a copy would be decided twice if the old servers still ran.
    So the copy is refused while the source's queue holds any job: the
    servers drain it (or ``model-assigner queue`` retries or drops what is
    left) before the store moves."""
    if not args.to:
        raise fail("state migrate: --to is required (a postgresql:// URL or a file)")
    target = open_store(args, location=args.to)
    try:
        waiting = queued_jobs(source)
    except Exception as exc:  # a queue that cannot be read: say so, copy nothing
        raise fail(f"not copied: the queue beside {describe_store(source)} cannot be "
                    f"read: {exc}") from None
    if waiting:
        raise fail(
            f"not copied: the queue beside {describe_store(source)} holds {waiting} "
            f"job{'s' if waiting != 1 else ''} (deliveries not yet decided, or dead "
            "letters); the queue is not moved: let the servers drain it, or retry or "
            "drop them with `model-assigner queue`, then copy"
        )
    state = read_state(source)
    try:
        if target.kind == "postgresql":
            pg = _pg(target)
            pg.migrate()
            if not pg.is_empty():
                raise fail(f"{describe_store(target)}: not empty; copy only into an empty "
                            "database (or restore a backup over it: `state restore`)")
            pg.replace(state)
        else:
            from model_assigner.bot.store.json_store import Store

            assert isinstance(target, Store)
            if target.path.exists():
                raise fail(f"{target.path}: exists; copy only into a new file")
            target.replace(state)
        copied = target.read()
    except StoreError as exc:
        raise fail(f"not copied: {exc}") from None
    want, have = totals(state), totals(copied)
    wrong = {k: (v, have.get(k)) for k, v in want.items() if have.get(k) != v}
    if wrong:
        lines = "; ".join(f"{k}: source {a}, copy {b}" for k, (a, b) in wrong.items())
        raise fail(f"copy to {describe_store(target)} differs: {lines}")
    print(f"copied {describe_store(source)} to {describe_store(target)}; totals match:")
    for key, value in want.items():
        print(f"  {key:<32} {value}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the schema migrations the database lacks (the server also does
    at start-up); a database newer than this model-assigner is refused."""
    store = open_store(args)
    if store.kind != "postgresql":
        print(f"{describe_store(store)}: a JSON store has no schema to migrate")
        return 0
    from model_assigner.bot.store.pg_schema import LATEST

    try:
        applied = _pg(store).migrate()
    except StoreError as exc:
        raise fail(str(exc)) from None
    if applied:
        print(f"{describe_store(store)}: applied schema version"
              f"{'s' if len(applied) > 1 else ''} {', '.join(map(str, applied))}")
    else:
        print(f"{describe_store(store)}: schema is current (version {LATEST})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    migrate = sub.add_parser("migrate", help="apply the database's schema migrations")
    migrate.add_argument(
        "--state", help="postgresql:// URL (default: MODEL_ASSIGNER_STATE or DATABASE_URL)"
    )
    migrate.add_argument("--config", help="config folder (default: MODEL_ASSIGNER_CONFIG)")
    migrate.set_defaults(handler=cmd_migrate)
