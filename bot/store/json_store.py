"""The JSON store: one document, rewritten whole under an exclusive file
lock (bot/store/files.py), and this process's parsed copy of it.

A crash at any instant leaves the old document or the new one, never a torn
one, and concurrent workers never lose each other's updates. Every commit,
a ``transaction`` or a batch of ``apply`` changes, goes through ``_save``.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, cast

from model_assigner.bot.store.codec import _Codec
from model_assigner.bot.store.files import file_lock, write_atomically
from model_assigner.bot.store.state import (
    State,
    StoreError,
    apply_resets,
    initial_state,
    sync_with_config,
)
from model_assigner.core.config_subscriptions import SubscriptionsConfig

T = TypeVar("T")


@dataclass(eq=False)
class _Change:
    """One ``Store.apply`` call, waiting for its batch to be written."""

    now: datetime
    change: Callable[[State], object]
    result: object = None
    error: BaseException | None = None
    done: bool = False


def _writable_copy(state: State) -> State:
    """A copy a transaction may change without touching ``state``: new
    containers, and new copies of the few records changed in place (the
    quota counters). Reservations, issue records, dependency lists and
    delivery times are only ever replaced, so they are shared: the copy costs
    no more when other issues store more."""
    return state.model_copy(
        update={
            "subscriptions": {k: v.model_copy() for k, v in state.subscriptions.items()},
            "api_budget": state.api_budget.model_copy(),
            "reservations": dict(state.reservations),
            "records": dict(state.records),
            "dependencies": dict(state.dependencies),
            "deliveries": dict(state.deliveries),
            "usage": dict(state.usage),
            "reconciled": dict(state.reconciled),
            "seen": dict(state.seen),
            "deferred": dict(state.deferred),
        }
    )


def _run_changes(state: State, pending: list[_Change]) -> _Change | None:
    """Apply each change in turn (resets due at its time first); the first one
    that raises is returned, with its error, and the state is then spoilt."""
    for item in pending:
        apply_resets(state, item.now)
        try:
            item.result = item.change(state)
        except Exception as exc:
            item.error, item.result = exc, None
            return item
    return None


class Store:
    """The JSON store file, and this process's parsed copy of it.

    Parsing and validating the document is what a transaction costs most, and
    it grows with the number of issues held. Each process keeps the document
    it last read or wrote, with the exact bytes it was parsed from: while the
    file still holds those bytes (compared, not guessed from a timestamp),
    the parsed copy stands for it. That copy is never changed: a transaction
    changes a copy of its containers (cheap: the entries themselves are
    replaced, never changed in place), which becomes the cached copy once it
    is written; an exception inside a transaction or a failed write simply
    drops it."""

    def __init__(
        self,
        path: Path,
        defaults: SubscriptionsConfig,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.kind = "file"
        self.path = path
        self.defaults = defaults
        # Only to date the first resets of a store seeded from config (the
        # config names a reset day, not a date); everything else is dated by
        # the ``now`` its caller passes.
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock_path = path.with_name(path.name + ".lock")
        self._cache: tuple[bytes, State] | None = None
        self._cache_lock = threading.Lock()
        self._parse_lock = threading.Lock()  # one parse at a time per process
        self._codec = _Codec()
        # Group commit (``apply``): changes waiting for the leader's next write.
        self._batch_cond = threading.Condition()
        self._queue: list[_Change] = []
        self._leading = False
        # Set once the file is known to exist (ensure_exists, at start-up):
        # from then on a missing file has vanished under the server.
        self._must_exist = False

    @contextmanager
    def _locked(self, exclusive: bool = True) -> Iterator[None]:
        """The store's lock; failing to take it (its folder is not a folder,
        or not writable) is a StoreError like any other store failure."""
        with ExitStack() as stack:
            try:
                stack.enter_context(file_lock(self.lock_path, exclusive=exclusive))
            except OSError as exc:
                raise StoreError(
                    f"{self.path}: cannot lock {self.lock_path} ({exc.strerror or exc})"
                ) from None
            yield

    def _raw(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            if self._must_exist:
                # Deleted (or its folder) while the server runs: starting a
                # fresh store from config would forget every reservation.
                raise StoreError(
                    f"{self.path}: vanished while the server was running; restore it "
                    "(or restart the server to begin a new store)"
                ) from None
            return None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read ({exc})") from None

    def _parse(self, raw: bytes | None) -> State:
        if raw is None:
            return initial_state(self.defaults, self.clock())
        try:
            state = self._codec.loads(raw, str(self.path))
        except UnicodeDecodeError as exc:
            raise StoreError(f"{self.path}: cannot read ({exc})") from None
        sync_with_config(state, self.defaults, self.clock())
        return state

    def _load(self) -> tuple[State, bytes | None]:
        raw = self._raw()
        return self._parse(raw), raw

    def _committed(self, raw: bytes | None) -> State:
        """The document ``raw`` holds, parsed once per process: treat it as
        read-only (it is shared with other threads)."""
        if raw is None:
            return initial_state(self.defaults, self.clock())
        with self._cache_lock:
            cache = self._cache
        if cache is not None and cache[0] == raw:
            return cache[1]
        with self._parse_lock:  # threads that missed together parse once
            with self._cache_lock:
                cache = self._cache
            if cache is not None and cache[0] == raw:
                return cache[1]
            state = self._parse(raw)
            self._put_cached(raw, state)
            return state

    def _put_cached(self, raw: bytes, state: State) -> None:
        with self._cache_lock:
            self._cache = (raw, state)

    def _drop_cached(self) -> None:
        with self._cache_lock:
            self._cache = None

    def read(self) -> State:
        """A consistent snapshot, for reports; changes to it are not saved."""
        with self._locked(exclusive=False):
            return self._load()[0]

    def view(self, look: Callable[[State], T]) -> T:
        """``look(state)`` on the current document, without a lock: the file
        is only ever replaced whole (rename), so any read sees a whole
        document. Usually answered from this process's parsed copy. ``look``
        must neither change the state nor keep a reference to it."""
        return look(self._committed(self._raw()))

    def seen_delivery(self, delivery_id: str) -> bool:
        """Whether a delivery id is recorded as handled."""
        return self.view(lambda state: delivery_id in state.deliveries)

    @contextmanager
    def transaction(self, now: datetime) -> Iterator[State]:
        """Load, apply resets due at ``now``, let the caller change the state,
        save atomically; all under the exclusive lock. An exception inside
        leaves the file as it was."""
        with self._locked():
            before = self._raw()
            state = _writable_copy(self._committed(before))
            apply_resets(state, now)
            state.prune_deliveries(now)
            yield state
            state.prune_deliveries(now)
            # A copy: the caller still holds ``state`` and may change it.
            self._save(before, _writable_copy(state), now)

    def apply(self, now: datetime, change: Callable[[State], T]) -> T:
        """``with transaction(now) as state: return change(state)``, with the
        changes of this process's concurrent threads committed together: one
        lock, one load, one write (and fsync) for all of them, in the order
        they came. Under load, the store lock is what deliveries queue for;
        a batch makes each of its turns count several times over.

        ``change`` must only change the state and return: it may run more
        than once (when another change of its batch raises, the batch is
        redone on a fresh copy without that one). An exception from
        ``change`` is raised here and nothing of it is saved; when the write
        fails, every change of the batch gets the StoreError."""
        item = _Change(now, change)
        with self._batch_cond:
            self._queue.append(item)
            while self._leading and not item.done:
                self._batch_cond.wait()
            lead = not item.done
            if lead:
                self._leading = True
        if lead:
            batch: list[_Change] = []
            try:
                self._commit(batch)
            finally:
                with self._batch_cond:
                    for other in batch:
                        other.done = True
                    self._leading = False
                    self._batch_cond.notify_all()
        if item.error is not None:
            raise item.error
        return cast(T, item.result)

    def _take_queue(self, batch: list[_Change]) -> None:
        with self._batch_cond:
            batch.extend(self._queue)
            self._queue = []

    def _commit(self, batch: list[_Change]) -> None:
        """Lead one batch: the changes queued by the time the store lock is
        held (the wait for it is when most of them arrive) go in ``batch``."""
        try:
            with self._locked():
                self._take_queue(batch)
                before = self._raw()
                committed = self._committed(before)
                state = _writable_copy(committed)
                pending = list(batch)
                while True:
                    failed = _run_changes(state, pending)
                    if failed is None:
                        break
                    pending.remove(failed)  # its error is kept; redo the others
                    state = _writable_copy(committed)
                if pending:
                    self._save(before, state, max(item.now for item in pending))
        except BaseException as exc:
            self._take_queue(batch)  # failed before taking them: they fail too
            for item in batch:
                if item.error is None:
                    item.error = exc
                    item.result = None
            if not isinstance(exc, Exception):
                raise

    def _save(self, before: bytes | None, state: State, now: datetime) -> None:
        """The one commit path, under the exclusive lock: ``state`` (no longer
        changed by anyone) becomes the document and this process's copy.
        Deliveries are pruned again after the changes, so the saved document
        never holds more than DELIVERY_LIMIT ids."""
        state.prune_deliveries(now)
        after = self._codec.dumps(state)
        if after != before:
            try:
                write_atomically(self.path, after)
            except OSError as exc:
                raise StoreError(
                    f"{self.path}: cannot write ({exc.strerror or exc}); "
                    "the previous document is intact"
                ) from None
        self._put_cached(after, state)

    def exists(self) -> bool:
        """Whether the store has been written yet (the first delivery writes it)."""
        return self.path.exists()

    def check(self) -> None:
        """Raise StoreError when the file on disk is not a valid store."""
        with self._locked(exclusive=False):
            self._load()

    def ensure_exists(self) -> None:
        """Write the initial document when there is none yet (start-up), and
        from then on treat a missing file as an error, not a first run."""
        with self._locked():
            if self._raw() is None:
                state = initial_state(self.defaults, self.clock())
                try:
                    write_atomically(self.path, self._codec.dumps(state))
                except OSError as exc:
                    raise StoreError(
                        f"{self.path}: cannot write ({exc.strerror or exc})"
                    ) from None
        self._must_exist = True

    def check_file(self) -> None:
        """For /healthz: the store is there, a readable file, and valid (the
        parsed copy answers when the bytes are unchanged)."""
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path}: not a file")
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise StoreError(f"{self.path}: not readable and writable")
        self.view(lambda state: None)

    def remove_stale_temporaries(self, older_than: float = 60.0) -> int:
        """Temporary files a crashed writer left behind (never a live one: a
        write takes milliseconds). Called at start-up."""
        removed = 0
        cutoff = time.time() - older_than
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
        return removed

    def ensure_writable(self) -> None:
        """Fail at start-up, not on the first delivery, when the folder is not
        writable; and tell /healthz when the disk is full. A write as the store
        does it (a temporary file, some bytes, fsync), then removed."""
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe.")
            try:
                os.write(fd, b"\0" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
                with suppress(OSError):
                    os.unlink(probe)
        except OSError as exc:
            raise StoreError(f"{folder}: not writable ({exc.strerror or exc})") from None


