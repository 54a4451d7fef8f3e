"""Versioned schema migrations for the PostgreSQL back end.

Each migration is applied once, in order, in one transaction together with
its row in ``ma_schema``; replicas that start together take an advisory
lock first, so one of them migrates and the others find it done. Migrations
are additive (a rename takes two releases: the new name and a view by the
old one, then the view dropped), so a database migrated by the next release
is still run against by this one: a rolling deploy keeps the old replicas
serving. One migrated further ahead is refused: a binary must not write into
a layout it does not know (it stops at start-up, with one line).
"""

from __future__ import annotations

from typing import Any

import psycopg

from model_assigner.bot.pg import Database, describe
from model_assigner.bot.store.state import StoreError

MIGRATION_LOCK = (0x6D61, 1)  # pg_advisory_xact_lock(int, int): 'ma', migrations

# (version, what it adds, SQL). Never edit one that has shipped: add another.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "quota state, per-issue records, delivery ids, online history",
        """
        CREATE TABLE ma_ledger (
            id smallint PRIMARY KEY CHECK (id = 1),
            subscriptions jsonb NOT NULL,
            api_budget jsonb NOT NULL
        );
        CREATE TABLE ma_reservations (
            issue text PRIMARY KEY, doc jsonb NOT NULL, seq bigserial NOT NULL
        );
        CREATE TABLE ma_comments (
            issue text PRIMARY KEY, doc jsonb NOT NULL, seq bigserial NOT NULL
        );
        CREATE TABLE ma_dependencies (
            issue text PRIMARY KEY, doc jsonb NOT NULL, seq bigserial NOT NULL
        );
        CREATE TABLE ma_usage (
            issue text PRIMARY KEY, doc jsonb NOT NULL, seq bigserial NOT NULL
        );
        CREATE TABLE ma_seen (
            issue text PRIMARY KEY, doc jsonb NOT NULL, seq bigserial NOT NULL
        );
        CREATE TABLE ma_deferred (
            issue text PRIMARY KEY, doc jsonb NOT NULL, seq bigserial NOT NULL
        );
        CREATE TABLE ma_deliveries (
            id text PRIMARY KEY,
            at timestamptz NOT NULL,
            seq bigserial NOT NULL
        );
        CREATE INDEX ma_deliveries_at ON ma_deliveries (at);
        CREATE TABLE ma_reconciled (
            digest text PRIMARY KEY,
            at timestamptz NOT NULL,
            seq bigserial NOT NULL
        );
        """,
    ),
    (
        2,
        "delivery queue and GitHub rate policy",
        """
        CREATE TABLE ma_queue_deliveries (
            seq bigserial PRIMARY KEY,
            id text NOT NULL UNIQUE,
            accepted_at double precision NOT NULL,
            job text
        );
        CREATE INDEX ma_queue_deliveries_at ON ma_queue_deliveries (accepted_at);
        CREATE TABLE ma_jobs (
            key text PRIMARY KEY,
            installation bigint,
            entries text NOT NULL,
            state text NOT NULL,
            version integer NOT NULL DEFAULT 1,
            attempts integer NOT NULL DEFAULT 0,
            not_before double precision NOT NULL,
            lease_until double precision,
            owner text,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            last_error text
        );
        CREATE INDEX ma_jobs_ready ON ma_jobs (state, not_before);
        CREATE TABLE ma_outcomes (
            delivery text PRIMARY KEY,
            job text NOT NULL,
            status integer NOT NULL,
            body text NOT NULL,
            finished_at double precision NOT NULL
        );
        CREATE INDEX ma_outcomes_finished ON ma_outcomes (finished_at);
        CREATE TABLE ma_counters (name text PRIMARY KEY, value double precision NOT NULL);
        CREATE TABLE ma_meta (key text PRIMARY KEY, value text NOT NULL);
        CREATE TABLE ma_rate_events (
            installation bigint NOT NULL,
            at double precision NOT NULL
        );
        CREATE INDEX ma_rate_events_at ON ma_rate_events (installation, at);
        CREATE TABLE ma_rate_blocks (
            installation bigint PRIMARY KEY,
            until double precision NOT NULL,
            reason text NOT NULL,
            strikes integer NOT NULL DEFAULT 0
        );
        """,
    ),
    (
        3,
        "indexes for a decision's reads",
        """
        CREATE INDEX ma_dependencies_refs ON ma_dependencies USING gin (doc jsonb_path_ops);
        """,
    ),
    (
        4,
        "labels created, remembered by every replica",
        """
        CREATE TABLE ma_labels (
            repo text NOT NULL,
            name text NOT NULL,
            at double precision NOT NULL,
            PRIMARY KEY (repo, name)
        );
        """,
    ),
    (
        5,
        "one name for the per-issue record: ma_comments becomes ma_records "
        "(ma_comments stays, a view, for the replicas of the release before)",
        # A rolling deploy runs the release before beside this one: its
        # replicas read and write ma_comments (INSERT ... ON CONFLICT,
        # SELECT ... FOR UPDATE, DELETE), which a simple view passes through
        # to ma_records. A migration of the release after drops the view.
        """
        ALTER TABLE ma_comments RENAME TO ma_records;
        CREATE VIEW ma_comments AS SELECT issue, doc, seq FROM ma_records;
        """,
    ),
]
LATEST = MIGRATIONS[-1][0]
# Every migration is additive: the release before (schema LATEST - 1) keeps
# working against it, so a rolling deploy runs old and new replicas side by
# side (docs/postgresql.md, "Schema changes"). So a schema this many versions
# ahead is run against; only one further ahead is refused.
COMPATIBLE_AHEAD = 1


def _applied(conn: psycopg.Connection[Any]) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS ma_schema ("
        " version integer PRIMARY KEY, description text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    row = conn.execute("SELECT coalesce(max(version), 0) FROM ma_schema").fetchone()
    return int(row[0]) if row else 0


def _refuse_newer(db: Database, version: int) -> None:
    """A schema one version ahead is the next release's, additive: this
    release's replicas keep serving during its rolling deploy (and its
    rollback). Further ahead, this binary may not know the layout."""
    if version > LATEST + COMPATIBLE_AHEAD:
        raise StoreError(
            f"{db.display}: database schema version {version} is newer than this "
            f"model-assigner can run against ({LATEST}, or {LATEST + COMPATIBLE_AHEAD} "
            "during a rolling deploy); run the newer model-assigner, or restore "
            "a backup into an empty database"
        )


def current_version(db: Database, wait: float | None = None) -> int:
    """The schema version the database has (0: none yet)."""
    with db.connection(wait) as conn:
        row = conn.execute(
            "SELECT to_regclass('ma_schema') IS NOT NULL"
        ).fetchone()
        if not row or not row[0]:
            return 0
        found = conn.execute("SELECT coalesce(max(version), 0) FROM ma_schema").fetchone()
        return int(found[0]) if found else 0


def migrate(db: Database) -> list[int]:
    """Apply the migrations this database lacks; returns the versions applied."""
    applied: list[int] = []
    try:
        with db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
            have = _applied(conn)
            _refuse_newer(db, have)
            for version, description, sql in MIGRATIONS:
                if version <= have:
                    continue
                conn.execute(sql.encode())
                conn.execute(
                    "INSERT INTO ma_schema (version, description) VALUES (%s, %s)",
                    (version, description),
                )
                applied.append(version)
    except psycopg.Error as exc:  # a migration that fails leaves nothing behind
        raise StoreError(f"{db.display}: migration failed: {describe(exc)}") from None
    return applied


def require_current(db: Database, wait: float | None = None) -> None:
    """Raise StoreError unless the schema is this model-assigner's, or the
    next release's (additive: see COMPATIBLE_AHEAD)."""
    version = current_version(db, wait)
    _refuse_newer(db, version)
    if version < LATEST:
        raise StoreError(
            f"{db.display}: database schema version {version}, this model-assigner needs "
            f"{LATEST}; run `model-assigner migrate`"
        )
