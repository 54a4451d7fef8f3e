"""The JSON document: parsing with clear errors, and an incremental codec.

The document grows with the issues held (a reservation, an issue record)
and the deliveries remembered; a commit changes a few entries of it.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import threading
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from model_assigner.bot.store.state import (
    Dependencies,
    IssueRecord,
    Reservation,
    State,
    StoreError,
)
from model_assigner.core.loader import describe_validation_error
from model_assigner.core.types import Observation
from model_assigner.core.usage import IssueUsage


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
    "reservations", "records", "dependencies", "deliveries", "usage", "seen", "deferred"
)
_SECTION_TYPES: dict[str, Any] = {
    "reservations": dict[str, Reservation],
    "records": dict[str, IssueRecord],
    "dependencies": dict[str, Dependencies],
    "deliveries": dict[str, datetime],
    "usage": dict[str, IssueUsage],
    "seen": dict[str, Observation],
    "deferred": dict[str, Observation],
}
_ENTRY_TYPES: dict[str, Any] = {
    "reservations": Reservation,
    "records": IssueRecord,
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

