"""The PostgreSQL back end beyond the store suite: the commands on it
(quota, reservations, state check/backup/restore, state migrate --to, migrate),
its schema versions, and how it fails: a database that goes away while the
App runs (503 before anything is acknowledged, /healthz failing, work
resuming without a restart) and a connection lost inside a transaction.

A real server throughout (tests/pg_support.py); the outage is a TCP proxy on
loopback that is cut and restored.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from model_assigner.bot.cli import main
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.pg import Database
from model_assigner.bot.settings import Settings
from model_assigner.bot.store.codec import parse_state, serialize
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.pg_schema import LATEST, MIGRATIONS, migrate
from model_assigner.bot.store.postgresql import PgStore
from model_assigner.bot.store.state import Reservation, State, StoreError
from model_assigner.bot.web.app import create_app
from model_assigner.core.types import Payment
from tests.bot.support import SMALL_BACKEND, delivery_headers, encode, issue_fields, webhook
from tests.helpers import CONFIG_DIR, store_text
from tests.pg_support import CuttableProxy

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
# spawn: this process runs pool threads, which a forked child must not inherit.
MP = multiprocessing.get_context("spawn")


def reservation(tokens: int, family: str = "claude", cost: float = 0.0) -> Reservation:
    kind = "subscription" if family == "claude" else "api"
    return Reservation(model="sonnet-4.5" if kind == "subscription" else "deepseek-v3",
                       payment=Payment(kind=kind, family=family, tokens=tokens, cost_usd=cost),
                       charged_at=NOW)


def seeded_file(path: Path) -> Store:
    store = Store(path, load_engine_config().quotas, lambda: NOW)
    with store.transaction(NOW) as state:
        state.reserve("octo/repo#1", reservation(31_000))
        state.reserve("octo/repo#2", reservation(10_000, "deepseek", 1.25))
        state.remember_delivery("d-1", NOW)
        state.dependencies["octo/repo#2"] = ["octo/repo#1"]
    return store


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH",
                 "DATABASE_URL", "MODEL_ASSIGNER_STATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


OPENED: list[PgStore] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().release()


def released(store: PgStore) -> PgStore:
    """A store whose connections close when the test ends."""
    OPENED.append(store)
    return store


def run(*argv: str) -> int:
    return main([*argv])


# --- moving over and back -----------------------------------------------------


def test_state_migrate_copies_a_json_store_into_an_empty_database_and_back(
    cli_env: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = seeded_file(cli_env / "state.json")
    assert run("state", "migrate", "--state", str(source.path), "--to", pg_url,
               "--now", NOW.isoformat()) == 0
    out = capsys.readouterr().out
    assert "totals match" in out and "reserved tokens                  41000" in out
    assert "password" not in out and "model_assigner_test:" not in out, "no password shown"

    # The same answers from the database as from the file.
    for command in (["reservations", "--json"], ["quota", "--json"]):
        assert run(*command, "--state", str(source.path), "--now", NOW.isoformat()) == 0
        from_file = json.loads(capsys.readouterr().out)
        assert run(*command, "--state", pg_url, "--now", NOW.isoformat()) == 0
        assert json.loads(capsys.readouterr().out) == from_file

    # A second copy into the same database is refused: it is not empty.
    assert run("state", "migrate", "--state", str(source.path), "--to", pg_url) == 2
    assert "not empty" in capsys.readouterr().err

    # And back into a new file: the same document.
    back = cli_env / "back.json"
    assert run("state", "migrate", "--state", pg_url, "--to", str(back)) == 0
    capsys.readouterr()
    assert parse_state(back.read_text(), "back") == parse_state(store_text(source.path), "src")


def test_state_migrate_refuses_while_the_queue_holds_jobs_on_either_back_end(
    cli_env: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The queue is not moved (a copy could be decided twice by the old
    servers): a store whose queue still holds a job is not copied, and says
    why; once the job is gone the copy goes ahead."""
    from model_assigner.bot.pg import Database
    from model_assigner.bot.queue.db import QueueDb
    from model_assigner.bot.queue.jobs import SqliteJobQueue
    from model_assigner.bot.queue.pg import PgJobQueue

    source = seeded_file(cli_env / "state.json")
    payload = webhook("issues.opened", number=5)
    beside = SqliteJobQueue(QueueDb(cli_env / "queue.sqlite3"))
    assert beside.accept("d-file", "issues", payload, "Codertocat/Hello-World#5", 1)
    assert run("state", "migrate", "--state", str(source.path), "--to", pg_url) == 2
    err = capsys.readouterr().err
    assert "holds 1 job" in err and "model-assigner queue" in err
    assert "Traceback" not in err
    target = released(PgStore(pg_url, load_engine_config().quotas))
    assert target.is_empty(), "nothing copied"

    assert beside.drop("Codertocat/Hello-World#5")
    assert run("state", "migrate", "--state", str(source.path), "--to", pg_url) == 0
    assert "totals match" in capsys.readouterr().out

    # And back: the database's queue holds a job.
    database = Database(pg_url, 1)
    try:
        assert PgJobQueue(database).accept("d-db", "issues", payload,
                                           "Codertocat/Hello-World#5", 1)
    finally:
        database.release()
    assert run("state", "migrate", "--state", pg_url, "--to", str(cli_env / "back.json")) == 2
    assert "holds 1 job" in capsys.readouterr().err
    assert not (cli_env / "back.json").exists()


def test_backup_of_the_database_restores_into_a_file_and_back(
    cli_env: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = seeded_file(cli_env / "state.json")
    released(PgStore(pg_url, source.defaults)).replace(source.read())
    assert run("state", "check", "--state", pg_url) == 0
    assert "valid" in capsys.readouterr().out
    backup = cli_env / "backup.json"
    assert run("state", "backup", str(backup), "--state", pg_url) == 0
    capsys.readouterr()
    # The backup is the JSON store's document: a file store reads it as is.
    restored = cli_env / "restored.json"
    assert run("state", "restore", str(backup), "--state", str(restored)) == 0
    assert Store(restored, source.defaults).read() == released(
        PgStore(pg_url, source.defaults)).read()
    # Restoring a changed document over the database replaces everything.
    state = parse_state(backup.read_text(), "backup")
    state.release("octo/repo#1")
    backup.write_text(serialize(state))
    assert run("state", "restore", str(backup), "--state", pg_url) == 0
    after = released(PgStore(pg_url, source.defaults)).read()
    assert set(after.reservations) == {"octo/repo#2"}
    assert after.subscriptions["claude"].tokens_used_month == 0


def test_database_url_is_the_store_when_model_assigner_state_is_unset(
    cli_env: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    released(PgStore(pg_url, load_engine_config().quotas)).replace(
        seeded_file(cli_env / "s.json").read())
    monkeypatch.setenv("DATABASE_URL", pg_url)
    assert run("reservations", "--now", NOW.isoformat()) == 0
    assert "octo/repo#1" in capsys.readouterr().out


# --- schema versions ------------------------------------------------------------


def test_migrate_is_idempotent_and_a_newer_schema_is_refused(
    cli_env: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("migrate", "--state", pg_url) == 0
    assert f"schema is current (version {LATEST})" in capsys.readouterr().out
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ma_schema (version, description) VALUES (%s, 'next'),"
                     " (%s, 'future')", (LATEST + 1, LATEST + 2))
    try:
        assert run("migrate", "--state", pg_url) == 2
        assert f"schema version {LATEST + 2} is newer" in capsys.readouterr().err
        store = released(PgStore(pg_url, load_engine_config().quotas))
        with pytest.raises(StoreError, match="is newer than this model-assigner"):
            store.check()
        with pytest.raises(StoreError, match="is newer"):
            store.ensure_writable()
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DELETE FROM ma_schema WHERE version > %s", (LATEST,))


def test_replicas_of_this_release_keep_serving_a_schema_one_version_ahead(
    pg_url: str,
) -> None:
    # A rolling deploy: the next release's first replica migrates (additive),
    # this release's replicas go on; their readiness (/healthz) stays green.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ma_schema (version, description) VALUES (%s, 'next')",
                     (LATEST + 1,))
    try:
        store = released(PgStore(pg_url, load_engine_config().quotas))
        store.ensure_writable()
        store.check()
        assert migrate(store.db) == []
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DELETE FROM ma_schema WHERE version > %s", (LATEST,))


# The SQL the release before (schema 4) runs on its per-issue records.
_V4_WRITE = ("INSERT INTO ma_comments (issue, doc) VALUES (%s, %s::jsonb) "
             "ON CONFLICT (issue) DO UPDATE SET doc = excluded.doc, seq = excluded.seq")
_V4_READ = "SELECT issue, doc::text FROM ma_comments ORDER BY seq FOR UPDATE"


def test_the_release_before_keeps_working_after_migration_5(pg_database: str) -> None:
    # Schema 4 in a PostgreSQL schema of its own, with a record in it; then
    # migration 5 (the first new replica's start-up). The old replicas' SQL on
    # ma_comments must keep working, and see the same rows as ma_records.
    url = f"{pg_database}?options=-csearch_path%3Dma_v4"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS ma_v4 CASCADE")
        conn.execute("CREATE SCHEMA ma_v4")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            with conn.transaction():
                conn.execute("CREATE TABLE ma_schema (version integer PRIMARY KEY,"
                             " description text NOT NULL,"
                             " applied_at timestamptz NOT NULL DEFAULT now())")
                for version, description, sql in MIGRATIONS:
                    if version <= 4:
                        conn.execute(sql.encode())
                        conn.execute("INSERT INTO ma_schema VALUES (%s, %s)",
                                     (version, description))
            conn.execute(_V4_WRITE, ("o/r#1", '{"v": 1}'))
        db = Database(url, pool_size=1)
        try:
            assert migrate(db) == [5]
        finally:
            db.release()
        with psycopg.connect(url, autocommit=True) as conn:
            with conn.transaction():
                assert conn.execute(_V4_READ).fetchall() == [("o/r#1", '{"v": 1}')]
                conn.execute(_V4_WRITE, ("o/r#1", '{"v": 2}'))
                conn.execute(_V4_WRITE, ("o/r#2", '{"v": 3}'))
            assert conn.execute("SELECT issue, doc::text FROM ma_records ORDER BY seq"
                                ).fetchall() == [("o/r#1", '{"v": 2}'), ("o/r#2", '{"v": 3}')]
            conn.execute("DELETE FROM ma_comments WHERE issue = %s", ("o/r#1",))
            assert conn.execute("SELECT issue FROM ma_records").fetchall() == [("o/r#2",)]
    finally:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS ma_v4 CASCADE")


# --- failing safe ----------------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[CuttableProxy]:
    relay = CuttableProxy()
    yield relay
    relay.cut()


def dry_run_settings(tmp_path: Path, url: str) -> Settings:
    return Settings(app_id=None, private_key=None, webhook_secret="s3cret",
                    api_url="https://api.github.com", state_path=tmp_path / "data" / "s.json",
                    config_dir=CONFIG_DIR, bot_login=None, database_url=url,
                    inline_delivery=True)


def post(client: Any, payload: dict[str, Any], delivery: str) -> Any:
    body = encode(payload)
    return client.post("/webhook", data=body,
                       headers=delivery_headers(body, "issues", delivery, secret="s3cret"))


def opened(number: int) -> dict[str, Any]:
    payload = webhook("issues.opened")
    payload["issue"].update(number=number, **issue_fields(["P0", "backend"], SMALL_BACKEND))
    return payload


def test_database_down_refuses_deliveries_fails_health_and_resumes_without_restart(
    tmp_path: Path, pg_url: str, proxy: CuttableProxy
) -> None:
    app = create_app(dry_run_settings(tmp_path, proxy.url(pg_url)), clock=lambda: NOW)
    client = app.test_client()
    direct = PgStore(pg_url, load_engine_config().quotas)
    assert post(client, opened(1), "d-before").status_code == 200
    assert client.get("/healthz").status_code == 200

    proxy.cut()
    refused = post(client, opened(2), "d-during")
    assert refused.status_code == 503
    assert refused.get_json()["outcome"] == "store_unavailable"
    assert client.get("/healthz").status_code == 503
    # Nothing of the refused delivery was written: GitHub redelivers it.
    assert not direct.seen_delivery("d-during")
    assert "octo-org/hello-world#2" not in str(direct.read().reservations)

    proxy.restore()
    assert client.get("/healthz").status_code == 200
    again = post(client, opened(2), "d-during")
    assert again.status_code == 200, again.get_json()
    assert direct.seen_delivery("d-during") and direct.seen_delivery("d-before")
    state = direct.read()
    assert len(state.reservations) == 2
    assert_counters_match(state)
    direct.release()
    app.extensions["model_assigner.store"].release()


def assert_counters_match(state: State) -> None:
    """The counters are the sum of the reservations (nothing else charged here)."""
    held = list(state.reservations.values())
    for family, sub in state.subscriptions.items():
        assert sub.tokens_used_month == sum(
            r.tokens for r in held if r.payment.kind == "subscription"
            and r.payment.family == family), family
    assert state.api_budget.spent_usd == pytest.approx(
        sum(r.cost_usd for r in held if r.payment.kind == "api"))


def test_a_connection_lost_inside_a_transaction_rolls_it_back(pg_url: str) -> None:
    store = PgStore(pg_url, load_engine_config().quotas)
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", reservation(5_000))
    before = store.export_text()

    def change(state: State) -> None:
        state.reserve("o/r#2", reservation(7_000))
        state.remember_delivery("lost", NOW)
        # Another session ends ours, mid-transaction (a dropped connection).
        pid = state.reservations  # the rows above are read on this connection
        assert pid is not None
        with psycopg.connect(pg_url, autocommit=True) as killer:
            killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND state LIKE 'idle in transaction%'"
            )

    with pytest.raises(StoreError, match="database"):
        store.apply(NOW, change)
    assert store.export_text() == before, "nothing of the lost transaction was written"
    assert not store.seen_delivery("lost")
    # The pool replaces the broken connection: the next transaction works.
    store.apply(NOW, lambda state: state.reserve("o/r#3", reservation(1_000)))
    assert set(store.read().reservations) == {"o/r#1", "o/r#3"}
    store.release()


# --- one issue at a time across processes -----------------------------------------


def _hold(url: str, key: str, held: Any, release: Any) -> None:
    store = PgStore(url, load_engine_config().quotas)
    with store.issue_locks.hold(key):
        held.set()
        release.wait(20)


def test_issue_lock_excludes_another_process_and_dies_with_it(pg_url: str) -> None:
    store = PgStore(pg_url, load_engine_config().quotas)
    held, release = MP.Event(), MP.Event()
    child = MP.Process(target=_hold, args=(pg_url, "o/r#1", held, release))
    child.start()
    killed = False
    try:
        assert held.wait(20)
        locks = store.issue_locks
        assert locks.busy("o/r#1") and not locks.busy("o/r#2")
        got = threading.Event()

        def take() -> None:
            with locks.hold("o/r#1"):
                got.set()

        taker = threading.Thread(target=take)
        taker.start()
        assert not got.wait(0.5), "the issue is another process's"
        assert child.pid is not None
        import os
        import signal

        os.kill(child.pid, signal.SIGKILL)  # its connection goes, and the lock with it
        killed = True
        assert got.wait(20)
        taker.join(5)
    finally:
        # Never set an Event a killed process was waiting on: set() waits for
        # every sleeper to wake, and a dead one never does. is_alive() is no
        # guide: until the child is reaped it still says True (the hang seen
        # under load).
        if not killed:
            release.set()
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join(5)
    assert not store.issue_locks.busy("o/r#1")
    store.release()


# --- the queue command on the database -------------------------------------------


def test_the_queue_command_lists_and_retries_the_databases_jobs(
    cli_env: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from model_assigner.bot.pg import Database
    from model_assigner.bot.queue.pg import PgJobQueue

    database = Database(pg_url, pool_size=2)
    queue = PgJobQueue(database)
    queue.accept("d-1", "issues", {"action": "opened", "issue": {"number": 1}}, "o/r#1", 7)
    job = queue.claim("w")
    assert job is not None
    queue.retry(job, "GitHub down", 0.0, max_attempts=1)  # dead at once
    monkeypatch.setenv("MODEL_ASSIGNER_STATE", pg_url)
    assert run("queue", "--dead", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["issue"] for row in listed["jobs"]] == ["o/r#1"]
    assert listed["jobs"][0]["last_error"] == "GitHub down"
    assert run("queue", "retry", "o/r#1") == 0
    assert "retrying o/r#1" in capsys.readouterr().out
    assert [j.state for j in queue.jobs()] == ["waiting"]
    database.release()
