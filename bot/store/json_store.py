"""The JSON store: a document (``state.json``) and its journal
(``state.json.journal``, bot/store/journal.py), under an exclusive file lock
for writers (bot/store/files.py).

A commit appends what it changed to the journal and fsyncs it; the document
is rewritten only when the journal has grown past a bound (compaction, by
temporary file and rename). A crash at any instant leaves every
acknowledged commit readable, and concurrent workers never lose each
other's updates. Every commit, a ``transaction`` or a batch of ``apply``
changes, goes through ``_save``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, TypeVar, cast

import model_assigner.bot.store.journal as journal
from model_assigner.bot.store.codec import _Codec
from model_assigner.bot.store.files import (
    append_at,
    file_lock,
    read_from,
    read_head,
    read_tail,
    write_atomically,
)
from model_assigner.bot.store.state import (
    STATE_VERSION,
    State,
    StoreError,
    apply_resets,
    initial_state,
    sync_with_config,
)
from model_assigner.core.config_subscriptions import SubscriptionsConfig

log = logging.getLogger("model_assigner.store")

# The journal is compacted into the document once it is larger than this,
# or than the document itself when that is larger: a compaction then
# rewrites at most as many bytes as the commits it absorbs appended.
JOURNAL_BYTES = 1 << 20

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


class _Committed(NamedTuple):
    """This process's parsed copy of the store, and where it was read from:
    the document's file (identity and digest) and how far into the journal
    it has been replayed. Shared between threads: never changed."""

    document: tuple[int, int, int] | None  # (inode, size, mtime): None, no file yet
    digest: str | None  # the document's sha256 (None: no file)
    head: bytes | None  # the journal's first line as read (None: no journal)
    extends: bool  # whether that journal extends this document
    offset: int  # the journal's bytes replayed (the next record goes there)
    seen: int  # the journal's size when read (an ignored incomplete record included)
    state: State


class Store:
    """The JSON store: the document, its journal, and this process's parsed
    copy of both.

    Reading: each process keeps the state it last read or wrote. While the
    document is the same file and the journal has the same header and size
    (a stat and a 512-byte read), that copy stands; when the journal only
    grew, the records another worker appended are replayed onto it; when
    the document was replaced (a compaction, a restore), it is parsed again
    (incrementally: bot/store/codec.py).

    Writing (``_save``, the one commit path, under the exclusive lock): the
    commit's changes are appended to the journal as one record and fsynced;
    past ``journal_bytes`` (at least the document's own size), the document
    is rewritten whole and the journal started again: a delivery's cost is
    what it changed, plus its share of compactions."""

    def __init__(
        self,
        path: Path,
        defaults: SubscriptionsConfig,
        clock: Callable[[], datetime] | None = None,
        journal_bytes: int | None = JOURNAL_BYTES,
    ) -> None:
        self.kind = "file"
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal")
        self.defaults = defaults
        # Only to date the first resets of a store seeded from config (the
        # config names a reset day, not a date); everything else is dated by
        # the ``now`` its caller passes.
        self.clock = clock or (lambda: datetime.now(UTC))
        # None: no journal, every commit rewrites the document (the layout
        # before the journal: the benchmark's baseline, the codec's tests).
        self.journal_bytes = journal_bytes
        self.lock_path = path.with_name(path.name + ".lock")
        self._cache: _Committed | None = None
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
        # Bytes this process wrote to the store's files (bench/, tests).
        self.bytes_written = 0

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

    # -- reading ---------------------------------------------------------

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            self._vanished()
            return None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read ({exc})") from None
        return found.st_ino, found.st_size, found.st_mtime_ns

    def _vanished(self) -> None:
        if self._must_exist:
            # Deleted (or its folder) while the server runs: starting a
            # fresh store from config would forget every reservation.
            raise StoreError(
                f"{self.path}: vanished while the server was running; restore it "
                "(or restart the server to begin a new store)"
            )

    def _head(self) -> tuple[bytes | None, int]:
        try:
            return read_head(self.journal_path)
        except OSError as exc:
            raise StoreError(f"{self.journal_path}: cannot read ({exc})") from None

    def _current(self, locked: bool) -> _Committed:
        """The committed state. Without the lock (``view``), a compaction may
        replace both files between two reads: a journal that does not extend
        the document read is then read again under the shared lock."""
        with self._cache_lock:
            cache = self._cache
        identity = self._identity()
        head, size = self._head()
        if cache is not None and cache.document == identity and cache.head == head:
            if size == cache.seen or not cache.extends:
                return cache
            return self._catch_up(cache, size)
        with self._parse_lock:  # threads that missed together parse once
            with self._cache_lock:
                cache = self._cache
            if cache is not None and cache.document == self._identity() and (
                cache.head, cache.seen
            ) == self._head():
                return cache
            loaded = self._load()
            retry = not loaded.extends and bool(loaded.head) and not locked
            if not retry:
                self._put_cached(loaded)
                return loaded
        # Never wait for the file lock while holding the parse lock: a writer
        # holds the file lock and may be waiting for the parse lock.
        with self._locked(exclusive=False):
            return self._current(locked=True)

    def _load(self) -> _Committed:
        """The document and its journal, read whole."""
        try:
            with self.path.open("rb") as handle:
                raw = handle.read()
                found = os.fstat(handle.fileno())
        except FileNotFoundError:
            self._vanished()
            raw = None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read ({exc})") from None
        if raw is None:
            state = initial_state(self.defaults, self.clock())
            identity, digest = None, None
        else:
            state = self._parse(raw)
            identity = (found.st_ino, found.st_size, found.st_mtime_ns)
            digest = journal.document_digest(raw)
        try:
            data = read_from(self.journal_path, 0)
        except OSError as exc:
            raise StoreError(f"{self.journal_path}: cannot read ({exc})") from None
        if data is None:
            return _Committed(identity, digest, None, False, 0, 0, state)
        lines, _ = journal.split_records(data)
        head = data[: data.find(b"\n") + 1] if lines else b""
        header = journal.parse_header(head) if head else None
        if header is None or raw is None or header.document != digest:
            # Behind the document (it was rewritten or replaced): nothing to replay.
            return _Committed(identity, digest, head, False, len(head), len(data), state)
        done = journal.replay_all(state, lines[1:], str(self.journal_path))
        if done:  # limits from this process's config, as for the document
            sync_with_config(state, self.defaults, self.clock())
        offset = len(head) + sum(len(line) + 1 for line in lines[1 : 1 + done])
        return _Committed(identity, digest, head, True, offset, len(data), state)

    def _catch_up(self, cache: _Committed, size: int) -> _Committed:
        """Replay what other workers appended since ``cache`` was read."""
        with self._parse_lock:
            with self._cache_lock:
                if self._cache is not None and self._cache.head == cache.head and (
                    self._cache.document == cache.document and self._cache.seen == size
                ):
                    return self._cache
            try:
                found = read_tail(self.journal_path, cache.offset)
            except OSError as exc:
                raise StoreError(f"{self.journal_path}: cannot read ({exc})") from None
            if found is None or found[0] != cache.head:  # replaced meanwhile: read it all
                loaded = self._load()
                self._put_cached(loaded)
                return loaded
            data = found[1]
            lines, _ = journal.split_records(data)
            state = _writable_copy(cache.state)
            done = journal.replay_all(state, lines, str(self.journal_path))
            if done:
                sync_with_config(state, self.defaults, self.clock())
            offset = cache.offset + sum(len(line) + 1 for line in lines[:done])
            caught = cache._replace(offset=offset, seen=cache.offset + len(data), state=state)
            self._put_cached(caught)
            return caught

    def _parse(self, raw: bytes) -> State:
        try:
            state = self._codec.loads(raw, str(self.path))
        except UnicodeDecodeError as exc:
            raise StoreError(f"{self.path}: cannot read ({exc})") from None
        sync_with_config(state, self.defaults, self.clock())
        return state

    def _put_cached(self, committed: _Committed) -> None:
        with self._cache_lock:
            self._cache = committed

    def read(self) -> State:
        """A consistent snapshot, for reports; changes to it are not saved."""
        with self._locked(exclusive=False):
            return _writable_copy(self._current(locked=True).state)

    def view(self, look: Callable[[State], T]) -> T:
        """``look(state)`` on the current state, without a lock (see
        _current). Usually answered from this process's parsed copy.
        ``look`` must neither change the state nor keep a reference to it."""
        return look(self._current(locked=False).state)

    def seen_delivery(self, delivery_id: str) -> bool:
        """Whether a delivery id is recorded as handled."""
        return self.view(lambda state: delivery_id in state.deliveries)

    def export_text(self) -> str:
        """The store as one document (the journal's records included): what
        ``state backup`` writes."""
        with self._locked(exclusive=False):
            return self._codec.dumps(self._current(locked=True).state).decode("utf-8")

    # -- writing ---------------------------------------------------------

    @contextmanager
    def transaction(self, now: datetime) -> Iterator[State]:
        """Load, apply resets due at ``now``, let the caller change the state,
        save; all under the exclusive lock. An exception inside leaves the
        files as they were."""
        with self._locked():
            committed = self._current(locked=True)
            state = _writable_copy(committed.state)
            apply_resets(state, now)
            state.prune_deliveries(now)
            yield state
            state.prune_deliveries(now)
            # A copy: the caller still holds ``state`` and may change it.
            self._save(committed, _writable_copy(state), now)

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
                committed = self._current(locked=True)
                state = _writable_copy(committed.state)
                pending = list(batch)
                while True:
                    failed = _run_changes(state, pending)
                    if failed is None:
                        break
                    pending.remove(failed)  # its error is kept; redo the others
                    state = _writable_copy(committed.state)
                if pending:
                    self._save(committed, state, max(item.now for item in pending))
        except BaseException as exc:
            self._take_queue(batch)  # failed before taking them: they fail too
            for item in batch:
                if item.error is None:
                    item.error = exc
                    item.result = None
            if not isinstance(exc, Exception):
                raise

    def _save(self, committed: _Committed, state: State, now: datetime) -> None:
        """The one commit path, under the exclusive lock: ``state`` (no longer
        changed by anyone) becomes the store and this process's copy.
        Deliveries are pruned again after the changes, so the store never
        holds more than DELIVERY_LIMIT ids."""
        state.prune_deliveries(now)
        if (
            committed.document is None  # the first document
            or committed.state.read_version != STATE_VERSION  # one of an older format
            or self.journal_bytes is None
        ):
            if self.journal_bytes is None and journal.changes(committed.state, state) is None:
                return
            self._rewrite(state)
            return
        record = journal.changes(committed.state, state)
        if record is None:
            return
        journal.settle_order(committed.state, state)
        try:
            if committed.extends:
                seen = append_at(self.journal_path, committed.offset, record + b"\n")
                self.bytes_written += len(record) + 1
                head = committed.head
            else:  # no journal for this document yet: start one, atomically
                assert committed.digest is not None
                head = journal.header_line_for(committed.digest)
                write_atomically(self.journal_path, head + record + b"\n")
                self.bytes_written += len(head) + len(record) + 1
                seen = len(head) + len(record) + 1
        except OSError as exc:
            raise StoreError(
                f"{self.journal_path}: cannot write ({exc.strerror or exc}); "
                "the previous document is intact"
            ) from None
        self._put_cached(committed._replace(head=head, extends=True, offset=seen, seen=seen,
                                            state=state))
        if seen > max(self.journal_bytes, committed.document[1]):
            try:
                self._rewrite(state)
            except StoreError as exc:
                # The commit is durable in the journal; the next one tries again.
                log.warning("%s (the journal stays until the next commit compacts it)", exc)

    def _rewrite(self, state: State) -> None:
        """Write ``state`` as the document and start its journal afresh
        (compaction). A crash between the two renames leaves the new document
        and a journal that does not extend it: ignored, as it should be (the
        document holds its records)."""
        state.read_version = STATE_VERSION
        document = self._codec.dumps(state)
        try:
            write_atomically(self.path, document)
            found = os.stat(self.path)
        except OSError as exc:
            self._drop_cached()
            raise StoreError(
                f"{self.path}: cannot write ({exc.strerror or exc}); "
                "the previous document is intact"
            ) from None
        self.bytes_written += len(document)
        identity = (found.st_ino, found.st_size, found.st_mtime_ns)
        digest = journal.document_digest(document)
        head = journal.header_line_for(digest)
        try:
            write_atomically(self.journal_path, head)
        except OSError as exc:
            # The document stands (the old journal does not extend it, so it
            # is ignored); the next commit starts the journal.
            log.warning("%s: cannot start the journal (%s)", self.journal_path,
                        exc.strerror or exc)
            self._drop_cached()
            return
        self.bytes_written += len(head)
        self._put_cached(_Committed(identity, digest, head, True, len(head), len(head), state))

    def _drop_cached(self) -> None:
        with self._cache_lock:
            self._cache = None

    def replace(self, state: State) -> None:
        """Make ``state`` the whole store (``state restore``, ``state
        migrate --to`` a new file): the document rewritten, the journal
        started afresh."""
        with self._locked():
            self._rewrite(_writable_copy(state))

    def exists(self) -> bool:
        """Whether the store has been written yet (the first delivery writes it)."""
        return self.path.exists()

    def check(self) -> None:
        """Raise StoreError when the files on disk are not a valid store
        (read whole, not from this process's copy)."""
        with self._locked(exclusive=False):
            self._load()

    def ensure_exists(self) -> None:
        """Write the initial document when there is none yet (start-up), and
        from then on treat a missing file as an error, not a first run."""
        with self._locked():
            committed = self._current(locked=True)
            if committed.document is None or committed.state.read_version != STATE_VERSION:
                self._rewrite(_writable_copy(committed.state))  # new, or upgraded
        self._must_exist = True

    def check_file(self) -> None:
        """For /healthz: the store is there, a readable file, and valid (the
        parsed copy answers when the bytes are unchanged)."""
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path}: not a file")
        for path in (self.path, self.journal_path):
            if path.exists() and not os.access(path, os.R_OK | os.W_OK):
                raise StoreError(f"{path}: not readable and writable")
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




def load_files(path: Path) -> State:
    """The store at ``path`` as its files hold it (the document, then its
    journal's records), counters as stored: not synced with any config.
    For tools and tests that look at the files, not at a running store."""
    codec = _Codec()
    raw = path.read_bytes()
    state = codec.loads(raw, str(path))
    journal_path = path.with_name(path.name + ".journal")
    data = read_from(journal_path, 0)
    if data:
        lines, _ = journal.split_records(data)
        header = journal.parse_header(lines[0] + b"\n") if lines else None
        if header is not None and header.document == journal.document_digest(raw):
            journal.replay_all(state, lines[1:], str(journal_path))
    return state
