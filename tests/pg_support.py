"""A real PostgreSQL server for the tests: one throwaway database per test
session (a unique name, dropped at the end), its tables emptied before each
test that asks for it.

The server is MODEL_ASSIGNER_TEST_DATABASE_URL's (default: the role .ci/run
creates on 127.0.0.1:5432). Without one, the tests that need it are skipped
with the reason, unless CI is set: then they fail, never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

DEFAULT_ADMIN_URL = (
    "postgresql://model_assigner_test:model_assigner_test@127.0.0.1:5432/postgres"
)
TABLES = (
    "ma_ledger", "ma_reservations", "ma_comments", "ma_dependencies", "ma_usage",
    "ma_deliveries", "ma_reconciled",
)


def admin_url() -> str:
    return os.environ.get("MODEL_ASSIGNER_TEST_DATABASE_URL", "") or DEFAULT_ADMIN_URL


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"no PostgreSQL server for the tests ({reason}); start one, or set "
                "MODEL_ASSIGNER_TEST_DATABASE_URL")


def session_database() -> Iterator[str]:
    """Create a database of our own; yield its URL; drop it."""
    name = f"ma_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(admin_url(), autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        _unavailable(str(exc).strip().splitlines()[0] if str(exc).strip() else "unreachable")
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
        parts = conninfo_to_dict(admin_url())
        # A URL, as operators write it.
        url = (f"postgresql://{parts.get('user', '')}:{parts.get('password', '')}@"
               f"{parts.get('host', '127.0.0.1')}:{parts.get('port', 5432)}/{name}")
        try:
            yield url
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def empty_tables(url: str) -> None:
    """Every table of ours emptied (the schema stays): a fresh store."""
    with psycopg.connect(url, autocommit=True) as conn:
        present = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        names = [row[0] for row in present if row[0] in TABLES]
        if names:
            conn.execute(f"TRUNCATE {', '.join(names)}".encode())
