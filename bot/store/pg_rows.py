"""The PostgreSQL store's rows: how a transaction sees the store.

A change is handed a State whose sections read their rows on demand
(``Section``), so a delivery reads the few rows of its issue, not the
store; ``Transaction`` holds what one transaction read and locked and
writes back what changed. Kept apart from ``PgStore`` (bot/store/postgresql.py),
which opens the transactions, runs the commands and answers the reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import psycopg
from pydantic import PrivateAttr, TypeAdapter

from model_assigner.bot.pg import (
    ROWS_READ,
    STATEMENTS,
    Database,
    lock_key,
)
from model_assigner.bot.store.state import (
    DELIVERY_LIMIT,
    DELIVERY_MEMORY,
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
TABLES = {name: (f"ma_{name}", "issue") for name in ISSUE_SECTIONS} | {
    "deliveries": ("ma_deliveries", "id"),
    "reconciled": ("ma_reconciled", "digest"),
}
ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "reservations": TypeAdapter(Reservation),
    "records": TypeAdapter(IssueRecord),
    "dependencies": TypeAdapter(Dependencies),
    "usage": TypeAdapter(IssueUsage),
    "seen": TypeAdapter(Observation),
    "deferred": TypeAdapter(Observation),
}
# An issue's rows in every section, in one round trip.
ISSUE_ROWS_SQL = " UNION ALL ".join(
    f"SELECT '{name}', doc::text FROM ma_{name} WHERE issue = %(k)s" for name in ISSUE_SECTIONS
)
_SUBSCRIPTIONS: TypeAdapter[dict[str, Subscription]] = TypeAdapter(dict[str, Subscription])
MISSING = object()


class Section(dict[str, Any]):
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
            if value is MISSING:
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
        return f"Section({self.name}, {dict.__len__(self)} loaded)"

    def changes(self) -> tuple[dict[str, Any], list[str]]:
        """(entries to write, keys to delete)."""
        keep = {key: dict.__getitem__(self, key) for key in self.dirty
                if dict.__contains__(self, key)}
        return keep, [key for key in self.dirty if not dict.__contains__(self, key)]


class LazyState(State):
    """A State whose counters (``subscriptions``, ``api_budget``) are read,
    and locked, only when the change touches them; its sections are
    ``Section``\\s. Lives for one transaction."""

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
        section: Section = self.__dict__["dependencies"]
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

    def other_repositories_known(self, repo: str) -> bool:
        """Two EXISTS, no rows read."""
        if self._tx is None:
            return super().other_repositories_known(repo)
        prefix = f"{repo}#"
        for name in ("reservations", "seen"):
            section: Section = self.__dict__[name]
            if any(not key.startswith(prefix) and dict.__contains__(section, key)
                   for key in section.dirty):
                return True
        row = self._tx.run(
            "SELECT EXISTS (SELECT 1 FROM ma_reservations WHERE NOT starts_with(issue, %(p)s))"
            " OR EXISTS (SELECT 1 FROM ma_seen WHERE NOT starts_with(issue, %(p)s))",
            {"p": prefix},
        ).fetchone()
        return bool(row and row[0])

    def reservations_of(self, repo: str) -> list[Reservation]:
        """Only the repository's rows."""
        section: Section = self.__dict__["reservations"]
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
        section: Section = self.__dict__["seen"]
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
        """Noted, and done by a delete now and then (``Transaction.commit``): the
        history is not read whole to find its oldest entries."""
        if self._tx is None or self.__dict__["seen"].complete:
            super().forget_history_before(cutoff)
        else:
            self._tx.history_cutoff = cutoff

    def materialized(self) -> State:
        """A plain State with every row read (for a copy that outlives the
        transaction)."""
        fields: dict[str, Any] = {name: dict(getattr(self, name).items()) for name in TABLES}
        return State.model_construct(
            subscriptions=dict(self.subscriptions), api_budget=self.api_budget, **fields
        )

    def __copy__(self) -> State:  # type: ignore[override]
        return self.materialized()

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> State:  # type: ignore[override]
        return self.materialized().model_copy(deep=True)


class RowStore(Protocol):
    """What a transaction needs of its store (``PgStore``), named here so
    that this module does not import the store that imports it."""

    db: Database
    defaults: SubscriptionsConfig
    clock: Callable[[], datetime]

    def decode(self, section: str, key: str, text: str) -> Any: ...

    def history_prune_due(self) -> bool: ...

    def note_deliveries(self, tx: Transaction, count: int) -> None: ...


class Transaction:
    """One transaction's reads, locks and writes."""

    def __init__(self, store: RowStore, conn: psycopg.Connection[Any], now: datetime | None,
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

    def _state(self) -> LazyState:
        sections = {name: Section(name, self._fetch, self._fetch_all) for name in TABLES}
        state = LazyState.model_construct(**sections)  # type: ignore[arg-type]
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
        sections: dict[str, Section] = {n: self.state.__dict__[n] for n in TABLES}
        if section in ISSUE_SECTIONS:
            # An issue's rows come together, after its lock: one round trip
            # for all four, and none of them can change under us.
            self._lock(ISSUE_ROWS, key)
            rows = self.run(ISSUE_ROWS_SQL, {"k": key}).fetchall()
            ROWS_READ.add(len(rows))
            found = {name: text for name, text in rows}
            for name in ISSUE_SECTIONS:
                text = found.get(name)
                value = MISSING if text is None else self.store.decode(name, key, text)
                sections[name]._loaded(key, value)
            return
        table, column = TABLES[section]
        self._lock(OTHER_ROWS, f"{section}:{key}")
        row = self.run(f"SELECT at FROM {table} WHERE {column} = %s", (key,)).fetchone()
        ROWS_READ.add(row is not None)
        sections[section]._loaded(key, MISSING if row is None else as_utc(row[0]))

    def _fetch_all(self, section: str) -> dict[str, Any]:
        table, column = TABLES[section]
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

    def _load_ledger(self, state: LazyState) -> None:
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
                ledger_texts(fresh),
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
        for name, (table, column) in TABLES.items():
            section: Section = state.__dict__[name]
            keep, gone = section.changes()
            if gone:
                self.run(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (gone,))
            if not keep:
                continue
            if name in ISSUE_SECTIONS:
                adapter = ADAPTERS[name]
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
            texts = ledger_texts(state)
            if texts != self.ledger_before:
                self.run(
                    "UPDATE ma_ledger SET subscriptions = %s, api_budget = %s WHERE id = 1",
                    texts,
                )


def prune_statements(now: datetime) -> list[tuple[str, tuple[Any, ...]]]:
    """By age, then the oldest beyond DELIVERY_LIMIT (among equal times, the
    first recorded), as State.prune_deliveries."""
    return [
        ("DELETE FROM ma_deliveries WHERE at < %s", (as_utc(now) - DELIVERY_MEMORY,)),
        ("DELETE FROM ma_deliveries WHERE id IN (SELECT id FROM ma_deliveries "
         "ORDER BY at DESC, seq DESC OFFSET %s)", (DELIVERY_LIMIT,)),
    ]


def ledger_texts(state: State) -> tuple[str, str]:
    subs = _SUBSCRIPTIONS.dump_json(state.subscriptions).decode()
    return subs, state.api_budget.model_dump_json()
