"""Phase 3: select_model's bands, tiers, preferred orders, payment and fallbacks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from model_assigner.core.assessment import assess
from model_assigner.core.config import ScoringConfig, ValueBand
from model_assigner.core.quota import Ledger
from model_assigner.core.reasons import Lever, ReasonCode, reason
from model_assigner.core.selection import band_for, bands_below, preferred_order_for, select_model
from model_assigner.core.types import ApiBudget, Decision, Model, Subscription, Task
from tests.helpers import NOW, SEED_RESET, build_ledger, seed_task, task_for


def decide(
    task: Task,
    ledger: Ledger,
    models: list[Model],
    scoring: ScoringConfig,
    strategy: str = "maximize_value",
    **kwargs: Any,
) -> Decision:
    return select_model(task, ledger, models, scoring, NOW, strategy, **kwargs)


def api_cost(prices: tuple[float, float], tokens: tuple[int, int]) -> float:
    return (tokens[0] * prices[0] + tokens[1] * prices[1]) / 1e6


def band(scoring: ScoringConfig, name: str) -> ValueBand:
    return next(b for b in scoring.bands() if b.name == name)


def openai_subscription() -> Subscription:
    return Subscription(model_family="openai", token_limit_monthly=1_000_000, reset_date=SEED_RESET)


# Tasks at and just below each band boundary (see test_scoring for the values).
AT_90 = ("P0", "complex", 15, "infrastructure", "development")  # 90.0
BELOW_90 = ("P0", "complex", 8, "infrastructure", "staging")  # 89.76
AT_75 = ("P0", "complex", 15, "frontend", "development")  # 75.0
BELOW_75 = ("P1", "highly_complex", 12, "documentation", "production")  # 74.88
AT_60 = ("P0", "complex", 0, "frontend", "development")  # 60.0
AT_60_INFRA = ("P1", "complex", 5, "infrastructure", "development")  # 60.0
BELOW_60 = ("P0", "highly_complex", 15, "testing", "sandbox")  # 59.85
AT_40 = ("P0", "moderate", 0, "frontend", "development")  # 40.0
BELOW_40 = ("P1", "complex", 12, "frontend", "sandbox")  # 39.9


# --- the seed's example -----------------------------------------------------------


def test_seed_example_selects_sonnet(models: list[Model], scoring: ScoringConfig) -> None:
    ledger = build_ledger(claude_used=1_200_000)  # 1.2M of 5M used
    decision = decide(seed_task(), ledger, models, scoring)

    assert decision.model == "sonnet-4.5"
    assert decision.value_score == pytest.approx(78.65, abs=1e-9)
    assert f"{decision.value_score:.1f}/100" == "78.7/100"
    assert decision.band == "high"
    assert decision.tokens.total == 31_000
    assert decision.value_density == pytest.approx(78.65 / 31)
    assert decision.paid_by == "subscription:claude"
    assert decision.payment is not None
    assert decision.payment.remaining_monthly == 5_000_000 - 1_200_000 - 31_000
    assert decision.cost_usd == pytest.approx(api_cost((3.0, 15.0), (27500, 3500)))  # list price
    assert decision.passed_over == []
    assert decision.reason == reason(
        ReasonCode.CHOSEN_IN_BAND, value=decision.value_score, band="high", band_min=75,
        model="sonnet-4.5", position=1, payer="subscription", family="claude",
    )


def test_seed_example_verbatim(models: list[Model], scoring: ScoringConfig) -> None:
    """The seed's Implementation Example as written: naive datetimes, its
    subscription and its call with the default quota strategy."""
    now = datetime(2026, 2, 10, 12, 0)  # the seed uses a naive datetime.now()
    task = Task(
        id="po-123",
        title="Fix authentication vulnerability",
        description="Critical security fix in JWT validation",
        priority="P0",
        labels=["security", "backend", "hotfix"],
        estimated_files=3,
        estimated_loc=150,
        dependencies=[],
        workspace_path="/home/coder/api-server",
        deadline=now + timedelta(hours=2),
    )
    subscriptions = [
        Subscription(
            model_family="claude",
            monthly_cost=20.0,
            token_limit_daily=None,
            token_limit_monthly=5_000_000,
            tokens_used_today=0,
            tokens_used_month=1_200_000,
            reset_date=datetime(2026, 3, 1),
        )
    ]
    ledger = Ledger(
        subscriptions, ApiBudget(monthly_limit_usd=100, reset_date=datetime(2026, 3, 1))
    )
    decision = select_model(task, ledger, models, scoring, now)
    assert decision.model == "sonnet-4.5"
    assert f"Task value: {decision.value_score:.1f}/100" == "Task value: 78.7/100"


def test_select_model_charges_nothing(models: list[Model], scoring: ScoringConfig) -> None:
    ledger = build_ledger(claude_used=1_200_000, spent=3.0)
    decide(seed_task(), ledger, models, scoring)
    claude = ledger.subscription_for("claude")
    assert claude is not None and claude.tokens_used_month == 1_200_000
    assert ledger.budget.spent_usd == 3.0


# --- value bands -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (100, "critical"),
        (90, "critical"),
        (89.999999, "high"),
        (75, "high"),
        (74.999999, "medium-high"),
        (60, "medium-high"),
        (59.999999, "standard"),
        (40, "standard"),
        (39.999999, None),
        (0, None),
    ],
)
def test_band_for(scoring: ScoringConfig, value: float, name: str | None) -> None:
    found = band_for(value, scoring)
    assert (found.name if found else None) == name


def test_bands_below(scoring: ScoringConfig) -> None:
    assert [b.name for b in bands_below(band(scoring, "critical"), scoring)] == [
        "high",
        "medium-high",
        "standard",
        "low",
    ]
    assert [b.name for b in bands_below(band(scoring, "standard"), scoring)] == ["low"]
    assert bands_below(band(scoring, "low"), scoring) == []


@pytest.mark.parametrize(
    ("spec", "value", "band_name", "model", "paid_by"),
    [
        (AT_90, 90.0, "critical", "opus-4.6", "subscription:claude"),
        (BELOW_90, 89.76, "high", "sonnet-4.5", "subscription:claude"),
        (AT_75, 75.0, "high", "sonnet-4.5", "subscription:claude"),
        (BELOW_75, 74.88, "medium-high", "deepseek-v3", "api"),
        (AT_60, 60.0, "medium-high", "deepseek-v3", "api"),
        (BELOW_60, 59.85, "standard", "glm-4.7", "api"),
        (AT_40, 40.0, "standard", "glm-4.7", "api"),
        (BELOW_40, 39.9, "low", None, None),
    ],
)
def test_value_band_boundaries(
    models: list[Model],
    scoring: ScoringConfig,
    spec: tuple[Any, ...],
    value: float,
    band_name: str,
    model: str | None,
    paid_by: str | None,
) -> None:
    decision = decide(task_for(*spec), build_ledger(), models, scoring)
    assert decision.value_score == pytest.approx(value, abs=1e-9)
    assert decision.band == band_name
    assert decision.model == model
    assert decision.paid_by == paid_by


def test_band_numbers_come_from_config(models: list[Model], scoring: ScoringConfig) -> None:
    bands = [
        b.model_copy(update={"min_value": 91}) if b.name == "critical" else b
        for b in scoring.value_bands
    ]
    config = scoring.model_copy(update={"value_bands": bands})
    assert decide(task_for(*AT_90), build_ledger(), models, config).band == "high"


# --- low value ---------------------------------------------------------------------


def test_low_value_is_deferred_under_maximize_value(
    models: list[Model], scoring: ScoringConfig
) -> None:
    decision = decide(task_for(*BELOW_40), build_ledger(), models, scoring, "maximize_value")
    assert decision.deferred
    assert decision.payment is None and decision.cost_usd == 0
    assert decision.band == "low"
    assert decision.reason == reason(ReasonCode.LOW_VALUE, value=decision.value_score, floor=40)
    assert decision.unblock_hint is not None


@pytest.mark.parametrize("strategy", ["minimize_cost", "maximize_subscription_usage"])
@pytest.mark.parametrize("spec", [BELOW_40, ("P4", "simple", 0, "documentation", "sandbox")])
def test_low_value_uses_the_budget_tier_otherwise(
    models: list[Model], scoring: ScoringConfig, strategy: str, spec: tuple[Any, ...]
) -> None:
    decision = decide(task_for(*spec), build_ledger(), models, scoring, strategy)
    assert decision.model == "glm-4.7"
    assert decision.band == "low"
    assert decision.paid_by == "api"


def test_low_value_budget_tier_defers_when_nothing_pays(
    models: list[Model], scoring: ScoringConfig
) -> None:
    decision = decide(task_for(*BELOW_40), build_ledger(budget=0), models, scoring, "minimize_cost")
    assert decision.deferred
    assert decision.reason.code == ReasonCode.UNAFFORDABLE
    assert decision.reason.values["tiers"] == ("budget",)


# --- the claude-quota branch of the 75 band ------------------------------------------


@pytest.mark.parametrize(
    ("ledger_args", "model", "paid_by"),
    [
        ({"claude_used": 5_000_000 - 31_000}, "sonnet-4.5", "subscription:claude"),
        ({"claude_used": 5_000_000 - 30_999}, "gpt-4-turbo", "api"),
        ({"claude_daily": 31_000}, "sonnet-4.5", "subscription:claude"),
        ({"claude_daily": 31_000, "claude_today": 1}, "gpt-4-turbo", "api"),
        ({"claude": False}, "gpt-4-turbo", "api"),
        # no claude quota and gpt-4-turbo ($0.38) over budget: sonnet by API ($0.135)
        ({"claude_used": 5_000_000, "budget": 0.2}, "sonnet-4.5", "api"),
    ],
)
def test_claude_quota_branch(
    models: list[Model],
    scoring: ScoringConfig,
    ledger_args: dict[str, Any],
    model: str,
    paid_by: str,
) -> None:
    decision = decide(seed_task(), build_ledger(**ledger_args), models, scoring)
    assert decision.band == "high"
    assert decision.model == model
    assert decision.paid_by == paid_by


def test_claude_quota_branch_preferred_orders(models: list[Model], scoring: ScoringConfig) -> None:
    high = band(scoring, "high")
    claude = build_ledger().subscriptions
    assert preferred_order_for(high, claude, "backend", 80, models, scoring) == [
        "sonnet-4.5",
        "opus-4.6",
        "gpt-4-turbo",
    ]
    assert preferred_order_for(high, [], "backend", 80, models, scoring) == [
        "gpt-4-turbo",
        "sonnet-4.5",
        "deepseek-v3",
    ]


def test_without_quota_gpt4_turbo_costs_the_api(
    models: list[Model], scoring: ScoringConfig
) -> None:
    decision = decide(seed_task(), build_ledger(claude_used=5_000_000), models, scoring)
    assert decision.model == "gpt-4-turbo"
    assert decision.payment is not None
    assert decision.payment.cost_usd == pytest.approx(api_cost((10.0, 30.0), (27500, 3500)))
    assert decision.payment.remaining_budget_usd == pytest.approx(100 - 0.38)


# --- the infrastructure override -----------------------------------------------------


def test_infrastructure_override_puts_claude_first(
    models: list[Model], scoring: ScoringConfig
) -> None:
    infra = decide(task_for(*AT_60_INFRA), build_ledger(), models, scoring)
    other = decide(task_for(*AT_60), build_ledger(), models, scoring)
    assert infra.value_score == other.value_score == 60.0
    assert infra.band == other.band == "medium-high"
    assert infra.model == "sonnet-4.5"
    assert infra.paid_by == "subscription:claude"
    assert other.model == "deepseek-v3"


@pytest.mark.parametrize(
    ("domain", "value", "order"),
    [
        ("infrastructure", 60, ["sonnet-4.5", "deepseek-v3", "qwen2.5-coder"]),
        ("infrastructure", 100, ["sonnet-4.5", "deepseek-v3", "qwen2.5-coder"]),
        ("infrastructure", 59.99, ["deepseek-v3", "qwen2.5-coder", "sonnet-4.5"]),
        ("backend", 60, ["deepseek-v3", "qwen2.5-coder", "sonnet-4.5"]),
    ],
)
def test_infrastructure_override_threshold(
    models: list[Model], scoring: ScoringConfig, domain: str, value: float, order: list[str]
) -> None:
    medium_high = band(scoring, "medium-high")
    assert preferred_order_for(medium_high, [], domain, value, models, scoring) == order


def test_infrastructure_override_without_claude_quota(
    models: list[Model], scoring: ScoringConfig
) -> None:
    # high band, no claude room: [gpt-4-turbo, sonnet, deepseek] -> sonnet first
    decision = decide(task_for(*BELOW_90), build_ledger(claude_used=5_000_000), models, scoring)
    assert decision.band == "high"
    assert decision.model == "sonnet-4.5"
    assert decision.paid_by == "api"
    assert decision.cost_usd == pytest.approx(api_cost((3.0, 15.0), (84_000, 10_000)))


def test_infrastructure_override_threshold_from_config(
    models: list[Model], scoring: ScoringConfig
) -> None:
    overrides = [o.model_copy(update={"min_value": 61}) for o in scoring.domain_overrides]
    config = scoring.model_copy(update={"domain_overrides": overrides})
    assert decide(task_for(*AT_60_INFRA), build_ledger(), models, config).model == "deepseek-v3"


# --- tiers, affordability, fallback, downgrade, deferral ---------------------------


def test_tier_filter_passes_over_a_preferred_model_outside_the_band(
    models: list[Model], scoring: ScoringConfig
) -> None:
    # critical: opus ($0.67) and gpt-4 ($3.12) are over the $0.50 budget, claude
    # is full, and sonnet is preferred but not premium: downgrade to sonnet.
    decision = decide(
        task_for(*AT_90), build_ledger(claude_used=5_000_000, budget=0.5), models, scoring
    )
    assert decision.band == "critical"
    assert decision.model == "sonnet-4.5"
    assert decision.paid_by == "api"
    assert decision.reason == reason(
        ReasonCode.DOWNGRADED, value=decision.value_score, band="critical", tiers=("premium",),
        model="sonnet-4.5", tier="mid-premium",
    )
    reasons = {p.model: p.reason for p in decision.passed_over}
    assert reasons["sonnet-4.5"] == reason(
        ReasonCode.TIER_NOT_IN_BAND, tier="mid-premium", band="critical", tiers=("premium",)
    )
    opus = reasons["opus-4.6"]
    assert opus.code == ReasonCode.CANNOT_PAY
    assert (opus.values["family"], opus.values["quota_left"], opus.values["needed"]) == (
        "claude", 0, 94_000
    )
    assert round(opus.values["api_cost"], 2) == 0.67 and opus.values["budget_left"] == 0.5
    assert "gpt-4" in reasons


def test_no_downgrade_when_config_forbids_it(models: list[Model], scoring: ScoringConfig) -> None:
    config = scoring.model_copy(update={"allow_downgrade": False})
    decision = decide(
        task_for(*AT_90), build_ledger(claude_used=5_000_000, budget=0.5), models, config
    )
    assert decision.deferred
    assert decision.band == "critical"


@pytest.mark.parametrize(("slack", "model"), [(0.0, "glm-4.7"), (1e-6, "qwen2.5-coder")])
def test_affordability_at_the_budget_boundary(
    models: list[Model], scoring: ScoringConfig, slack: float, model: str
) -> None:
    glm_cost = api_cost((0.60, 2.20), (27500, 3500))
    ledger = build_ledger(budget=glm_cost - slack)
    decision = decide(task_for(*AT_40), ledger, models, scoring)
    assert decision.band == "standard"
    assert decision.model == model
    if slack:
        assert [p.model for p in decision.passed_over] == ["glm-4.7"]
        assert decision.reason.code == ReasonCode.CHOSEN_IN_BAND
        assert decision.reason.values["position"] == 2


def test_fallback_to_the_cheapest_affordable_candidate(
    models: list[Model], scoring: ScoringConfig
) -> None:
    # medium-high prefers deepseek, qwen, sonnet: none payable (no budget, claude
    # full, qwen not of the band's tiers); gpt-4-turbo is, by an openai plan.
    ledger = build_ledger(claude_used=5_000_000, budget=0, extra=[openai_subscription()])
    decision = decide(task_for(*AT_60), ledger, models, scoring)
    assert decision.band == "medium-high"
    assert decision.model == "gpt-4-turbo"
    assert decision.paid_by == "subscription:openai"
    assert decision.reason == reason(
        ReasonCode.CHEAPEST_PAYABLE, value=decision.value_score, band="medium-high",
        tiers=("mid-premium", "mid-range"),
    )
    assert [p.model for p in decision.passed_over] == ["deepseek-v3", "qwen2.5-coder", "sonnet-4.5"]


@pytest.mark.parametrize(
    ("budget", "model"),
    [
        (0.2, "sonnet-4.5"),  # high band, by API
        (0.1, "deepseek-v3"),  # down to medium-high
        (0.009, "qwen2.5-coder"),  # down to standard (glm is $0.0242)
    ],
)
def test_downgrade_to_lower_tiers(
    models: list[Model], scoring: ScoringConfig, budget: float, model: str
) -> None:
    decision = decide(
        seed_task(), build_ledger(claude_used=5_000_000, budget=budget), models, scoring
    )
    assert decision.band == "high"
    assert decision.model == model
    assert decision.paid_by == "api"
    assert decision.payment is not None and decision.payment.cost_usd <= budget


@pytest.mark.parametrize("spec", [AT_90, AT_75, AT_60, AT_40, BELOW_40])
def test_deferred_when_nothing_can_pay(
    models: list[Model], scoring: ScoringConfig, spec: tuple[Any, ...]
) -> None:
    ledger = build_ledger(claude_used=5_000_000, budget=0)
    decision = decide(task_for(*spec), ledger, models, scoring, "minimize_cost")
    assert decision.deferred
    assert decision.payment is None
    assert decision.reason.code == ReasonCode.UNAFFORDABLE
    assert decision.unblock_hint == reason(
        ReasonCode.QUOTA_RESETS, subscriptions=("2026-03-01",), budget="2026-03-01"
    )


def test_deferral_reason_summarises_the_quota(models: list[Model], scoring: ScoringConfig) -> None:
    ledger = build_ledger(claude_used=5_000_000 - 1000, budget=0)
    decision = decide(seed_task(), ledger, models, scoring)
    assert decision.deferred and decision.band == "high"
    assert decision.reason == reason(
        ReasonCode.UNAFFORDABLE, tiers=("premium", "mid-premium"), tokens=31_000,
        quotas=(("claude", 1000),), budget_left=0.0,
    )


def test_unlimited_subscription_pays_anything(models: list[Model], scoring: ScoringConfig) -> None:
    ledger = build_ledger(claude_monthly=None, claude_used=10**12, budget=0)
    decision = decide(task_for(*AT_90), ledger, models, scoring)
    assert decision.model == "opus-4.6"
    assert decision.payment is not None
    assert decision.payment.remaining_monthly is None


def test_a_preferred_model_missing_from_the_catalog_is_passed_over(
    models: list[Model], scoring: ScoringConfig
) -> None:
    # load_engine_config refuses this (test_loader); select_model still copes.
    bands = [
        b.model_copy(update={"preferred": ["gpt-5", *b.preferred]}) for b in scoring.value_bands
    ]
    config = scoring.model_copy(update={"value_bands": bands})
    task = task_for("P0", "highly_complex", 15, "frontend", "development")  # 95
    decision = decide(task, build_ledger(), models, config)
    assert decision.model == "opus-4.6"
    assert decision.passed_over[0].model == "gpt-5"
    assert decision.passed_over[0].reason == reason(ReasonCode.NOT_IN_CATALOG)


def test_blocking_lifts_a_task_into_a_band(models: list[Model], scoring: ScoringConfig) -> None:
    task = task_for("P1", "moderate", 0, "frontend", "development")  # 30
    assert decide(task, build_ledger(), models, scoring).deferred
    lifted = decide(task, build_ledger(), models, scoring, depended_on={task.id})
    assert lifted.value_score == 42
    assert lifted.model == "glm-4.7"


def test_same_input_same_decision(models: list[Model], scoring: ScoringConfig) -> None:
    first = decide(seed_task(), build_ledger(claude_used=4_990_000), models, scoring)
    second = decide(seed_task(), build_ledger(claude_used=4_990_000), models, scoring)
    assert first.model_dump() == second.model_dump()


def test_deferral_hint_names_only_the_levers_left(
    models: list[Model], scoring: ScoringConfig
) -> None:
    """(20 x 1.5 + 0) x 1.1 = 33: P0 (66), a deadline now (49.5) or a task
    depending on it (46.2) would each lift it past 40. Already blocking,
    a P3 scores (10 x 1.5 + 12) x 1.1 = 29.7: only P0 (79.2) would; a deadline
    now (33) would not, and blocking it already is."""
    plain = decide(task_for("P2", "complex", 0, "backend", "development"), build_ledger(),
                   models, scoring, "maximize_value")
    assert plain.deferred and plain.unblock_hint == reason(
        ReasonCode.VALUE_LEVERS, floor=40, levers=(Lever.PRIORITY, Lever.DEADLINE,
                                                   Lever.DEPENDANTS),
    )
    blocking = task_for("P3", "complex", 0, "backend", "development", blocks=["repo#2"])
    decision = decide(blocking, build_ledger(), models, scoring, "maximize_value")
    assert decision.deferred and decision.breakdown.time_bonus == scoring.blocking_time_bonus
    assert decision.unblock_hint == reason(ReasonCode.VALUE_LEVERS, floor=40,
                                           levers=(Lever.PRIORITY,))


def test_deferral_hint_says_when_no_label_or_deadline_can_help(
    models: list[Model], scoring: ScoringConfig
) -> None:
    """A simple docs task in a sandbox: even P0, due now, it scores under 40,
    so the hint does not send anyone to relabel it."""
    task = task_for("P4", "simple", 0, "documentation", "sandbox")
    decision = decide(task, build_ledger(), models, scoring, "maximize_value")
    assert decision.deferred and decision.unblock_hint is not None
    assert decision.unblock_hint.code == ReasonCode.VALUE_CAPPED
    assert decision.unblock_hint.values["floor"] == 40
    cap = decision.unblock_hint.values["cap"]
    assert cap < 40
    # The cap is the value the task would have with the best label and deadline.
    best = task_for("P0", "simple", 15, "documentation", "sandbox")
    assert assess(best, scoring, NOW).value == pytest.approx(cap, abs=0.05)
