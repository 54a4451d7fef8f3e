"""The quota store on PostgreSQL: the same State, commands and semantics as
the JSON store (bot/store/json_store.py), shared by any number of servers.

A row per entry: the ledger (subscription counters and API budget, one row),
and one table per section of the JSON document (reservations, issue
records, dependencies, reported usage, delivery ids, applied exports),
each entry the same JSON as in the file.

A transaction hands its change a State whose sections read their rows on
demand (``Section``), so a delivery reads the few rows of its issue, not
the store. What it reads, it locks, so that a read-modify-write is never
interleaved with another replica's:
- an issue's rows (in every section at once) behind a transaction-scoped
  advisory lock on the issue, taken before they are read: two replicas
  deciding the same issue take turns, other issues go on in parallel;
- the ledger row ``SELECT ... FOR UPDATE``, read only by a change that
  touches the counters (a reservation and its counters change in the same
  transaction), with the daily and monthly resets due applied to it then:
  the first transaction after midnight resets, the next ones find it done.
No table is locked. Two transactions that lock in opposite orders are
stopped by the server's deadlock detection; ``apply`` then runs the change
again (changes may run more than once, as for the JSON store's batches).

Reads for reports (``read``) and for deciding (``view``) take a
REPEATABLE READ snapshot and no lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

from model_assigner.bot.pg import (
    HEALTH_WAIT,
    Database,
    DatabaseError,
    lock_key,
)
from model_assigner.bot.store.codec import parse_state, serialize
from model_assigner.bot.store.pg_rows import (
    ADAPTERS,
    DEADLOCK_RETRIES,
    ISSUE_SECTIONS,
    ISSUE_WORK,
    PRUNE_EVERY,
    TABLES,
    T,
    Transaction,
    ledger_texts,
    prune_statements,
)
from model_assigner.bot.store.pg_schema import current_version, migrate, require_current
from model_assigner.bot.store.state import (
    STATE_VERSION,
    State,
    StoreError,
    initial_state,
    sync_with_config,
)
from model_assigner.core.config_subscriptions import SubscriptionsConfig
from model_assigner.core.types import as_utc


class PgStore:
    """The store in a PostgreSQL database (MODEL_ASSIGNER_STATE=postgresql://...)."""

    kind = "postgresql"

    def __init__(self, url: str, defaults: SubscriptionsConfig,
                 clock: Callable[[], datetime] | None = None,
                 pool_size: int | None = None) -> None:
        self.db = Database(url, pool_size)
        self.defaults = defaults
        self.clock = clock or (lambda: datetime.now(UTC))
        self.display = self.db.display
        self._since_prune = 0
        self._since_history_prune = PRUNE_EVERY  # the first decision prunes
        self._prune_lock = threading.Lock()

    def __str__(self) -> str:
        return self.display

    # -- start-up and health ---------------------------------------------

    def migrate(self) -> list[int]:
        return migrate(self.db)

    def exists(self) -> bool:
        """Whether the database has the schema (``model-assigner migrate``)."""
        return current_version(self.db) > 0

    def check(self) -> None:
        """Raise StoreError unless the schema is current and every row reads."""
        require_current(self.db)
        self.read()

    def ensure_exists(self) -> None:
        """At start-up, after the migrations: the ledger row, seeded from config."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO ma_ledger (id, subscriptions, api_budget) VALUES (1, %s, %s) "
                "ON CONFLICT (id) DO NOTHING",
                ledger_texts(initial_state(self.defaults, self.clock())),
            )

    def check_file(self) -> None:
        """/healthz's second look (the file store checks its file): the same
        answer as ensure_writable."""

    def ensure_writable(self) -> None:
        """/healthz: the database answers, with this model-assigner's schema."""
        require_current(self.db, HEALTH_WAIT)

    def remove_stale_temporaries(self, older_than: float = 60.0) -> int:
        return 0  # nothing of ours lies around on disk

    def release(self) -> None:
        self.db.release()

    # -- decoding --------------------------------------------------------

    def decode(self, section: str, key: str, text: str) -> Any:
        try:
            return ADAPTERS[section].validate_json(text)
        except ValueError as exc:
            raise StoreError(
                f"{self.display}: {TABLES[section][0]} row {key!r}: {exc}"
            ) from None

    # -- reading ---------------------------------------------------------

    def export_text(self) -> str:
        """The whole store as the JSON store's document (a backup), from one
        snapshot; the counters as stored (not synced with config)."""
        with self.db.transaction(read_only=True) as conn:
            ledger = conn.execute(
                "SELECT subscriptions::text, api_budget::text FROM ma_ledger WHERE id = 1"
            ).fetchone()
            parts: dict[str, str] = {}
            for name in TABLES:
                table, column = TABLES[name]
                value = "doc" if name in ISSUE_SECTIONS else "to_json(at)"
                # json, not jsonb: an object that keeps its keys' order.
                row = conn.execute(
                    f"SELECT coalesce(json_object_agg({column}, {value} ORDER BY seq), "
                    f"'{{}}')::text FROM {table}".encode()
                ).fetchone()
                parts[name] = str(row[0]) if row else "{}"
        if ledger is None:
            fresh = initial_state(self.defaults, self.clock())
            ledger = ledger_texts(fresh)
        body = ", ".join(f'"{name}": {text}' for name, text in parts.items())
        return (
            f'{{"version": {STATE_VERSION}, "subscriptions": {ledger[0]}, '
            f'"api_budget": {ledger[1]}, '
            f"{body}}}"
        )

    def read(self) -> State:
        """A consistent snapshot, for reports; changes to it are not saved."""
        state = parse_state(self.export_text(), self.display)
        sync_with_config(state, self.defaults, self.clock())
        return state

    def view(self, look: Callable[[State], T]) -> T:
        """``look(state)`` on a snapshot, reading only the rows it asks for."""
        with self.db.transaction(read_only=True) as conn:
            tx = Transaction(self, conn, None, write=False)
            return look(tx.state)

    def seen_delivery(self, delivery_id: str) -> bool:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM ma_deliveries WHERE id = %s", (delivery_id,)
            ).fetchone()
        return row is not None

    # -- changing --------------------------------------------------------

    @contextmanager
    def transaction(self, now: datetime) -> Iterator[State]:
        """Let the caller change the state; saved when the block ends, rolled
        back (nothing written) when it raises. Not retried on a deadlock
        (the block is the caller's): it is a StoreError then."""
        with self.db.transaction() as conn:
            tx = Transaction(self, conn, now, write=True)
            # The counters first, as the file store loads them (commands and
            # scripts see the resets due, and a first transaction saves the
            # configured state); ``apply``, the server's path, reads them
            # only when its change does.
            tx.state.api_budget  # noqa: B018
            yield tx.state
            tx.commit()

    def apply(self, now: datetime, change: Callable[[State], T]) -> T:
        """``change(state)`` in one transaction; run again when the server
        broke a deadlock by stopping this one (nothing of it was saved)."""
        for attempt in range(DEADLOCK_RETRIES):
            try:
                with self.db.transaction() as conn:
                    tx = Transaction(self, conn, now, write=True)
                    result = change(tx.state)
                    tx.commit()
                return result
            except DatabaseError as exc:
                if not exc.retryable or attempt == DEADLOCK_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def history_prune_due(self) -> bool:
        """Whether this decision should drop the history's old entries: one
        in PRUNE_EVERY of this process's (each a scan of the history)."""
        with self._prune_lock:
            self._since_history_prune += 1
            due = self._since_history_prune >= PRUNE_EVERY
            if due:
                self._since_history_prune = 0
        return due

    def note_deliveries(self, tx: Transaction, count: int) -> None:
        """Forget delivery ids as the JSON store does, by age (DELIVERY_MEMORY)
        and by count (the newest DELIVERY_LIMIT are kept), every PRUNE_EVERY
        ids this process records (so at most DELIVERY_LIMIT plus PRUNE_EVERY
        per server process are ever held), and in any transaction that
        records more than PRUNE_EVERY at once."""
        with self._prune_lock:
            self._since_prune += count
            due = self._since_prune >= PRUNE_EVERY
            if due:
                self._since_prune = 0
        if due and tx.now is not None:
            for sql, params in prune_statements(tx.now):
                tx.run(sql, params)

    def prune_deliveries(self, now: datetime) -> int:
        """Forget old ids and those beyond the newest DELIVERY_LIMIT now; how
        many went."""
        gone = 0
        with self.db.transaction() as conn:
            for sql, params in prune_statements(now):
                gone += conn.execute(sql.encode(), params).rowcount
        return gone

    # -- backup, restore, moving over -----------------------------------

    def is_empty(self) -> bool:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM ma_ledger) + (SELECT count(*) FROM ma_reservations)"
                " + (SELECT count(*) FROM ma_records) + (SELECT count(*) FROM ma_deliveries)"
                " + (SELECT count(*) FROM ma_usage) + (SELECT count(*) FROM ma_dependencies)"
            ).fetchone()
        return not row or int(row[0]) == 0

    def replace(self, state: State) -> None:
        """Put ``state`` in place of everything, in one transaction (restore)."""
        with self.db.transaction() as conn:
            conn.execute("SELECT id FROM ma_ledger FOR UPDATE")
            for table, _ in TABLES.values():
                conn.execute(f"DELETE FROM {table}".encode())
            conn.execute(
                "INSERT INTO ma_ledger (id, subscriptions, api_budget) VALUES (1, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET subscriptions = excluded.subscriptions, "
                "api_budget = excluded.api_budget",
                ledger_texts(state),
            )
            with conn.cursor() as cursor:
                for name in ISSUE_SECTIONS:
                    table, column = TABLES[name]
                    adapter = ADAPTERS[name]
                    entries: dict[str, Any] = getattr(state, name)
                    if entries:
                        cursor.executemany(
                            f"INSERT INTO {table} ({column}, doc) VALUES (%s, %s::jsonb)".encode(),
                            [(k, adapter.dump_json(v).decode()) for k, v in entries.items()],
                        )
                for name in ("deliveries", "reconciled"):
                    table, column = TABLES[name]
                    times: dict[str, datetime] = getattr(state, name)
                    if times:
                        cursor.executemany(
                            f"INSERT INTO {table} ({column}, at) VALUES (%s, %s)".encode(),
                            [(k, as_utc(v)) for k, v in sorted(times.items(),
                                                                key=lambda kv: as_utc(kv[1]))],
                        )

    # -- one issue at a time, across replicas ---------------------------

    @property
    def issue_locks(self) -> PgIssueLocks:
        return PgIssueLocks(self)

    @contextmanager
    def issue_lock(self, key: str) -> Iterator[None]:
        """Hold the issue's decision lock (a session advisory lock on a
        connection of its own): released when the block ends, or by the
        server when this process dies and its connection goes."""
        pair = lock_key(ISSUE_WORK, key)
        with self.db.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", pair)
            try:
                yield
            finally:
                if not conn.closed and not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", pair)

    def issue_busy(self, key: str) -> bool:
        pair = lock_key(ISSUE_WORK, key)
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = %s::oid AND objid = %s::bigint::oid AND objsubid = 2",
                (pair[0], pair[1] & 0xFFFFFFFF),
            ).fetchone()
        return bool(row and row[0])

    def serialize(self) -> str:
        return serialize(parse_state(self.export_text(), self.display))


class PgIssueLocks:
    """bot.locks.IssueLocks across every replica on the database."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    def hold(self, issue_key: str) -> AbstractContextManager[None]:
        return self.store.issue_lock(issue_key)

    def busy(self, issue_key: str) -> bool:
        return self.store.issue_busy(issue_key)
