"""The accounting of reported usage in the store: the estimate's reservation
becomes what was used (remainder released, overrun charged), runs add up,
another model is charged to its payer, a report waits for its decision, a
report after the monthly reset counts in the month it ended in."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from model_assigner.bot.store.state import Reservation, State, apply_resets, initial_state
from model_assigner.bot.usage_store import (
    calibrated,
    calibration_samples,
    note_decision,
    record_report,
)
from model_assigner.core.config import EngineConfig
from model_assigner.core.reasons import ReasonCode
from model_assigner.core.selection import select_model
from model_assigner.core.types import Decision
from model_assigner.core.usage import TokenUsage, UsageReport, estimate_class
from tests.helpers import NOW, build_ledger, seed_task

KEY = "octo/repo#7"


def fresh_state(engine_config: EngineConfig) -> State:
    state = initial_state(engine_config.quotas, NOW)
    for sub in state.subscriptions.values():
        sub.usage_day = NOW.date()
        sub.reset_date = datetime(2026, 3, 1, tzinfo=NOW.tzinfo)
    state.api_budget.reset_date = datetime(2026, 3, 1, tzinfo=NOW.tzinfo)
    return state


def decide(state: State, engine_config: EngineConfig, key: str = KEY,
           now: datetime = NOW) -> Decision:
    """What the handler does: reserve the decision, then note it once written."""
    decision = select_model(seed_task(), state.ledger().copy(), engine_config.models,
                            engine_config.scoring, now)
    assert decision.payment is not None and decision.model is not None
    state.reserve(key, Reservation(model=decision.model, payment=decision.payment,
                                   charged_at=now, estimated=estimate_class(decision)))
    note_decision(state, key, decision, engine_config.models, now)
    return decision


def report(run: str, tokens_in: int, tokens_out: int = 0, model: str | None = None,
           ended_at: datetime | None = None) -> UsageReport:
    return UsageReport(run_id=run, ended_at=ended_at, lines=[
        TokenUsage(model=model, input_tokens=tokens_in, output_tokens=tokens_out)])


def claude_month(state: State) -> int:
    return state.subscriptions["claude"].tokens_used_month


def test_the_remainder_of_the_estimate_is_released(engine_config: EngineConfig) -> None:
    state = fresh_state(engine_config)
    decision = decide(state, engine_config)
    assert decision.payment is not None and decision.payment.kind == "subscription"
    assert claude_month(state) == 31_000
    outcome = record_report(state, KEY, report("r1", 9_000, 1_000), engine_config.models, NOW)
    assert outcome.status == "charged"
    assert claude_month(state) == 10_000
    assert state.subscriptions["claude"].tokens_used_today == 10_000
    # The reservation stays (the model is still the bot's), holding nothing.
    assert state.reservations[KEY].tokens == 0


def test_an_overrun_is_charged_and_two_runs_add_up(engine_config: EngineConfig) -> None:
    state = fresh_state(engine_config)
    decide(state, engine_config)
    record_report(state, KEY, report("r1", 40_000, 5_000), engine_config.models, NOW)
    assert claude_month(state) == 45_000
    record_report(state, KEY, report("r2", 20_000), engine_config.models, NOW)
    assert claude_month(state) == 65_000
    assert state.usage[KEY].actual_tokens == 65_000


def test_the_same_run_twice_counts_once(engine_config: EngineConfig) -> None:
    state = fresh_state(engine_config)
    decide(state, engine_config)
    record_report(state, KEY, report("r1", 40_000), engine_config.models, NOW)
    again = record_report(state, KEY, report("r1", 40_000), engine_config.models, NOW)
    assert again.status == "duplicate"
    assert claude_month(state) == 40_000


def test_another_model_is_charged_to_its_payer(engine_config: EngineConfig) -> None:
    state = fresh_state(engine_config)
    decide(state, engine_config)
    outcome = record_report(state, KEY, report("r1", 1_000_000, 100_000, model="gpt-4-turbo"),
                            engine_config.models, NOW)
    [charge] = outcome.charges
    assert charge.payment.kind == "api"
    assert state.api_budget.spent_usd == pytest.approx(10.0 + 3.0)
    assert claude_month(state) == 0  # the claude estimate is given back
    assert charge.note is not None and "gpt-4-turbo" in charge.note


def test_a_report_before_the_decision_waits_for_it(engine_config: EngineConfig) -> None:
    state = fresh_state(engine_config)
    outcome = record_report(state, KEY, report("early", 50_000), engine_config.models, NOW)
    assert outcome.status == "pending"
    assert claude_month(state) == 0 and state.api_budget.spent_usd == 0
    decide(state, engine_config)
    # Decided: the waiting run replaces the estimate.
    assert claude_month(state) == 50_000
    assert state.usage[KEY].runs["early"].charged


def test_a_re_decision_after_reports_reserves_nothing_more(engine_config: EngineConfig) -> None:
    state = fresh_state(engine_config)
    decide(state, engine_config)
    record_report(state, KEY, report("r1", 5_000), engine_config.models, NOW)
    decide(state, engine_config)  # an edit, a label: the issue is decided again
    assert claude_month(state) == 5_000


def test_a_report_after_close_replaces_the_kept_estimate(engine_config: EngineConfig) -> None:
    state = fresh_state(engine_config)
    decide(state, engine_config)
    state.settle(KEY)  # closed as completed: the estimate stays as usage...
    assert claude_month(state) == 31_000
    record_report(state, KEY, report("late", 12_000), engine_config.models, NOW)
    assert claude_month(state) == 12_000  # ...until the report replaces it
    state.release(KEY)
    record_report(state, KEY, report("later", 1_000), engine_config.models, NOW)
    assert claude_month(state) == 13_000


def test_a_report_after_the_monthly_reset(engine_config: EngineConfig) -> None:
    state = fresh_state(engine_config)
    decide(state, engine_config, now=NOW)
    # The month turns: the estimate was last month's usage.
    after = datetime(2026, 3, 2, 9, tzinfo=NOW.tzinfo)
    apply_resets(state, after)  # as the store does before each change
    assert claude_month(state) == 0
    # A run that ended last month does not count in this month...
    record_report(state, KEY, report("feb", 20_000, ended_at=after - timedelta(days=2)),
                  engine_config.models, after)
    assert claude_month(state) == 0
    # ...one that ended this month does, and nothing of the old estimate comes back.
    record_report(state, KEY, report("mar", 7_000), engine_config.models, after)
    assert claude_month(state) == 7_000


def test_finished_issues_teach_the_calibration(engine_config: EngineConfig) -> None:
    state = fresh_state(engine_config)
    for number in range(30):
        key = f"octo/repo#{number}"
        decide(state, engine_config, key=key)
        record_report(state, key, report(f"r{number}", 62_000), engine_config.models, NOW)
    assert calibration_samples(state) == []  # still open
    for number in range(30):
        state.settle(f"octo/repo#{number}")
    samples = calibration_samples(state)
    assert len(samples) == 30 and samples[0].estimated == 31_000
    scoring = calibrated(state, engine_config.scoring)
    tuned = select_model(seed_task(), build_ledger(), engine_config.models, scoring, NOW)
    assert 1.5 < tuned.tokens.calibration < 2.0
    (learned,) = [r for r in tuned.tokens.adjustments
                  if r.code == ReasonCode.TOKENS_CALIBRATION]
    assert (learned.values["domain_samples"], learned.values["domain"]) == (30, "backend")
    off = engine_config.scoring.model_copy(update={"calibration": engine_config.scoring
                                                   .calibration.model_copy(
                                                       update={"enabled": False})})
    assert calibrated(state, off).calibration.learned == {}


def test_what_a_reporter_can_make_the_store_hold_is_bounded(
    engine_config: EngineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model_assigner.bot.usage_store as usage_store

    monkeypatch.setattr(usage_store, "MAX_RUNS_PER_ISSUE", 3)
    monkeypatch.setattr(usage_store, "MAX_WAITING_ISSUES", 2)
    state = fresh_state(engine_config)
    decide(state, engine_config)
    for run in range(3):
        record_report(state, KEY, report(f"r{run}", 10), engine_config.models, NOW)
    with pytest.raises(usage_store.TooManyReports, match="3 runs"):
        record_report(state, KEY, report("r3", 10), engine_config.models, NOW)
    assert claude_month(state) == 30
    for number in range(2):
        record_report(state, f"octo/repo#{100 + number}", report("w", 5),
                      engine_config.models, NOW)
    with pytest.raises(usage_store.TooManyReports, match="wait for a decision"):
        record_report(state, "octo/repo#200", report("w", 5), engine_config.models, NOW)
    # An issue already waiting may still add runs.
    record_report(state, "octo/repo#100", report("w2", 5), engine_config.models, NOW)
    assert len(state.usage["octo/repo#100"].runs) == 2


def test_the_learned_table_follows_every_change(engine_config: EngineConfig) -> None:
    from model_assigner.bot.usage_store import learned_table

    state = fresh_state(engine_config)
    for number in range(20):
        key = f"octo/repo#{number}"
        decide(state, engine_config, key=key)
        record_report(state, key, report("r", 62_000), engine_config.models, NOW)
        state.settle(key)
    first = learned_table(state, engine_config.scoring)["moderate/backend"]
    assert learned_table(state, engine_config.scoring)["moderate/backend"] == first
    # Another run on a finished issue: its sample, and so the factor, moves.
    for number in range(20):
        record_report(state, f"octo/repo#{number}", report("r2", 62_000),
                      engine_config.models, NOW)
    second = learned_table(state, engine_config.scoring)["moderate/backend"]
    assert second.factor > first.factor
    # An issue reopened (holding a reservation again) is no longer a sample.
    decide(state, engine_config, key="octo/repo#0")
    assert learned_table(state, engine_config.scoring)["moderate/backend"].samples == 19


def test_closed_issues_records_are_bounded_oldest_idle_first(
    engine_config: EngineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model_assigner.bot.store.state as store

    monkeypatch.setattr(store, "USAGE_HIGH", 6)
    monkeypatch.setattr(store, "USAGE_KEEP", 4)
    state = fresh_state(engine_config)
    # An open issue decided: its reservation holds the estimate, no record.
    decide(state, engine_config, key="octo/open#1")
    assert state.usage == {}
    for number in range(3):  # finished with reports, the newest
        key = f"octo/done#{number}"
        decide(state, engine_config, key=key, now=NOW + timedelta(hours=10 + number))
        record_report(state, key, report("r", 100), engine_config.models, NOW)
        state.settle(key)
    for number in range(4):  # closed without a report, older
        key = f"octo/idle#{number}"
        decide(state, engine_config, key=key, now=NOW + timedelta(hours=number))
        state.settle(key)
    # 7 records went past 6: the oldest idle ones went, down to 4.
    assert sorted(state.usage) == [
        "octo/done#0", "octo/done#1", "octo/done#2", "octo/idle#3"]
    assert "octo/open#1" in state.reservations
