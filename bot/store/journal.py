"""The JSON store's journal: what each commit changed, one line per commit,
appended to ``<document>.journal`` next to the document.

Why: rewriting the whole document on every commit makes a delivery's cost
grow with what every other issue stored (an attacker's 300 issues of 65 KB
bodies made every repository's delivery slow). A commit now appends only the
entries it changed; the document is rewritten (compacted) only once the
journal has grown past a bound, so that its cost is shared by the many
commits it absorbs.

The file, all JSON text, one object a line:
- a header: ``{"journal": 1, "document": "<sha256 of the document's bytes>",
  "id": "<random>"}``: the journal extends exactly that document. A document
  replaced by other means (a compaction, a backup copied over it) leaves the
  journal behind it: its records are then ignored (the document holds them,
  or was meant to replace them), and the next commit starts a new journal.
- one record per commit: the counters when they changed (``subscriptions``,
  ``api_budget``), the entries set (``set``: section -> key -> value, each
  value the same JSON as in the document) and the keys removed (``drop``).

A record is written whole with one ``write`` and made durable (fsync) before
the commit returns. A crash mid-write leaves an incomplete last line: it was
never acknowledged, so replay ignores it (and the next commit cuts it off).
Anything invalid before the last line is damage, and refused.
"""

from __future__ import annotations

import hashlib
import operator
import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import to_json

from model_assigner.bot.store.state import (
    Dependencies,
    IssueRecord,
    Reservation,
    State,
    StoreError,
)
from model_assigner.core.types import ApiBudget, Observation, Subscription
from model_assigner.core.usage import IssueUsage

JOURNAL_FORMAT = 1
# The keyed sections a record may set or drop, in the document's order.
SECTIONS = (
    "reservations", "records", "dependencies", "deliveries", "usage", "reconciled", "seen",
    "deferred",
)


class _Entries(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    reservations: dict[str, Reservation] = Field(default_factory=dict)
    records: dict[str, IssueRecord] = Field(default_factory=dict)
    dependencies: dict[str, Dependencies] = Field(default_factory=dict)
    deliveries: dict[str, datetime] = Field(default_factory=dict)
    usage: dict[str, IssueUsage] = Field(default_factory=dict)
    reconciled: dict[str, datetime] = Field(default_factory=dict)
    seen: dict[str, Observation] = Field(default_factory=dict)
    deferred: dict[str, Observation] = Field(default_factory=dict)


class _Dropped(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reservations: list[str] = Field(default_factory=list)
    records: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)
    deliveries: list[str] = Field(default_factory=list)
    usage: list[str] = Field(default_factory=list)
    reconciled: list[str] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)
    deferred: list[str] = Field(default_factory=list)


class Record(BaseModel):
    """One commit's changes."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    subscriptions: dict[str, Subscription] | None = None
    api_budget: ApiBudget | None = None
    set: _Entries = Field(default_factory=_Entries)
    drop: _Dropped = Field(default_factory=_Dropped)


class Header(BaseModel):
    model_config = ConfigDict(extra="forbid")

    journal: int
    document: str
    id: str


_ENTRY_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "reservations": TypeAdapter(Reservation),
    "records": TypeAdapter(IssueRecord),
    "dependencies": TypeAdapter(Dependencies),
    "deliveries": TypeAdapter(datetime),
    "usage": TypeAdapter(IssueUsage),
    "reconciled": TypeAdapter(datetime),
    "seen": TypeAdapter(Observation),
    "deferred": TypeAdapter(Observation),
}
_SUBSCRIPTIONS = TypeAdapter(dict[str, Subscription])


def document_digest(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()


def header_line(document: bytes) -> bytes:
    """The first line of a journal that extends ``document``."""
    return header_line_for(document_digest(document))


def header_line_for(digest: str) -> bytes:
    """A header naming the document by its digest, and this journal by a
    random id: a journal started again for the same document is still
    another file to a reader that had read into the first."""
    return to_json(
        {"journal": JOURNAL_FORMAT, "document": digest, "id": secrets.token_hex(8)}
    ) + b"\n"


def parse_header(line: bytes) -> Header | None:
    """The header, or None when ``line`` is not one this store wrote."""
    try:
        header = Header.model_validate_json(line)
    except ValidationError:
        return None
    return header if header.journal == JOURNAL_FORMAT else None


def changes(before: State, after: State) -> bytes | None:
    """The record of what turned ``before`` into ``after`` (one line, no
    newline), None when nothing changed. Entries are replaced, never changed
    in place (see bot/store/state.py), so a changed entry is one that is not
    the same object: the comparison costs a pointer per entry, in C, and
    what is written is only what changed."""
    parts: list[bytes] = []
    if before.subscriptions != after.subscriptions:
        parts.append(b'"subscriptions":' + _SUBSCRIPTIONS.dump_json(after.subscriptions))
    if before.api_budget != after.api_budget:
        parts.append(b'"api_budget":' + after.api_budget.model_dump_json().encode())
    sets: list[bytes] = []
    drops: list[bytes] = []
    for section in SECTIONS:
        old: dict[str, Any] = getattr(before, section)
        new: dict[str, Any] = getattr(after, section)
        changed = _changed(old, new)
        if changed:
            dump = _ENTRY_ADAPTERS[section].dump_json
            body = b",".join(to_json(key) + b":" + dump(new[key]) for key in changed)
            sets.append(b'"' + section.encode() + b'":{' + body + b"}")
        added = sum(1 for key in changed if key not in old)
        # Nothing can be gone when every old key is still there (in C otherwise).
        gone = sorted(old.keys() - new.keys()) if len(old) + added != len(new) else []
        if gone:
            drops.append(b'"' + section.encode() + b'":' + to_json(gone))
    if sets:
        parts.append(b'"set":{' + b",".join(sets) + b"}")
    if drops:
        parts.append(b'"drop":{' + b",".join(drops) + b"}")
    if not parts:
        return None
    return b"{" + b",".join(parts) + b"}"


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys of ``new`` whose value is not ``old``'s (new ones included),
    in ``new``'s order."""
    same = list(map(operator.is_, map(old.get, new), new.values()))
    if all(same):
        return []
    return [key for key, kept in zip(new, same, strict=True) if not kept]


def settle_order(before: State, after: State) -> None:
    """Put ``after``'s changed entries last in their sections, as a replay of
    its record does (``replay`` moves what it sets to the end): the writer's
    copy and every reader's are then the same, order included (the online
    history and the delivery ids drop their oldest first)."""
    for section in SECTIONS:
        new: dict[str, Any] = getattr(after, section)
        for key in _changed(getattr(before, section), new):
            new[key] = new.pop(key)


def replay(state: State, line: bytes, source: str) -> None:
    """Apply one record to ``state`` (a writable copy)."""
    try:
        record = Record.model_validate_json(line)
    except ValidationError as exc:
        raise StoreError(f"{source}: a journal record is not valid ({_first_error(exc)})") \
            from None
    if record.subscriptions is not None:
        state.subscriptions = record.subscriptions
    if record.api_budget is not None:
        state.api_budget = record.api_budget
    for section in SECTIONS:
        entries: dict[str, Any] = getattr(state, section)
        for key in getattr(record.drop, section):
            entries.pop(key, None)
        for key, value in getattr(record.set, section).items():
            entries.pop(key, None)
            entries[key] = value


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def split_records(data: bytes) -> tuple[list[bytes], int]:
    """The complete lines of ``data`` and the length they span: an incomplete
    last line (a write a crash cut short) is left out."""
    end = data.rfind(b"\n") + 1
    return (data[:end].splitlines() if end else []), end


def replay_all(state: State, lines: list[bytes], source: str) -> int:
    """Apply ``lines`` in order; how many were applied. An invalid LAST
    record is left out (a write cut short whose newline reached the disk
    before its text: it was never acknowledged); an invalid record followed
    by others is damage to an acknowledged commit: refused, never skipped."""
    for done, line in enumerate(lines):
        try:
            replay(state, line, source)
        except StoreError:
            if done == len(lines) - 1:
                return done
            raise
    return len(lines)
