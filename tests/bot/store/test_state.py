"""The state model's own rules (bot/store/state.py): the reservation step and
its exact undo, and the upgrade of a format-1 document."""

from __future__ import annotations

import json
from datetime import timedelta

from model_assigner.bot.store.codec import parse_state, serialize
from model_assigner.bot.store.state import (
    STATE_VERSION,
    IssueRecord,
    ReservationStep,
    State,
    initial_state,
)
from model_assigner.core.types import Observation
from tests.bot.store.support import NOW, api_payment, claude, held, quotas, sub_payment

KEY = "o/r#1"
OTHER = "o/r#2"


def _state_with_an_issue() -> State:
    state = initial_state(quotas(), NOW)
    state.reserve(KEY, held(sub_payment(1_000)))
    state.set_dependencies(KEY, ["o/r#7"])
    state.put_record(KEY, IssueRecord(id=5, digest="d", label="model:sonnet-4.5",
                                      issue_updated_at="2026-02-10T11:00:00Z"))
    seen = Observation(value=1.0, domain="backend", input_tokens=800, output_tokens=200,
                       seen_at=NOW - timedelta(days=1))
    state.seen[KEY] = seen
    return state


def test_a_reservation_step_charges_and_marks_the_record() -> None:
    state = _state_with_an_issue()
    step = ReservationStep.begin(state, KEY)
    assert KEY not in state.reservations and claude(state).tokens_used_today == 0
    step.charge(state, held(sub_payment(3_000), model="opus-4.6"), [])
    assert state.reservations[KEY].model == "opus-4.6"
    assert claude(state).tokens_used_today == 3_000
    assert KEY not in state.dependencies  # none named any more
    record = state.record(KEY)
    assert record is not None and record.id == 5 and record.issue_updated_at is None


def test_undo_puts_back_exactly_what_the_step_found() -> None:
    state = _state_with_an_issue()
    before = state.model_dump()
    step = ReservationStep.begin(state, KEY)
    state.deferred[KEY] = state.seen[KEY]
    step.charge(state, held(api_payment(0.25)), [])
    step.undo(state)
    assert state.model_dump() == before


def test_undo_keeps_what_another_issue_charged_meanwhile() -> None:
    state = _state_with_an_issue()
    step = ReservationStep.begin(state, KEY)
    step.charge(state, held(sub_payment(3_000)), ["o/r#8"])
    state.reserve(OTHER, held(sub_payment(500)))  # another delivery, in between
    state.reserve("o/r#3", held(api_payment(0.5)))
    step.undo(state)
    assert claude(state).tokens_used_today == 1_500  # the first 1,000 and the other's 500
    assert state.api_budget.spent_usd == 0.5
    assert state.reservations[OTHER].tokens == 500
    assert state.dependencies[KEY] == ["o/r#7"]


def test_undo_keeps_a_comment_the_failed_write_back_created() -> None:
    state = initial_state(quotas(), NOW)
    step = ReservationStep.begin(state, KEY)
    step.charge(state, held(sub_payment(3_000)), [])
    step.undo(state, written=[IssueRecord(id=77, digest="x")])
    assert state.record(KEY) == IssueRecord(id=77, digest="x")
    assert KEY not in state.reservations and claude(state).tokens_used_today == 0


def test_dependents_are_the_issues_that_name_it() -> None:
    state = initial_state(quotas(), NOW)
    state.set_dependencies("o/r#2", ["o/r#1", "o/r#5"])
    state.set_dependencies("o/r#3", ["o/r#5"])
    state.set_dependencies("o/r#1", ["o/r#1"])  # itself: not a dependent
    assert state.dependents_of("o/r#1") == ["o/r#2"]
    assert sorted(state.dependents_of("o/r#5")) == ["o/r#2", "o/r#3"]


def test_a_format_1_document_is_read_and_written_as_the_current_format() -> None:
    current = _state_with_an_issue()
    document = json.loads(serialize(current))
    document["version"] = 1
    document["comments"] = document.pop("records")  # format 1's name
    old = parse_state(json.dumps(document), "old.json")
    assert old.read_version == 1 and old.version == STATE_VERSION
    assert old.records == current.records
    written = json.loads(serialize(old))
    assert written["version"] == STATE_VERSION and "comments" not in written
    assert "read_version" not in written
