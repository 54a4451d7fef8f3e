"""Phase 4: optimize_task_assignments under each strategy."""

from __future__ import annotations

from typing import Any

import pytest

from model_assigner.core.assessment import assess
from model_assigner.core.batch import BatchPlan, optimize_task_assignments, try_subscription_models
from model_assigner.core.config import ScoringConfig
from model_assigner.core.quota import Ledger
from model_assigner.core.reasons import ReasonCode, reason
from model_assigner.core.types import GREEDY_STRATEGIES, STRATEGIES, Model, Task
from tests.helpers import NOW, build_ledger, build_task, seed_task, task_for

AT_90_INFRA = ("P0", "complex", 15, "infrastructure", "development")  # 90.0, 94,000 tokens
AT_75 = ("P0", "complex", 15, "frontend", "development")  # 75.0, 80,000 tokens
AT_60 = ("P0", "complex", 0, "frontend", "development")  # 60.0
AT_45 = ("P0", "moderate", 5, "frontend", "development")  # 45.0
AT_40 = ("P0", "moderate", 0, "frontend", "development")  # 40.0
BELOW_40 = ("P1", "complex", 12, "frontend", "sandbox")  # 39.9


def plan_for(
    tasks: list[Task],
    ledger: Ledger,
    models: list[Model],
    scoring: ScoringConfig,
    strategy: str,
) -> BatchPlan:
    return optimize_task_assignments(tasks, ledger, models, scoring, NOW, strategy)


def picks(plan: BatchPlan) -> dict[str, tuple[str | None, str | None]]:
    return {d.task_id: (d.model, d.paid_by) for d in plan.decisions}


def claude_used(ledger: Ledger) -> int:
    claude = ledger.subscription_for("claude")
    assert claude is not None
    return claude.tokens_used_month


@pytest.fixture
def contest() -> tuple[list[Task], Ledger]:
    """Two 31,000-token high-band tasks listed before a 94,000-token critical
    one, with 100,000 claude tokens left: room for the big one or the two small."""
    tasks = [
        seed_task(id="a"),
        seed_task(id="b"),
        task_for(*AT_90_INFRA, id="big"),
    ]
    return tasks, build_ledger(claude_used=5_000_000 - 100_000)


@pytest.mark.parametrize("strategy", ["maximize_subscription_usage", "maximize_value"])
def test_value_strategies_serve_the_highest_value_first(
    models: list[Model],
    scoring: ScoringConfig,
    contest: tuple[list[Task], Ledger],
    strategy: str,
) -> None:
    tasks, ledger = contest
    plan = plan_for(tasks, ledger, models, scoring, strategy)
    assert [d.task_id for d in plan.decisions] == ["a", "b", "big"]  # input order
    assert picks(plan) == {
        "big": ("opus-4.6", "subscription:claude"),
        # claude has 6,000 tokens left: the 75 band's no-quota order
        "a": ("gpt-4-turbo", "api"),
        "b": ("gpt-4-turbo", "api"),
    }
    assert all(d.strategy == strategy for d in plan.decisions)
    assert claude_used(plan.ledger) == 5_000_000 - 100_000 + 94_000
    assert plan.ledger.budget.spent_usd == pytest.approx(2 * (27500 * 10 + 3500 * 30) / 1e6)


def test_minimize_cost_packs_subscriptions_smallest_first(
    models: list[Model], scoring: ScoringConfig, contest: tuple[list[Task], Ledger]
) -> None:
    tasks, ledger = contest
    plan = plan_for(tasks, ledger, models, scoring, "minimize_cost")
    assert picks(plan) == {
        "a": ("sonnet-4.5", "subscription:claude"),
        "b": ("sonnet-4.5", "subscription:claude"),
        # no room left: the cheapest model rated >= 0.7 for infrastructure
        "big": ("deepseek-v3", "api"),
    }
    big = plan.decisions[2]
    assert big.reason == reason(ReasonCode.CHEAPEST_CAPABLE_API, band=big.band,
                                model="deepseek-v3", floor=0.7, domain="infrastructure")
    assert claude_used(plan.ledger) == 5_000_000 - 100_000 + 62_000
    assert plan.ledger.budget.spent_usd == pytest.approx((84_000 * 0.28 + 10_000 * 0.42) / 1e6)


def test_batch_leaves_the_callers_ledger_alone(
    models: list[Model], scoring: ScoringConfig, contest: tuple[list[Task], Ledger]
) -> None:
    tasks, ledger = contest
    for strategy in STRATEGIES:
        plan = plan_for(tasks, ledger, models, scoring, strategy)
        assert plan.ledger is not ledger
    assert claude_used(ledger) == 5_000_000 - 100_000
    assert ledger.budget.spent_usd == 0


# --- thresholds --------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["maximize_value", "maximize_subscription_usage"])
def test_value_thresholds_75_and_40(
    models: list[Model], scoring: ScoringConfig, strategy: str
) -> None:
    tasks = [
        task_for(*BELOW_40, id="below40"),
        task_for(*AT_40, id="at40"),
        task_for(*AT_75, id="at75"),
    ]
    plan = plan_for(tasks, build_ledger(), models, scoring, strategy)
    assert picks(plan) == {
        "at75": ("sonnet-4.5", "subscription:claude"),
        "at40": ("glm-4.7", "api"),
        "below40": (None, None),
    }
    assert plan.decisions[0].reason.code == ReasonCode.LOW_VALUE
    assert plan.decisions[0].reason.values["floor"] == 40


def test_minimize_cost_thresholds(models: list[Model], scoring: ScoringConfig) -> None:
    tasks = [
        task_for(*BELOW_40, id="below40"),
        task_for(*AT_40, id="at40"),
        task_for(*AT_75, id="at75"),
    ]
    plan = plan_for(tasks, build_ledger(), models, scoring, "minimize_cost")
    assert picks(plan) == {
        "at75": ("sonnet-4.5", "subscription:claude"),
        # no subscription model in the standard band: cheapest capable API model
        "at40": ("deepseek-v3", "api"),
        # below the overflow threshold: deferred even with budget to spare
        "below40": (None, None),
    }


def test_minimize_cost_uses_the_subscription_before_cheaper_api_models(
    models: list[Model], scoring: ScoringConfig
) -> None:
    task = task_for(*AT_60, id="mid")
    by_value = plan_for([task], build_ledger(), models, scoring, "maximize_value")
    by_cost = plan_for([task], build_ledger(), models, scoring, "minimize_cost")
    assert picks(by_value) == {"mid": ("deepseek-v3", "api")}
    assert picks(by_cost) == {"mid": ("sonnet-4.5", "subscription:claude")}
    assert by_cost.ledger.budget.spent_usd == 0


def test_minimize_cost_says_why_it_passed_over_the_bands_preferred_models(
    models: list[Model], scoring: ScoringConfig
) -> None:
    task = task_for(*AT_60, id="mid")
    (decision,) = plan_for([task], build_ledger(), models, scoring, "minimize_cost").decisions
    (by_value,) = plan_for([task], build_ledger(), models, scoring, "maximize_value").decisions
    assert decision.model == "sonnet-4.5"
    passed = {p.model: p.reason for p in decision.passed_over}
    # The band's own first choice (what maximize_value takes) is among them.
    assert by_value.model in passed
    assert "sonnet-4.5" not in passed
    assert passed == {
        "deepseek-v3": reason(ReasonCode.ONLY_ON_API, family="claude", taken="sonnet-4.5"),
        # in the seed's preferred order, but of the budget tier
        "qwen2.5-coder": reason(ReasonCode.NOT_IN_BAND_TIERS, band="medium-high",
                                tiers=("mid-premium", "mid-range")),
    }

    broke = build_ledger(claude_used=5_000_000, budget=0)
    (deferred,) = plan_for([task], broke, models, scoring, "minimize_cost").decisions
    assert deferred.model is None and deferred.passed_over
    assert all(p.reason.code == ReasonCode.CANNOT_PAY and p.reason.values["budget_left"] == 0
               for p in deferred.passed_over)


def test_minimize_cost_passed_over_reasons_follow_the_real_filters(
    models: list[Model], scoring: ScoringConfig
) -> None:
    """A critical task on opus: sonnet (claude-paid too, and cheaper) was set
    aside by the band's tiers, not by price. With claude used up, the list is
    the band's no-quota order, and the API pick is the cheapest capable model."""
    (critical,) = plan_for([task_for(*AT_90_INFRA, id="big")], build_ledger(), models, scoring,
                           "minimize_cost").decisions
    assert critical.model == "opus-4.6" and critical.paid_by == "subscription:claude"
    passed = {p.model: p.reason for p in critical.passed_over}
    assert passed["sonnet-4.5"] == reason(ReasonCode.NOT_IN_BAND_TIERS, band="critical",
                                          tiers=("premium",))
    # gpt-4's 8,192-token window cannot hold a highly complex task's turn
    assert passed["gpt-4"] == reason(ReasonCode.WINDOW_TOO_SMALL, window=8192,
                                     working_set=critical.tokens.working_set)
    assert critical.tokens.working_set > 8192

    used_up = build_ledger(claude_used=5_000_000)
    (high,) = plan_for([task_for(*AT_75, id="hi")], used_up, models, scoring,
                       "minimize_cost").decisions
    assert high.paid_by == "api"
    high_band = next(b for b in scoring.value_bands if b.name == "high")
    order = [n for n in high_band.preferred_without_quota or [] if n != high.model]
    assert [p.model for p in high.passed_over] == order
    for p in high.passed_over:
        assert p.reason.code in (ReasonCode.DEARER_THAN, ReasonCode.BELOW_CAPABILITY_FLOOR)


def test_minimize_cost_defers_what_nothing_can_pay(
    models: list[Model], scoring: ScoringConfig
) -> None:
    tasks = [task_for(*AT_40, id="at40"), task_for(*AT_90_INFRA, id="big")]
    plan = plan_for(
        tasks, build_ledger(claude_used=5_000_000, budget=0), models, scoring, "minimize_cost"
    )
    assert picks(plan) == {"at40": (None, None), "big": (None, None)}
    assert all(d.reason.code == ReasonCode.UNAFFORDABLE for d in plan.decisions)


@pytest.mark.parametrize(
    ("floor", "model"),
    [(0.7, "deepseek-v3"), (0.8, "deepseek-v3"), (0.81, "sonnet-4.5"), (0.99, None)],
)
def test_minimize_cost_capability_floor(
    models: list[Model], scoring: ScoringConfig, floor: float, model: str | None
) -> None:
    config = scoring.model_copy(update={"capability_floor": floor})
    plan = plan_for(
        [seed_task()], build_ledger(claude_used=5_000_000), models, config, "minimize_cost"
    )
    decision = plan.decisions[0]
    assert decision.model == model
    assert decision.paid_by == ("api" if model else None)
    if model is None:  # affordable, all of them, but none rated high enough
        assert decision.passed_over
        for passed in decision.passed_over:
            assert passed.reason.code == ReasonCode.BELOW_CAPABILITY_FLOOR, passed.reason
            assert passed.reason.values["floor"] == floor


def test_batch_thresholds_come_from_config(models: list[Model], scoring: ScoringConfig) -> None:
    thresholds = scoring.batch_thresholds.model_copy(
        update={"maximize_value_if_affordable": 50, "minimize_cost_api_overflow": 50}
    )
    config = scoring.model_copy(update={"batch_thresholds": thresholds})
    tasks = [task_for(*AT_45, id="t45")]
    assert picks(plan_for(tasks, build_ledger(), models, config, "maximize_value")) == {
        "t45": (None, None)
    }
    assert picks(plan_for(tasks, build_ledger(), models, config, "minimize_cost")) == {
        "t45": (None, None)
    }
    assert picks(
        plan_for(tasks, build_ledger(), models, config, "maximize_subscription_usage")
    ) == {"t45": ("glm-4.7", "api")}
    assert picks(plan_for(tasks, build_ledger(), models, scoring, "maximize_value")) == {
        "t45": ("glm-4.7", "api")
    }

    # A threshold below the lowest band: select_model's floor (40) still defers.
    low = scoring.batch_thresholds.model_copy(update={"maximize_value_if_affordable": 20})
    lowered = scoring.model_copy(update={"batch_thresholds": low})
    tiny = task_for("P4", "simple", 0, "frontend", "sandbox", id="tiny")  # 1.75
    (deferred,) = plan_for([tiny], build_ledger(), models, lowered, "maximize_value").decisions
    assert deferred.model is None
    assert deferred.reason == reason(ReasonCode.LOW_VALUE, value=deferred.value_score, floor=40)

    # The deferral names the threshold that set the task aside, not the band floor.
    for strategy in ("maximize_value", "minimize_cost"):
        (deferred,) = plan_for(tasks, build_ledger(), models, config, strategy).decisions
        assert deferred.reason == reason(ReasonCode.LOW_VALUE, value=45.0, floor=50)
        assert deferred.band == "standard"
        assert deferred.unblock_hint is not None
        assert deferred.unblock_hint.code == ReasonCode.VALUE_LEVERS
        assert deferred.unblock_hint.values["floor"] == 50


# --- blocking within a batch, helpers, errors ----------------------------------------


# optimal assigns low-value work when it can be paid for: tests/core/test_optimal.py
@pytest.mark.parametrize("strategy", GREEDY_STRATEGIES)
def test_a_task_others_depend_on_gets_the_blocking_bonus(
    models: list[Model], scoring: ScoringConfig, strategy: str
) -> None:
    base = task_for("P1", "moderate", 0, "frontend", "development", id="base")  # 30
    child = build_task(id="child", dependencies=["base"])
    alone = plan_for([base], build_ledger(), models, scoring, strategy).decisions[0]
    together = plan_for([base, child], build_ledger(), models, scoring, strategy).decisions[0]
    assert alone.value_score == 30
    assert alone.deferred
    assert together.value_score == 42
    assert together.breakdown.time_bonus == 12
    assert together.breakdown.time_reason.code == ReasonCode.BLOCKS_OTHERS
    assert not together.deferred


def test_try_subscription_models(models: list[Model], scoring: ScoringConfig) -> None:
    high = assess(seed_task(), scoring, NOW)
    low = assess(task_for(*BELOW_40), scoring, NOW)
    found = try_subscription_models(high, build_ledger(), models, scoring)
    assert found is not None and found.name == "sonnet-4.5"
    assert (
        try_subscription_models(high, build_ledger(claude_used=5_000_000), models, scoring) is None
    )
    # the band still applies: no subscription model is in the budget tier
    assert try_subscription_models(low, build_ledger(), models, scoring) is None


def test_unknown_strategy_is_refused(models: list[Model], scoring: ScoringConfig) -> None:
    with pytest.raises(ValueError, match="unknown strategy 'cheapest'"):
        plan_for([seed_task()], build_ledger(), models, scoring, "cheapest")


def test_duplicate_ids_are_refused(models: list[Model], scoring: ScoringConfig) -> None:
    with pytest.raises(ValueError, match="'a' appears more than once"):
        plan_for(
            [seed_task(id="a"), seed_task(id="a")], build_ledger(), models, scoring, "minimize_cost"
        )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_empty_batch(models: list[Model], scoring: ScoringConfig, strategy: str) -> None:
    plan = plan_for([], build_ledger(), models, scoring, strategy)
    assert plan.decisions == []


# optimal fits this whole batch on budget models: tests/core/test_optimal.py
@pytest.mark.parametrize("strategy", GREEDY_STRATEGIES)
def test_batch_charges_exactly_its_decisions(
    models: list[Model], scoring: ScoringConfig, strategy: str
) -> None:
    specs: list[tuple[Any, ...]] = [AT_90_INFRA, AT_75, AT_60, AT_45, AT_40, BELOW_40]
    tasks = [task_for(*spec, id=f"t{i}") for i, spec in enumerate(specs * 3)]
    start = build_ledger(claude_used=5_000_000 - 200_000, budget=1.0)
    plan = plan_for(tasks, start, models, scoring, strategy)
    tokens = sum(
        d.payment.tokens
        for d in plan.decisions
        if d.payment is not None and d.payment.kind == "subscription"
    )
    spend = sum(
        d.payment.cost_usd
        for d in plan.decisions
        if d.payment is not None and d.payment.kind == "api"
    )
    assert claude_used(plan.ledger) == claude_used(start) + tokens <= 5_000_000
    assert plan.ledger.budget.spent_usd == pytest.approx(spend)
    assert spend <= 1.0 + 1e-9
    assert any(d.deferred for d in plan.decisions)
    assert any(not d.deferred for d in plan.decisions)
