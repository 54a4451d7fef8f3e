"""The quota store on PostgreSQL: the same State, commands and semantics as
the JSON store (bot/store/json_store.py), shared by any number of servers.

A row per entry: the ledger (subscription counters and API budget, one row),
and one table per section of the JSON document (reservations, issue
records, dependencies, reported usage, delivery ids, applied exports),
each entry the same JSON as in the file.

A transaction hands its change a State whose sections read their rows on
demand (``_Section``), so a delivery reads the few rows of its issue, not
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

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from pydantic import PrivateAttr, TypeAdapter

from model_assigner.bot.pg import (
    HEALTH_WAIT,
    ROWS_READ,
    STATEMENTS,
    Database,
    DatabaseError,
    lock_key,
)
from model_assigner.bot.store.codec import parse_state, serialize
from model_assigner.bot.store.pg_schema import current_version, migrate, require_current
from model_assigner.bot.store.state import (
    DELIVERY_LIMIT,
    DELIVERY_MEMORY,
    STATE_VERSION,
    Dependencies,
    IssueRecord,
    Reservation,
    State,
    StoreError,
    apply_resets,
    initial_state,
    sync_with_config,
)
from model_assigner.core.config_subscriptions import SubscriptionsConfig
from model_assigner.core.types import ApiBudget, Observation, Subscription, as_utc
from model_assigner.core.usage import IssueUsage

T = TypeVar("T")

ISSUE_ROWS = 0x6D62  # advisory lock namespace: an issue's rows, for one transaction
ISSUE_WORK = 0x6D63  # advisory lock namespace: an issue's decision (session lock)
OTHER_ROWS = 0x6D64  # delivery ids, applied exports
DEADLOCK_RETRIES = 5
PRUNE_EVERY = 200  # ids (or decisions) recorded between two prunes, per process

# Per section: its table, its key column, and how its entries are read.
# Each table keeps its entries' order (``seq``), as the document keeps its
# keys' order: the online history drops its oldest entries first.
ISSUE_SECTIONS = ("reservations", "records", "dependencies", "usage", "seen", "deferred")
_TABLES = {name: (f"ma_{name}", "issue") for name in ISSUE_SECTIONS} | {
    "deliveries": ("ma_deliveries", "id"),
    "reconciled": ("ma_reconciled", "digest"),
}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "reservations": TypeAdapter(Reservation),
    "records": TypeAdapter(IssueRecord),
    "dependencies": TypeAdapter(Dependencies),
    "usage": TypeAdapter(IssueUsage),
    "seen": TypeAdapter(Observation),
    "deferred": TypeAdapter(Observation),
}
# An issue's rows in every section, in one round trip.
_ISSUE_ROWS = " UNION ALL ".join(
    f"SELECT '{name}', doc::text FROM ma_{name} WHERE issue = %(k)s" for name in ISSUE_SECTIONS
)
_SUBSCRIPTIONS: TypeAdapter[dict[str, Subscription]] = TypeAdapter(dict[str, Subscription])
_MISSING = object()


class _Section(dict[str, Any]):
    """One section of the state, read from the database on demand.

    A key is looked up when first asked for (``fetch``); the whole table is
    read when the section is iterated or counted. Keys set or removed are
    ``dirty`` and written when the transaction commits."""

    def __init__(self, name: str, fetch: Callable[[str, str], None],
                 fetch_all: Callable[[str], dict[str, Any]]) -> None:
        super().__init__()
        self.name = name
        self._fetch = fetch
        self._fetch_all = fetch_all
        self.absent: set[str] = set()
        # Keys set or removed, in the order of their last change (a dict).
        self.dirty: dict[str, None] = {}
        self.complete = False

    def known(self, key: str) -> bool:
        return self.complete or key in self.absent or dict.__contains__(self, key) or (
            key in self.dirty)

    def _need(self, key: object) -> None:
        if isinstance(key, str) and not self.known(key):
            self._fetch(self.name, key)

    def _loaded(self, key: str, value: Any) -> None:
        """A row read from the database (never one this transaction changed)."""
        if key not in self.dirty:
            if value is _MISSING:
                self.absent.add(key)
            else:
                dict.__setitem__(self, key, value)

    def _touch(self, key: str) -> None:
        self.dirty.pop(key, None)
        self.dirty[key] = None

    def _need_all(self) -> None:
        """Every row, in the table's order; what this transaction changed
        last, in the order it changed it (as a dict would have it)."""
        if not self.complete:
            ordered: dict[str, Any] = {}
            for key, value in self._fetch_all(self.name).items():
                if key not in self.dirty:
                    ordered[key] = dict.get(self, key, value)
            for key in self.dirty:
                if dict.__contains__(self, key):
                    ordered[key] = dict.__getitem__(self, key)
            dict.clear(self)
            dict.update(self, ordered)
            self.complete = True

    def __getitem__(self, key: str) -> Any:
        self._need(key)
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        self._need(key)
        return dict.get(self, key, default)

    def __contains__(self, key: object) -> bool:
        self._need(key)
        return dict.__contains__(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if self.name in ISSUE_SECTIONS:
            self._need(key)  # the issue's lock, and its other rows, come with it
        dict.__setitem__(self, key, value)
        self._touch(key)

    def __delitem__(self, key: str) -> None:
        self._need(key)
        dict.__delitem__(self, key)
        self._touch(key)

    def pop(self, key: str, *default: Any) -> Any:
        self._need(key)
        if dict.__contains__(self, key):
            self._touch(key)
        return dict.pop(self, key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        self._need_all()
        for key in list(dict.keys(self)):
            self._touch(key)
        dict.clear(self)

    def __iter__(self) -> Iterator[str]:
        self._need_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._need_all()
        return dict.__len__(self)

    def keys(self) -> Any:
        self._need_all()
        return dict.keys(self)

    def values(self) -> Any:
        self._need_all()
        return dict.values(self)

    def items(self) -> Any:
        self._need_all()
        return dict.items(self)

    def __repr__(self) -> str:
        return f"_Section({self.name}, {dict.__len__(self)} loaded)"

    def changes(self) -> tuple[dict[str, Any], list[str]]:
        """(entries to write, keys to delete)."""
        keep = {key: dict.__getitem__(self, key) for key in self.dirty
                if dict.__contains__(self, key)}
        return keep, [key for key in self.dirty if not dict.__contains__(self, key)]


class _LazyState(State):
    """A State whose counters (``subscriptions``, ``api_budget``) are read,
    and locked, only when the change touches them; its sections are
    ``_Section``\\s. Lives for one transaction."""

    _load_ledger: Any = PrivateAttr(default=None)
    _tx: Any = PrivateAttr(default=None)

    def __getattr__(self, name: str) -> Any:
        if name in ("subscriptions", "api_budget"):
            loader = self._load_ledger
            if loader is not None:
                loader(self)
                return self.__dict__[name]
        return super().__getattr__(name)  # type: ignore[misc]

    def ledger_loaded(self) -> bool:
        return "api_budget" in self.__dict__

    def dependents_of(self, issue: str) -> list[str]:
        """Only the rows that name ``issue`` (a GIN index), not the table."""
        section: _Section = self.__dict__["dependencies"]
        if section.complete or self._tx is None:
            return super().dependents_of(issue)
        rows = self._tx.run(
            "SELECT issue FROM ma_dependencies WHERE doc @> %s::jsonb AND issue <> %s "
            "ORDER BY seq", (json.dumps([issue]), issue),
        ).fetchall()
        ROWS_READ.add(len(rows))
        found = [key for (key,) in rows if key not in section.dirty]
        found += [key for key in section.dirty if key != issue and dict.__contains__(section, key)
                  and issue in dict.__getitem__(section, key)]
        return found

    def reservations_of(self, repo: str) -> list[Reservation]:
        """Only the repository's rows."""
        section: _Section = self.__dict__["reservations"]
        if section.complete or self._tx is None:
            return super().reservations_of(repo)
        prefix = f"{repo}#"
        rows = self._tx.run(
            "SELECT issue, doc::text FROM ma_reservations WHERE starts_with(issue, %s) "
            "ORDER BY seq", (prefix,),
        ).fetchall()
        ROWS_READ.add(len(rows))
        decode = self._tx.store.decode
        found = [decode("reservations", key, text) for key, text in rows
                 if key not in section.dirty]
        found += [dict.__getitem__(section, key) for key in section.dirty
                  if key.startswith(prefix) and dict.__contains__(section, key)]
        return found

    def history_since(self, since: datetime, but: str) -> list[Observation]:
        """Only the rows of the window the online strategy reads."""
        section: _Section = self.__dict__["seen"]
        if section.complete or self._tx is None:
            return super().history_since(since, but)
        rows = self._tx.run(
            "SELECT issue, doc::text FROM ma_seen WHERE (doc->>'seen_at')::timestamptz >= %s "
            "AND issue <> %s ORDER BY seq", (as_utc(since), but),
        ).fetchall()
        ROWS_READ.add(len(rows))
        decode = self._tx.store.decode
        found = [decode("seen", key, text) for key, text in rows if key not in section.dirty]
        since = as_utc(since)
        for key in section.dirty:
            if key != but and dict.__contains__(section, key):
                seen: Observation = dict.__getitem__(section, key)
                if as_utc(seen.seen_at) >= since:
                    found.append(seen)
        return found

    def forget_history_before(self, cutoff: datetime) -> None:
        """Noted, and done by a delete now and then (``_Tx.commit``): the
        history is not read whole to find its oldest entries."""
        if self._tx is None or self.__dict__["seen"].complete:
            super().forget_history_before(cutoff)
        else:
            self._tx.history_cutoff = cutoff

    def materialized(self) -> State:
        """A plain State with every row read (for a copy that outlives the
        transaction)."""
        fields: dict[str, Any] = {name: dict(getattr(self, name).items()) for name in _TABLES}
        return State.model_construct(
            subscriptions=dict(self.subscriptions), api_budget=self.api_budget, **fields
        )

    def __copy__(self) -> State:  # type: ignore[override]
        return self.materialized()

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> State:  # type: ignore[override]
        return self.materialized().model_copy(deep=True)


class _Tx:
    """One transaction's reads, locks and writes."""

    def __init__(self, store: PgStore, conn: psycopg.Connection[Any], now: datetime | None,
                 write: bool) -> None:
        self.store = store
        self.conn = conn
        self.now = now
        self.write = write
        self.locked: set[tuple[int, int]] = set()
        self.ledger_before: tuple[str, str] | None = None
        self.history_cutoff: datetime | None = None
        self.state = self._state()

    def run(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> psycopg.Cursor[Any]:
        return self.conn.execute(sql.encode(), params)

    def _state(self) -> _LazyState:
        sections = {name: _Section(name, self._fetch, self._fetch_all) for name in _TABLES}
        state = _LazyState.model_construct(**sections)  # type: ignore[arg-type]
        state.__dict__.pop("subscriptions", None)
        state.__dict__.pop("api_budget", None)
        state._load_ledger = self._load_ledger
        state._tx = self
        return state

    # -- reading ---------------------------------------------------------

    def _lock(self, namespace: int, key: str) -> None:
        pair = lock_key(namespace, key)
        if self.write and pair not in self.locked:
            self.run("SELECT pg_advisory_xact_lock(%s, %s)", pair)
            self.locked.add(pair)

    def _fetch(self, section: str, key: str) -> None:
        sections: dict[str, _Section] = {n: self.state.__dict__[n] for n in _TABLES}
        if section in ISSUE_SECTIONS:
            # An issue's rows come together, after its lock: one round trip
            # for all four, and none of them can change under us.
            self._lock(ISSUE_ROWS, key)
            rows = self.run(_ISSUE_ROWS, {"k": key}).fetchall()
            ROWS_READ.add(len(rows))
            found = {name: text for name, text in rows}
            for name in ISSUE_SECTIONS:
                text = found.get(name)
                value = _MISSING if text is None else self.store.decode(name, key, text)
                sections[name]._loaded(key, value)
            return
        table, column = _TABLES[section]
        self._lock(OTHER_ROWS, f"{section}:{key}")
        row = self.run(f"SELECT at FROM {table} WHERE {column} = %s", (key,)).fetchone()
        ROWS_READ.add(row is not None)
        sections[section]._loaded(key, _MISSING if row is None else as_utc(row[0]))

    def _fetch_all(self, section: str) -> dict[str, Any]:
        table, column = _TABLES[section]
        lock = " FOR UPDATE" if self.write else ""
        if section in ISSUE_SECTIONS:
            rows = self.run(
                f"SELECT {column}, doc::text FROM {table} ORDER BY seq{lock}"
            ).fetchall()
            ROWS_READ.add(len(rows))
            return {key: self.store.decode(section, key, text) for key, text in rows}
        rows = self.run(f"SELECT {column}, at FROM {table} ORDER BY seq{lock}").fetchall()
        ROWS_READ.add(len(rows))
        return {key: as_utc(at) for key, at in rows}

    def _load_ledger(self, state: _LazyState) -> None:
        store = self.store
        lock = " FOR UPDATE" if self.write else ""
        row = self.run(
            f"SELECT subscriptions::text, api_budget::text FROM ma_ledger WHERE id = 1{lock}"
        ).fetchone()
        if row is None and self.write:
            fresh = initial_state(store.defaults, store.clock())
            self.run(
                "INSERT INTO ma_ledger (id, subscriptions, api_budget) VALUES (1, %s, %s) "
                "ON CONFLICT (id) DO NOTHING",
                _ledger_texts(fresh),
            )
            row = self.run(
                "SELECT subscriptions::text, api_budget::text FROM ma_ledger WHERE id = 1 "
                "FOR UPDATE"
            ).fetchone()
        if row is None:
            fresh = initial_state(store.defaults, store.clock())
            subscriptions, budget = fresh.subscriptions, fresh.api_budget
        else:
            self.ledger_before = (str(row[0]), str(row[1]))
            try:
                subscriptions = _SUBSCRIPTIONS.validate_json(row[0])
                budget = ApiBudget.model_validate_json(row[1])
            except ValueError as exc:
                raise StoreError(f"{store.db.display}: ma_ledger: {exc}") from None
        state.__dict__["subscriptions"] = subscriptions
        state.__dict__["api_budget"] = budget
        sync_with_config(state, store.defaults, store.clock())
        if self.write and self.now is not None:
            apply_resets(state, self.now)

    # -- writing ---------------------------------------------------------

    def commit(self) -> None:
        state = self.state
        if self.history_cutoff is not None and self.store.history_prune_due():
            # Before the writes: an entry this transaction re-observed stays.
            self.run("DELETE FROM ma_seen WHERE (doc->>'seen_at')::timestamptz < %s",
                     (as_utc(self.history_cutoff),))
        for name, (table, column) in _TABLES.items():
            section: _Section = state.__dict__[name]
            keep, gone = section.changes()
            if gone:
                self.run(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (gone,))
            if not keep:
                continue
            if name in ISSUE_SECTIONS:
                adapter = _ADAPTERS[name]
                rows: list[tuple[str, Any]] = [
                    (key, adapter.dump_json(value).decode()) for key, value in keep.items()
                ]
                sql = (f"INSERT INTO {table} ({column}, doc) VALUES (%s, %s::jsonb) "
                       f"ON CONFLICT ({column}) DO UPDATE SET doc = excluded.doc, "
                       "seq = excluded.seq")
            else:
                rows = [(key, as_utc(value)) for key, value in keep.items()]
                sql = (f"INSERT INTO {table} ({column}, at) VALUES (%s, %s) "
                       f"ON CONFLICT ({column}) DO UPDATE SET at = excluded.at, "
                       "seq = excluded.seq")
            STATEMENTS.add()  # executemany: one pipeline
            with self.conn.cursor() as cursor:
                cursor.executemany(sql.encode(), rows)
            if name == "deliveries":
                self.store.note_deliveries(self, len(rows))
        if state.ledger_loaded():
            texts = _ledger_texts(state)
            if texts != self.ledger_before:
                self.run(
                    "UPDATE ma_ledger SET subscriptions = %s, api_budget = %s WHERE id = 1",
                    texts,
                )


def _prune_statements(now: datetime) -> list[tuple[str, tuple[Any, ...]]]:
    """By age, then the oldest beyond DELIVERY_LIMIT (among equal times, the
    first recorded), as State.prune_deliveries."""
    return [
        ("DELETE FROM ma_deliveries WHERE at < %s", (as_utc(now) - DELIVERY_MEMORY,)),
        ("DELETE FROM ma_deliveries WHERE id IN (SELECT id FROM ma_deliveries "
         "ORDER BY at DESC, seq DESC OFFSET %s)", (DELIVERY_LIMIT,)),
    ]


def _ledger_texts(state: State) -> tuple[str, str]:
    subs = _SUBSCRIPTIONS.dump_json(state.subscriptions).decode()
    return subs, state.api_budget.model_dump_json()


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
                _ledger_texts(initial_state(self.defaults, self.clock())),
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
            return _ADAPTERS[section].validate_json(text)
        except ValueError as exc:
            raise StoreError(
                f"{self.display}: {_TABLES[section][0]} row {key!r}: {exc}"
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
            for name in _TABLES:
                table, column = _TABLES[name]
                value = "doc" if name in ISSUE_SECTIONS else "to_json(at)"
                # json, not jsonb: an object that keeps its keys' order.
                row = conn.execute(
                    f"SELECT coalesce(json_object_agg({column}, {value} ORDER BY seq), "
                    f"'{{}}')::text FROM {table}".encode()
                ).fetchone()
                parts[name] = str(row[0]) if row else "{}"
        if ledger is None:
            fresh = initial_state(self.defaults, self.clock())
            ledger = _ledger_texts(fresh)
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
            tx = _Tx(self, conn, None, write=False)
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
            tx = _Tx(self, conn, now, write=True)
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
                    tx = _Tx(self, conn, now, write=True)
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

    def note_deliveries(self, tx: _Tx, count: int) -> None:
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
            for sql, params in _prune_statements(tx.now):
                tx.run(sql, params)

    def prune_deliveries(self, now: datetime) -> int:
        """Forget old ids and those beyond the newest DELIVERY_LIMIT now; how
        many went."""
        gone = 0
        with self.db.transaction() as conn:
            for sql, params in _prune_statements(now):
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
            for table, _ in _TABLES.values():
                conn.execute(f"DELETE FROM {table}".encode())
            conn.execute(
                "INSERT INTO ma_ledger (id, subscriptions, api_budget) VALUES (1, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET subscriptions = excluded.subscriptions, "
                "api_budget = excluded.api_budget",
                _ledger_texts(state),
            )
            with conn.cursor() as cursor:
                for name in ISSUE_SECTIONS:
                    table, column = _TABLES[name]
                    adapter = _ADAPTERS[name]
                    entries: dict[str, Any] = getattr(state, name)
                    if entries:
                        cursor.executemany(
                            f"INSERT INTO {table} ({column}, doc) VALUES (%s, %s::jsonb)".encode(),
                            [(k, adapter.dump_json(v).decode()) for k, v in entries.items()],
                        )
                for name in ("deliveries", "reconciled"):
                    table, column = _TABLES[name]
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
