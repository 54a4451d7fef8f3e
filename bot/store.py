"""The JSON quota store: subscriptions, API spend, reservations, deliveries.

One small JSON document, rewritten whole under an exclusive file lock:
temporary file, fsync, rename, fsync of the folder. A crash at any instant
leaves the old document or the new one, never a torn one, and concurrent
workers never lose each other's updates.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import operator
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Protocol, TypeVar, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import to_json

from model_assigner.bot.locks import file_lock
from model_assigner.core.config import SubscriptionsConfig
from model_assigner.core.loader import describe_validation_error
from model_assigner.core.quota import Ledger, release_charge, roll_over, update_quota_tracking
from model_assigner.core.types import ApiBudget, Observation, Payment, Subscription, as_utc
from model_assigner.core.usage import EstimateClass, EstimateSnapshot, IssueUsage

STATE_VERSION = 1
# GitHub lets a delivery be redelivered for three days; we remember ids a little
# longer, and never more than this many, so the document stays small.
DELIVERY_MEMORY = timedelta(days=4)
DELIVERY_LIMIT = 5000
# Usage records (bot/usage_store.py): past USAGE_HIGH, the oldest closed ones
# go until USAGE_KEEP are left (an estimate kept for a late report first, then
# finished issues with reports, the calibration's samples).
USAGE_HIGH = 6000
USAGE_KEEP = 5000
UNKNOWN_CLASS = "unknown"
# What one delivery id may be: GitHub sends a UUID; ids are not signed, so
# anything longer or stranger is refused before it can reach the store.
DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
# What one issue may keep of the issues it names as dependencies: a body can
# name ten thousand, and the store is shared by every repository.
MAX_DEPENDENCIES = 20
# An issue key: owner/name (100 characters each at most) '#' number.
MAX_ISSUE_KEY_CHARS = 220
# The online strategy learns from this period and the last: two months and a bit.
HISTORY_MEMORY = timedelta(days=64)

T = TypeVar("T")
_NEVER = datetime.max.replace(tzinfo=UTC)


def _bounded_references(value: object) -> object:
    """At most MAX_DEPENDENCIES issue keys, each of a sane length: a store
    written before the bound was set is read, its overlong lists cut (they are
    worked out again from the issue's body on its next delivery)."""
    if isinstance(value, list):
        return [
            item for item in value if not isinstance(item, str) or len(item) <= MAX_ISSUE_KEY_CHARS
        ][:MAX_DEPENDENCIES]
    return value


# One issue's dependencies, bounded. Replaced, never changed in place: the
# store's parsed copy is shared between threads (see _writable_copy).
Dependencies = Annotated[list[str], BeforeValidator(_bounded_references)]


class StoreError(RuntimeError):
    """The store cannot be read or written; ``str()`` names the file and problem."""


class Reservation(BaseModel):
    """The quota one issue holds: replaced on re-assignment, released on
    deferral, 'not planned' or deletion, kept as usage on completion.
    Frozen: replaced, never changed in place (the store's parsed copy is
    shared between threads)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(max_length=200)
    payment: Payment
    charged_at: datetime
    override_by: str | None = Field(default=None, max_length=200)
    # The estimate's class, for usage reports and calibration (absent on
    # reservations made before them).
    estimated: EstimateClass | None = None

    @property
    def tokens(self) -> int:
        return self.payment.tokens

    def snapshot(self) -> EstimateSnapshot:
        """The estimate this reservation charged, as a usage report needs it."""
        known = self.estimated
        return EstimateSnapshot(
            model=self.model,
            payment=self.payment,
            charged_at=self.charged_at,
            complexity=known.complexity if known else UNKNOWN_CLASS,
            domain=known.domain if known else UNKNOWN_CLASS,
            base_tokens=known.base_tokens if known else self.payment.tokens,
            calibration=known.calibration if known else 1.0,
        )

    @property
    def cost_usd(self) -> float:
        return self.payment.cost_usd


def issue_time(value: object) -> datetime | None:
    """GitHub's ``updated_at`` (``2026-11-25T21:12:10Z``) as an aware time;
    None when absent or not a time."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


class CommentRecord(BaseModel):
    """What the bot knows of an issue on GitHub: where its comment is and a
    digest of its text, so an unchanged explanation costs no GitHub call at
    all (``id`` None: no comment known, find it by its marker). Frozen, like
    Reservation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int | None = None
    digest: str = ""
    # The model label the bot itself put on the issue (None when a person's
    # override label stands). Kept across a close, so that on reopen the
    # bot's own label is not mistaken for a person's choice.
    label: str | None = None
    # The issue's `updated_at` when it was last decided, closed or deleted: a
    # delivery whose payload is newer is decided from its payload, without
    # reading the issue; an older or equal one reads the issue from GitHub.
    issue_updated_at: str | None = None


class State(BaseModel):
    # Finite numbers only: what cannot be written back as JSON numbers
    # (1e400 becomes null) must not be read either.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    version: int = STATE_VERSION
    subscriptions: dict[str, Subscription] = Field(default_factory=dict)
    api_budget: ApiBudget
    reservations: dict[str, Reservation] = Field(default_factory=dict)
    comments: dict[str, CommentRecord] = Field(default_factory=dict)
    dependencies: dict[str, Dependencies] = Field(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        # A newer model-assigner's store may mean what this one cannot read.
        if value != STATE_VERSION:
            raise ValueError(
                f"store format {value}; this model-assigner reads format {STATE_VERSION}"
            )
        return value
    deliveries: dict[str, datetime] = Field(default_factory=dict)
    # Reported usage per issue, and the provider exports applied by
    # `usage reconcile --apply` (bot/usage_store.py).
    usage: dict[str, IssueUsage] = Field(default_factory=dict)
    reconciled: dict[str, datetime] = Field(default_factory=dict)
    # The online strategy's history (core/online.py): each issue decided this
    # period or the last, first seen when; and the open issues it deferred,
    # to be decided again as prices fall.
    seen: dict[str, Observation] = Field(default_factory=dict)
    deferred: dict[str, Observation] = Field(default_factory=dict)

    def ledger(self) -> Ledger:
        """A view whose charges change this state's counters."""
        return Ledger(list(self.subscriptions.values()), self.api_budget)

    def reserve(self, issue: str, reservation: Reservation) -> None:
        """Replace the issue's reservation: release the old charge, take the new."""
        self.release(issue)
        update_quota_tracking(self.ledger(), reservation.payment)
        self.reservations[issue] = reservation

    def release(self, issue: str) -> Reservation | None:
        old = self.reservations.pop(issue, None)
        if old is not None:
            release_charge(self.ledger(), old.payment, old.charged_at)
        return old

    def settle(self, issue: str) -> Reservation | None:
        """The work was done: the charge stays as usage, the record goes.
        Its reported usage, if any comes later, replaces it then."""
        held = self.reservations.pop(issue, None)
        if held is not None and (held.tokens or held.cost_usd):
            # Kept with its estimate, so that a report coming after the close
            # replaces the estimate then.
            record = self.usage.get(issue) or IssueUsage(estimate=held.snapshot())
            self.usage[issue] = record.model_copy(update={"estimate_held": True})
            if len(self.usage) > USAGE_HIGH:
                self.trim_usage(USAGE_KEEP)
        return held

    def trim_usage(self, keep: int) -> None:
        """Drop the oldest closed issues' usage records until ``keep`` are
        left: first those holding only an estimate, then finished issues
        with reports. Open issues' records and reports waiting for a
        decision stay (their number is bounded where they are recorded)."""
        def age(item: tuple[str, IssueUsage]) -> datetime:
            record = item[1]
            times = [run.reported_at for run in record.runs.values()]
            if record.estimate is not None:
                times.append(record.estimate.charged_at)
            return max(times, default=_NEVER)

        closed = [
            item for item in self.usage.items()
            if item[0] not in self.reservations and item[1].estimate is not None
        ]
        idle = sorted((i for i in closed if not i[1].charged_runs), key=age)
        finished = sorted((i for i in closed if i[1].charged_runs), key=age)
        excess = len(self.usage) - keep
        for key, _ in [*idle, *finished][: max(0, excess)]:
            del self.usage[key]

    def forget_issue(
        self, issue: str, deleted: bool = False, updated_at: str | None = None
    ) -> None:
        """A closed issue no longer blocks anything; a deleted one has no
        comment left to find again. ``updated_at``, the issue's time in the
        closing delivery, is kept: a late delivery of an older event is then
        checked against GitHub instead of being decided from its payload."""
        self.dependencies.pop(issue, None)
        self.deferred.pop(issue, None)
        record = None if deleted else self.comments.get(issue)
        if issue_time(updated_at) is None:
            if deleted:
                self.comments.pop(issue, None)
            return
        if record is None:
            self.comments[issue] = CommentRecord(issue_updated_at=updated_at)
        else:
            known = issue_time(record.issue_updated_at)
            if known is None or known < (issue_time(updated_at) or known):
                self.comments[issue] = record.model_copy(update={"issue_updated_at": updated_at})

    def observe(self, issue: str, seen: Observation, deferred: bool) -> None:
        """Record a decision in the online strategy's history: the issue keeps
        the time it was first seen; a deferred one waits to be decided again.
        Entries from before the last period are dropped (oldest first)."""
        first = self.seen.pop(issue, None)
        if first is not None:
            seen = seen.model_copy(update={"seen_at": first.seen_at})
        self.seen[issue] = seen
        if deferred:
            self.deferred[issue] = seen
        else:
            self.deferred.pop(issue, None)
        self.forget_history_before(seen.seen_at - HISTORY_MEMORY)

    def forget_history_before(self, cutoff: datetime) -> None:
        """Drop the history's entries seen before ``cutoff``, oldest first.
        The database's state overrides it: a delete now and then, not a
        read of the whole history per decision."""
        while self.seen:
            oldest = next(iter(self.seen))
            if self.seen[oldest].seen_at >= cutoff:
                break
            del self.seen[oldest]

    def dependents_of(self, issue: str) -> list[str]:
        """The issues whose stored dependencies name ``issue`` (each list is
        bounded). The database's state asks its index for just those rows."""
        return [other for other, deps in self.dependencies.items()
                if other != issue and issue in deps]

    def reservations_of(self, repo: str) -> list[Reservation]:
        """The live reservations of one repository's issues (its share of the
        quota). The database's state reads just those rows."""
        prefix = f"{repo}#"
        return [held for key, held in self.reservations.items() if key.startswith(prefix)]

    def history_since(self, since: datetime, but: str) -> list[Observation]:
        """The online strategy's history seen at or after ``since``, but the
        issue ``but``: what a decision reads of it (core.online.forecast
        ignores anything older). The database's state reads just those rows."""
        since = as_utc(since)
        return [seen for key, seen in self.seen.items()
                if key != but and as_utc(seen.seen_at) >= since]

    def remember_delivery(self, delivery_id: str, now: datetime) -> None:
        self.deliveries[delivery_id] = as_utc(now)

    def prune_deliveries(self, now: datetime) -> None:
        """Forget ids older than DELIVERY_MEMORY, then the oldest beyond
        DELIVERY_LIMIT (among equal times, the first recorded). This runs on
        every commit, with thousands of ids: the passes over them are C's,
        and the usual case (the oldest are the first recorded) looks at the
        few that go."""
        cutoff = as_utc(now) - DELIVERY_MEMORY
        deliveries = self.deliveries
        try:
            if deliveries and min(deliveries.values()) < cutoff:
                older = functools.partial(operator.gt, cutoff)
                for key in list(itertools.compress(deliveries, map(older, deliveries.values()))):
                    del deliveries[key]
            excess = len(deliveries) - DELIVERY_LIMIT
            if excess > 0:
                head = list(itertools.islice(deliveries.items(), excess))
                rest = itertools.islice(deliveries.values(), excess, None)
                if max(moment for _, moment in head) <= min(rest, default=_NEVER):
                    going = head
                else:
                    going = heapq.nsmallest(excess, deliveries.items(), key=operator.itemgetter(1))
                for key, _ in going:
                    del deliveries[key]
        except TypeError:
            # Naive and aware times mixed (a naive time is read as UTC, like
            # everywhere else, but cannot be compared with an aware one).
            kept = {k: v for k, v in deliveries.items() if as_utc(v) >= cutoff}
            if len(kept) > DELIVERY_LIMIT:
                newest = sorted(kept.items(), key=lambda item: as_utc(item[1]))[-DELIVERY_LIMIT:]
                kept = dict(newest)
            self.deliveries = kept


def apply_resets(state: State, now: datetime) -> None:
    """The daily and monthly resets due at ``now``, never undone by a clock that
    is behind. Workers take their time before they queue for the store's
    lock, so a change timed 23:59:59.9 can be written after one timed
    00:00:00.1 that has already moved the day on: the engine's roll-over would
    then see another day, zero today's usage again and move the day back
    (and the next change would zero it once more). Time in the store only
    moves forward: the day already reached stands for a clock behind it, so
    each reset happens exactly once, whichever worker gets there first."""
    moment = as_utc(now)
    for sub in state.subscriptions.values():
        if sub.usage_day is not None and sub.usage_day > moment.date():
            moment = datetime.combine(sub.usage_day, dt_time.min, tzinfo=UTC)
    roll_over(state.ledger(), moment)


def initial_state(defaults: SubscriptionsConfig, now: datetime) -> State:
    """The state a store starts from at ``now``: the config's counters, and
    first resets derived from its reset days (or its pinned reset dates)."""
    ledger = defaults.ledger_at(now)
    return State(
        subscriptions={s.model_family: s for s in ledger.subscriptions},
        api_budget=ledger.budget,
    )


def sync_with_config(state: State, defaults: SubscriptionsConfig, now: datetime) -> None:
    """Limits come from config (an operator edits them there); counters and
    reset dates come from the store. A family new in config starts fresh."""
    synced: dict[str, Subscription] = {}
    for configured in defaults.subscriptions:
        stored = state.subscriptions.get(configured.model_family)
        if stored is None:
            synced[configured.model_family] = configured.at(now)
        else:
            synced[configured.model_family] = stored.model_copy(
                update={
                    "monthly_cost": configured.monthly_cost,
                    "token_limit_daily": configured.token_limit_daily,
                    "token_limit_monthly": configured.token_limit_monthly,
                }
            )
    state.subscriptions = synced
    state.api_budget.monthly_limit_usd = defaults.api_budget.monthly_limit_usd


def parse_state(text: str | bytes, source: str) -> State:
    """Parse and validate in one pass (pydantic's JSON parser); only when that
    fails is the text parsed again, to say where the JSON is broken."""
    try:
        return State.model_validate_json(text)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            try:
                json.loads(text)
            except json.JSONDecodeError as bad:
                raise StoreError(
                    f"{source}: not valid JSON (line {bad.lineno}, column {bad.colno}: {bad.msg})"
                ) from None
        raise StoreError(describe_validation_error(source, exc)) from None


# -- reading and writing the document incrementally ---------------------------
#
# The document grows with the issues held (a reservation, a comment record)
# and the deliveries remembered; a transaction changes a few entries of it.
# Parsing and validating all of it on every load, and dumping all of it on
# every write, made each delivery cost O(issues) of Python and pydantic work
# under the store lock. The codec below keeps, per process, the exact text of
# each entry of the three big sections next to its parsed value: a load
# parses only the entries whose text it has not seen (those another worker
# changed), a dump writes only the entries whose value it has not seen. The
# bytes are ``serialize(state)``'s (an entry read in the earlier layout,
# pydantic's indent=1 throughout, keeps its text until it changes), and a
# document laid out otherwise (reformatted by hand, say) is parsed whole.

# In the order State declares them (the document's order).
BIG_SECTIONS = (
    "reservations", "comments", "dependencies", "deliveries", "usage", "seen", "deferred"
)
_SECTION_TYPES: dict[str, Any] = {
    "reservations": dict[str, Reservation],
    "comments": dict[str, CommentRecord],
    "dependencies": dict[str, Dependencies],
    "deliveries": dict[str, datetime],
    "usage": dict[str, IssueUsage],
    "seen": dict[str, Observation],
    "deferred": dict[str, Observation],
}
_ENTRY_TYPES: dict[str, Any] = {
    "reservations": Reservation,
    "comments": CommentRecord,
    "dependencies": Dependencies,
    "deliveries": datetime,
    "usage": IssueUsage,
    "seen": Observation,
    "deferred": Observation,
}
_ENTRY_SEPARATOR = b',\n  "'  # an entry of a top-level section starts a line with 2 spaces
_SECTION_END = b"\n }"  # nothing inside an entry is indented less than 2 spaces


class _Layout(NamedTuple):
    small: bytes  # the document with the big sections emptied ({})
    # Per section, each entry in order: 'key": value', without the opening
    # quote (the separator ends with it), so that splitting copies nothing twice.
    chunks: dict[str, list[bytes]]


def _split_section(doc: bytes, section: str) -> tuple[bytes, list[bytes]] | None:
    """``doc`` with the top-level ``section`` emptied, and that section's
    entries (see _Layout); None when not laid out so."""
    head = b'\n "' + section.encode() + b'": {'
    start = doc.find(head)
    if start < 0 or doc.find(head, start + 1) >= 0:
        return None
    body_start = start + len(head)
    if doc[body_start : body_start + 1] == b"}":
        return doc, []
    if doc[body_start : body_start + 4] != b'\n  "':
        return None
    end = doc.find(_SECTION_END, body_start)
    if end < 0:
        return None
    chunks = doc[body_start + 4 : end].split(_ENTRY_SEPARATOR)
    return doc[:body_start] + b"}" + doc[end + len(_SECTION_END) :], chunks


def _split(raw: bytes) -> _Layout | None:
    """The big sections' entries, when ``raw`` is laid out as serialize()
    lays it out; None otherwise."""
    small = raw
    chunks: dict[str, list[bytes]] = {}
    for section in BIG_SECTIONS:
        found = _split_section(small, section)
        if found is None:
            return None
        small, chunks[section] = found
    return _Layout(small, chunks)


@functools.cache
def _adapters() -> tuple[dict[str, TypeAdapter[Any]], dict[str, TypeAdapter[Any]]]:
    """pydantic's validators for a section and serializers for one entry (made once)."""
    return (
        {name: TypeAdapter(kind) for name, kind in _SECTION_TYPES.items()},
        {name: TypeAdapter(kind) for name, kind in _ENTRY_TYPES.items()},
    )


class _Codec:
    """Per process: each big-section entry's text and parsed value, both ways
    (the values are immutable: frozen models, datetimes). The maps only grow
    by what changed, and are trimmed when they hold far more than the
    document does. The passes over all entries are map/filter/dict calls, so
    that their cost per entry is C's, not Python's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._adapters, self._entry_adapters = _adapters()
        # section -> entry text -> (key, value), for loading
        self._parsed: dict[str, dict[bytes, tuple[str, object]]] = {s: {} for s in BIG_SECTIONS}
        # section -> key -> the value last dumped or loaded, and its entry text
        self._value: dict[str, dict[str, object]] = {s: {} for s in BIG_SECTIONS}
        self._text: dict[str, dict[str, bytes]] = {s: {} for s in BIG_SECTIONS}

    def loads(self, raw: bytes, source: str) -> State:
        with self._lock:
            try:
                state = self._loads(raw)
            except ValueError:  # pydantic's ValidationError included
                state = None
            if state is None:  # not our layout, or invalid: the whole way, which says why
                state = parse_state(raw.decode("utf-8"), source)
                layout = _split(raw)
                if layout is not None:
                    self._remember_parsed(state, layout)
            return state

    def _loads(self, raw: bytes) -> State | None:
        layout = _split(raw)
        if layout is None:
            return None
        small = State.model_validate_json(layout.small)
        sections: dict[str, dict[str, object]] = {}
        for section in BIG_SECTIONS:
            chunks = layout.chunks[section]
            known = self._parsed[section]
            missing = list(itertools.filterfalse(known.__contains__, chunks))
            if missing:
                parsed = self._adapters[section].validate_json(
                    b'{"' + b',"'.join(missing) + b"}"
                )
                if len(parsed) != len(missing):
                    return None  # a key twice: the whole way
                self._learn(section, missing, list(parsed.items()))
            entries = dict(map(known.__getitem__, chunks))
            if len(entries) != len(chunks):
                return None
            sections[section] = entries
            self._trim(section, chunks, entries)
        return small.model_copy(update=sections)

    def _learn(self, section: str, chunks: list[bytes], entries: list[tuple[str, object]]) -> None:
        self._parsed[section].update(zip(chunks, entries, strict=True))
        self._value[section].update(entries)
        self._text[section].update(zip((key for key, _ in entries), chunks, strict=True))

    def _remember_parsed(self, state: State, layout: _Layout) -> None:
        for section in BIG_SECTIONS:
            entries = list(getattr(state, section).items())
            chunks = layout.chunks[section]
            if len(entries) == len(chunks):
                self._learn(section, chunks, entries)

    def _trim(self, section: str, chunks: list[bytes], entries: dict[str, object]) -> None:
        """Keep only what the document holds, once the maps hold much more
        (replaced and removed entries): memory stays bounded by the document."""
        limit = len(entries) + len(entries) // 8 + 64
        if max(len(self._parsed[section]), len(self._value[section])) > limit:
            self._parsed[section] = dict(zip(chunks, entries.items(), strict=True))
            self._value[section] = dict(entries)
            self._text[section] = dict(zip(entries, chunks, strict=True))

    def dumps(self, state: State) -> bytes:
        """The document: pretty-printed (one space per level), except that each
        entry of the big sections is one compact line."""
        with self._lock:
            empty: dict[str, Any] = {section: {} for section in BIG_SECTIONS}
            small = state.model_copy(update=empty).model_dump_json(indent=1) + "\n"
            text = small.encode("utf-8")
            parts: list[bytes] = []
            done = 0  # text[:done] is in parts
            for section in BIG_SECTIONS:
                entries: dict[str, object] = getattr(state, section)
                if not entries:
                    continue
                placeholder = b'\n "' + section.encode() + b'": {}'
                at = text.index(placeholder, done) + len(placeholder) - 1  # at its "}"
                parts += [text[done:at], b'\n  "', _ENTRY_SEPARATOR.join(self._section_chunks(
                    section, entries)), _SECTION_END]
                done = at + 1
            return b"".join([*parts, text[done:]])

    def _section_chunks(self, section: str, entries: dict[str, object]) -> list[bytes]:
        same = list(map(operator.is_, map(self._value[section].get, entries), entries.values()))
        if not all(same):
            dump = self._entry_adapters[section].dump_json
            stale = itertools.compress(entries, map(operator.not_, same))
            changed = [(key, entries[key]) for key in stale]
            chunks = [to_json(key)[1:] + b": " + dump(value) for key, value in changed]
            self._learn(section, chunks, changed)
        body = list(map(self._text[section].__getitem__, entries))
        self._trim(section, body, entries)
        return body


def serialize(state: State) -> str:
    """The document as the store writes it (see _Codec.dumps)."""
    return _Codec().dumps(state).decode("utf-8")


def write_atomically(path: Path, text: str | bytes) -> None:
    folder = path.parent
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except FileNotFoundError:  # the first write: make the folder
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
    quota counters). Reservations, comment records, dependency lists and
    delivery times are only ever replaced, so they are shared: the copy costs
    no more when other issues store more."""
    return state.model_copy(
        update={
            "subscriptions": {k: v.model_copy() for k, v in state.subscriptions.items()},
            "api_budget": state.api_budget.model_copy(),
            "reservations": dict(state.reservations),
            "comments": dict(state.comments),
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
    """The store file, and this process's parsed copy of it.

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
            # Again after the caller's changes, so the saved document never
            # holds more than DELIVERY_LIMIT ids.
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
            # A copy: the caller still holds ``state`` and may change it.
            self._put_cached(after, _writable_copy(state))

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
                if not pending:
                    return
                state.prune_deliveries(max(item.now for item in pending))
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
        except BaseException as exc:
            self._take_queue(batch)  # failed before taking them: they fail too
            for item in batch:
                if item.error is None:
                    item.error = exc
                    item.result = None
            if not isinstance(exc, Exception):
                raise

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


class StateStore(Protocol):
    """What the server and the commands need of a store: the JSON file
    (Store, above) or PostgreSQL (bot/pg_store.py, PgStore). Same State,
    same transactions, same answers."""

    kind: str

    def read(self) -> State: ...

    def view(self, look: Callable[[State], T]) -> T: ...

    def seen_delivery(self, delivery_id: str) -> bool: ...

    def transaction(self, now: datetime) -> AbstractContextManager[State]: ...

    def apply(self, now: datetime, change: Callable[[State], T]) -> T: ...

    def exists(self) -> bool: ...

    def check(self) -> None: ...

    def ensure_exists(self) -> None: ...

    def check_file(self) -> None: ...

    def ensure_writable(self) -> None: ...

    def remove_stale_temporaries(self, older_than: float = 60.0) -> int: ...
