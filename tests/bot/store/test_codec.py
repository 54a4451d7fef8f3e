"""The store's fast paths against the plain ways they replace:

- the incremental codec (only changed entries parsed or dumped) against a
  whole parse and pydantic's own dump, over random histories, with two
  processes' worth of Stores writing the same file in turn;
- a document in the earlier layout (pydantic's indent=1 throughout) is read;
- group commit (``Store.apply``): changes from many threads, a failing one
  among them, a failed write;
- pruning of delivery ids against the obvious implementation.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_assigner.bot.store.codec import parse_state, serialize
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.state import (
    DELIVERY_LIMIT,
    DELIVERY_MEMORY,
    IssueRecord,
    Reservation,
    State,
    StoreError,
    initial_state,
)
from model_assigner.core.types import Payment, as_utc
from tests.bot.store.support import NOW, held, quotas, sub_payment
from tests.helpers import store_files, store_text

keys = st.sampled_from([f"o/r#{n}" for n in range(12)] + ["ö/ü#1", "a/b#😀", 'q"/x#1'])
reservations = st.builds(
    lambda model, tokens, cost, at, by: Reservation(
        model=model,
        payment=Payment(kind="api", family="x", tokens=tokens, cost_usd=cost),
        charged_at=NOW - timedelta(seconds=at),
        override_by=by,
    ),
    st.sampled_from(["glm-4.7", "sonnet-4.5", "模型", ""]),
    st.integers(min_value=0, max_value=10**12),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.integers(min_value=0, max_value=10**6),
    st.none() | st.text(max_size=8),
)
records = st.builds(
    IssueRecord,
    id=st.none() | st.integers(min_value=1, max_value=2**62),
    digest=st.text(max_size=16),
    label=st.none() | st.text(max_size=12),
    issue_updated_at=st.none() | st.just("2026-02-10T12:00:00Z"),
)
operations = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "release", "comment", "forget", "deliver", "depend"]),
        keys,
        reservations,
        records,
        st.integers(min_value=0, max_value=10**6),
    ),
    max_size=12,
)


def apply_operation(state: State, op: tuple[str, str, Reservation, IssueRecord, int]) -> None:
    kind, key, reservation, record, n = op
    if kind == "reserve":
        state.reservations[key] = reservation
    elif kind == "release":
        state.reservations.pop(key, None)
    elif kind == "comment":
        state.records[key] = record
    elif kind == "forget":
        state.records.pop(key, None)
    elif kind == "deliver":
        state.remember_delivery(f"d-{n}-{key}", NOW - timedelta(seconds=n % 1000))
    else:
        state.dependencies[key] = [f"o/r#{n % 7}"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(operations, min_size=1, max_size=8))
def test_two_stores_taking_turns_read_and_write_what_pydantic_would(
    tmp_path_factory: pytest.TempPathFactory, history: list[list[Any]]
) -> None:
    path = tmp_path_factory.mktemp("codec") / "state.json"
    # Without a journal: every commit writes the document, the codec's work.
    workers = [Store(path, quotas(), journal_bytes=None), Store(path, quotas(), journal_bytes=None)]
    expected = initial_state(quotas(), NOW)
    for turn, ops in enumerate(history):
        with workers[turn % 2].transaction(NOW) as state:
            for op in ops:
                apply_operation(state, op)
        for op in ops:
            apply_operation(expected, op)
        expected.prune_deliveries(NOW)
        text = path.read_text(encoding="utf-8")
        on_disk = json.loads(text)
        # The same document pydantic dumps, laid out our way...
        assert on_disk["reservations"] == json.loads(expected.model_dump_json())["reservations"]
        assert set(on_disk) == set(json.loads(expected.model_dump_json()))
        # ...which a whole parse and each worker's incremental one read alike.
        whole = parse_state(text, "x")
        for worker in workers:
            assert worker.view(lambda s: s.model_dump()) == whole.model_dump()
        assert serialize(whole) == text


def test_the_earlier_layout_is_read_and_written_on(tmp_path: Path) -> None:
    state = initial_state(quotas(), NOW)
    for n in range(5):
        state.reserve(f"o/r#{n}", held(sub_payment(1_000 + n)))
        state.records[f"o/r#{n}"] = IssueRecord(id=n + 1, digest="d")
        state.remember_delivery(f"d{n}", NOW)
    path = tmp_path / "state.json"
    path.write_text(state.model_dump_json(indent=1) + "\n")  # indent=1 throughout
    store = Store(path, quotas(), journal_bytes=None)  # the document written each commit
    assert store.view(lambda s: s.model_dump()) == state.model_dump()
    with store.transaction(NOW) as live:
        live.reserve("o/r#9", held(sub_payment(9)))
    text = path.read_text()
    assert '  "o/r#9": {"model":"sonnet-4.5"' in text  # a new entry: one line
    again = parse_state(text, "x")
    assert again.reservations["o/r#3"] == state.reservations["o/r#3"]
    assert len(again.reservations) == 6 and again.records == state.records
    assert Store(path, quotas()).view(lambda s: s.model_dump()) == again.model_dump()


def test_a_hand_edited_document_is_parsed_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    document = json.loads(serialize(initial_state(quotas(), NOW)))
    document["reservations"] = {"o/r#1": json.loads(held(sub_payment(5)).model_dump_json())}
    path.write_text(json.dumps(document, indent=4))  # four spaces, not ours
    store = Store(path, quotas())
    assert store.view(lambda s: s.reservations["o/r#1"].tokens) == 5
    path.write_text(json.dumps(document, indent=4).replace('"tokens": 5', '"tokens": "five"'))
    with pytest.raises(StoreError, match="tokens"):
        store.view(lambda s: None)


# -- group commit -------------------------------------------------------------------------


def test_concurrent_applies_all_land_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.json", quotas(monthly=None, daily=None))
    results: list[int] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        def change(state: State) -> int:
            state.reserve(f"o/r#{n}", held(sub_payment(n)))
            return n

        got = store.apply(NOW, change)
        with lock:
            results.append(got)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(1, 201)))
    assert sorted(results) == list(range(1, 201))
    saved = State.model_validate_json(store_text(store.path))
    assert len(saved.reservations) == 200
    assert saved.subscriptions["claude"].tokens_used_month == sum(range(1, 201))


def test_a_failing_change_fails_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.json", quotas())
    barrier = threading.Barrier(8)
    outcomes: dict[int, str] = {}

    def one(n: int) -> None:
        def change(state: State) -> None:
            state.reserve(f"o/r#{n}", held(sub_payment(10)))
            if n % 3 == 0:
                raise ValueError(f"change {n} fails half-way")

        barrier.wait()
        try:
            store.apply(NOW, change)
            outcomes[n] = "ok"
        except ValueError as exc:
            outcomes[n] = str(exc)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(8)))
    saved = State.model_validate_json(store_text(store.path))
    assert set(saved.reservations) == {f"o/r#{n}" for n in range(8) if n % 3}
    assert saved.subscriptions["claude"].tokens_used_month == 10 * len(saved.reservations)
    assert outcomes[3] == "change 3 fails half-way" and outcomes[1] == "ok"


def test_a_failed_write_fails_every_change_of_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    store = Store(tmp_path / "state.json", quotas())
    store.apply(NOW, lambda state: state.reserve("o/r#0", held(sub_payment(1))))
    before = store_files(store.path)

    def no_space(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    errors = []

    def one(n: int) -> None:
        try:
            store.apply(NOW, lambda state: state.reserve(f"o/r#{n}", held(sub_payment(n))))
        except StoreError as exc:
            errors.append(str(exc))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(1, 9)))
    monkeypatch.undo()
    assert len(errors) == 8 and all("No space left" in e for e in errors)
    assert store_files(store.path) == before
    assert store.view(lambda s: set(s.reservations)) == {"o/r#0"}


# -- pruning delivery ids ---------------------------------------------------------------


LIMIT = 40  # DELIVERY_LIMIT for these tests: the same code, smaller numbers


def reference_prune(deliveries: dict[str, datetime], now: datetime) -> dict[str, datetime]:
    cutoff = as_utc(now) - DELIVERY_MEMORY
    kept = {k: v for k, v in deliveries.items() if as_utc(v) >= cutoff}
    if len(kept) > LIMIT:
        kept = dict(sorted(kept.items(), key=lambda item: as_utc(item[1]))[-LIMIT:])
    return kept


@settings(max_examples=150, deadline=None)
@given(
    ages=st.lists(st.integers(min_value=0, max_value=6 * 24 * 3600), min_size=0, max_size=40),
    extra=st.integers(min_value=0, max_value=30),
    naive=st.booleans(),
    shuffle=st.randoms(),
)
def test_pruning_keeps_what_the_plain_way_keeps(
    ages: list[int], extra: int, naive: bool, shuffle: Any
) -> None:
    from unittest import mock

    import model_assigner.bot.store.state as bot_store

    deliveries: dict[str, datetime] = {}
    for i in range(LIMIT - 10 + extra):  # around the limit, in order
        deliveries[f"a{i}"] = NOW - timedelta(hours=1) + timedelta(microseconds=i)
    stamps = [NOW - timedelta(seconds=age) for age in ages]
    shuffle.shuffle(stamps)
    for i, moment in enumerate(stamps):  # and some out of order, some too old
        deliveries[f"b{i}"] = moment.replace(tzinfo=None) if naive and i % 2 else moment
    state = initial_state(quotas(), NOW)
    state.deliveries = dict(deliveries)
    with mock.patch.object(bot_store, "DELIVERY_LIMIT", LIMIT):
        state.prune_deliveries(NOW)
    assert state.deliveries == reference_prune(deliveries, NOW)


def test_pruning_is_fast_with_thousands_of_ids() -> None:
    import time

    state = initial_state(quotas(), NOW)
    for i in range(DELIVERY_LIMIT):
        state.remember_delivery(f"d{i}", NOW - timedelta(seconds=DELIVERY_LIMIT - i))
    started = time.perf_counter()
    for i in range(200):
        state.remember_delivery(f"new{i}", NOW + timedelta(seconds=i))
        state.prune_deliveries(NOW + timedelta(seconds=i))
    assert len(state.deliveries) == DELIVERY_LIMIT
    assert time.perf_counter() - started < 1.0
    assert "d0" not in state.deliveries and "new199" in state.deliveries
    assert datetime(2026, 1, 1, tzinfo=UTC) < min(state.deliveries.values())
