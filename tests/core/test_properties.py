"""Properties over generated tasks and ledgers (hypothesis)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_assigner.core.batch import optimize_task_assignments
from model_assigner.core.catalog import filter_models, fits_window
from model_assigner.core.config import EngineConfig
from model_assigner.core.quota import (
    COST_EPSILON,
    Ledger,
    calculate_cost,
    payment_for,
    remaining_daily,
    remaining_monthly,
    update_quota_tracking,
)
from model_assigner.core.reasons import ReasonCode
from model_assigner.core.scoring import calculate_task_value, clamp
from model_assigner.core.selection import bands_below, select_model
from model_assigner.core.types import STRATEGIES, ApiBudget, Decision, Subscription, Task
from tests.helpers import (
    NOW,
    SEED_COMPLEXITY,
    SEED_DEFAULT_PRIORITY,
    SEED_DOMAIN,
    SEED_PRIORITY,
    SEED_RESET,
    SEED_RISK,
)

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

LABELS = [
    "k8s",
    "ci/cd",
    "api",
    "auth",
    "ml",
    "data",
    "ui",
    "react",
    "qa",
    "e2e",
    "docs",
    "readme",
    "production",
    "hotfix",
    "security",
    "staging",
    "integration",
    "experimental",
    "prototype",
    "sandbox",
    "learning",
    "bug",
    "Feature",
]
WORDS = [
    "fix",
    "the",
    "refactor",
    "migrate",
    "redesign",
    "architecture",
    "breaking change",
    "production",
    "migration",
    "experiment",
    "prototype",
    "12 files",
    "3 files",
    "600 lines",
    "1,501 LOC",
    "src/app.py",
    "docs/guide.md",
    "immigration",
    "reproduction",
]
PATHS = [
    "",
    "/nonexistent/infra/app",
    "/nonexistent/api-server",
    "/nonexistent/web/ui",
    "/nonexistent/repo/main",
    "/nonexistent/prod",
    "/nonexistent/build",
]


@st.composite
def tasks(draw: st.DrawFn, task_id: str = "t") -> Task:
    hours = draw(st.none() | st.floats(min_value=-200, max_value=2000, allow_nan=False))
    return Task(
        id=task_id,
        title="generated",
        description=" ".join(draw(st.lists(st.sampled_from(WORDS), max_size=5))),
        priority=draw(st.sampled_from(["P0", "P1", "P2", "P3", "P4", None])),
        labels=draw(st.lists(st.sampled_from(LABELS), max_size=4)),
        estimated_files=draw(st.integers(0, 30)),
        estimated_loc=draw(st.integers(0, 3000)),
        workspace_path=draw(st.sampled_from(PATHS)),
        workspace_files=draw(st.none() | st.integers(0, 300)),
        deadline=None if hours is None else NOW + timedelta(hours=hours),
        blocks=draw(st.lists(st.just("other"), max_size=1)),
    )


@st.composite
def subscriptions(draw: st.DrawFn, family: str) -> Subscription:
    monthly = draw(st.none() | st.integers(0, 600_000))
    daily = draw(st.none() | st.integers(0, 400_000))
    return Subscription(
        model_family=family,
        token_limit_monthly=monthly,
        token_limit_daily=daily,
        tokens_used_month=draw(st.integers(0, monthly if monthly is not None else 10**7)),
        tokens_used_today=draw(st.integers(0, daily if daily is not None else 10**6)),
        reset_date=SEED_RESET,
    )


@st.composite
def ledgers(draw: st.DrawFn) -> Ledger:
    families = draw(st.lists(st.sampled_from(["claude", "openai", "deepseek"]), unique=True))
    limit = draw(st.sampled_from([0.0, 0.005, 0.05, 0.5, 5.0, 100.0]))
    spent = draw(st.floats(min_value=0, max_value=limit, allow_nan=False))
    return Ledger(
        [draw(subscriptions(family)) for family in families],
        ApiBudget(monthly_limit_usd=limit, spent_usd=spent, reset_date=SEED_RESET),
    )


@st.composite
def batches(draw: st.DrawFn) -> list[Task]:
    count = draw(st.integers(1, 8))
    made = [draw(tasks(task_id=f"t{i}")) for i in range(count)]
    ids = [t.id for t in made]
    return [
        t.model_copy(update={"dependencies": draw(st.lists(st.sampled_from(ids), max_size=2))})
        for t in made
    ]


def snapshot(ledger: Ledger) -> list[Any]:
    return [s.model_dump() for s in ledger.subscriptions] + [ledger.budget.model_dump()]


def within_limits(ledger: Ledger) -> bool:
    for sub in ledger.subscriptions:
        if remaining_daily(sub) < 0 or remaining_monthly(sub) < 0:
            return False
    return ledger.budget.spent_usd <= ledger.budget.monthly_limit_usd + COST_EPSILON


def check_payment(decision: Decision, ledger: Ledger, engine_config: EngineConfig) -> None:
    """An assigned decision is paid by its model's subscription with room, or
    by the API within the budget; a deferred one by nothing."""
    if decision.model is None:
        assert decision.payment is None
        return
    model = engine_config.model_named(decision.model)
    assert model is not None
    payment = decision.payment
    assert payment is not None
    assert payment.tokens == decision.tokens.total
    if payment.kind == "subscription":
        assert payment.family == model.family
        sub = ledger.subscription_for(model.family)
        assert sub is not None
        assert payment.tokens <= remaining_daily(sub)
        assert payment.tokens <= remaining_monthly(sub)
    else:
        cost = calculate_cost(model, decision.tokens.input_tokens, decision.tokens.output_tokens)
        assert payment.cost_usd == cost
        assert cost <= ledger.budget.monthly_limit_usd - ledger.budget.spent_usd + COST_EPSILON


@PROPERTY_SETTINGS
@given(task=tasks())
def test_score_is_the_seeds_formula_within_0_and_100(
    engine_config: EngineConfig, task: Task
) -> None:
    b = calculate_task_value(task, engine_config.scoring, NOW)
    assert 0 <= b.value_score <= 100
    assert b.priority_weight == SEED_PRIORITY.get(task.priority or "", SEED_DEFAULT_PRIORITY)
    assert b.complexity_multiplier == SEED_COMPLEXITY[b.complexity]
    assert b.domain_modifier == SEED_DOMAIN[b.domain]
    assert b.risk_modifier == SEED_RISK[b.risk]
    assert b.time_bonus in (0, 5, 8, 12, 15)
    raw = (
        (b.priority_weight * b.complexity_multiplier + b.time_bonus)
        * b.domain_modifier
        * (b.risk_modifier)
    )
    assert abs(b.value_score - clamp(raw, 0, 100)) < 1e-9


@PROPERTY_SETTINGS
@given(
    task=tasks(), ledger=ledgers(), strategy=st.sampled_from(["maximize_value", "minimize_cost"])
)
def test_same_input_same_decision(
    engine_config: EngineConfig, task: Task, ledger: Ledger, strategy: str
) -> None:
    before = snapshot(ledger)
    first = select_model(task, ledger, engine_config.models, engine_config.scoring, NOW, strategy)
    second = select_model(
        task.model_copy(deep=True),
        ledger.copy(),
        engine_config.models,
        engine_config.scoring,
        NOW,
        strategy,
    )
    assert first.model_dump() == second.model_dump()
    assert snapshot(ledger) == before  # select_model charges nothing


@PROPERTY_SETTINGS
@given(
    task=tasks(), ledger=ledgers(), strategy=st.sampled_from(["maximize_value", "minimize_cost"])
)
def test_an_assignment_never_exceeds_a_quota_or_the_budget(
    engine_config: EngineConfig, task: Task, ledger: Ledger, strategy: str
) -> None:
    decision = select_model(
        task, ledger, engine_config.models, engine_config.scoring, NOW, strategy
    )
    check_payment(decision, ledger, engine_config)
    if decision.payment is not None:
        charged = ledger.copy()
        update_quota_tracking(charged, decision.payment)
        assert within_limits(charged)


@PROPERTY_SETTINGS
@given(
    task=tasks(), ledger=ledgers(), strategy=st.sampled_from(["maximize_value", "minimize_cost"])
)
def test_deferred_only_when_no_allowed_model_can_pay(
    engine_config: EngineConfig, task: Task, ledger: Ledger, strategy: str
) -> None:
    scoring = engine_config.scoring
    decision = select_model(task, ledger, engine_config.models, scoring, NOW, strategy)
    if decision.model is not None or decision.reason.code == ReasonCode.LOW_VALUE:
        return  # assigned, or deferred as low-value work
    band = next(b for b in scoring.bands() if b.name == decision.band)
    tiers = {tier for b in [band, *bands_below(band, scoring)] for tier in b.tiers}
    for model in filter_models(engine_config.models, tiers):
        tokens = decision.tokens
        if not fits_window(model, tokens):
            continue  # a window too small for a turn is never assigned (context_fit)
        assert payment_for(model, ledger, tokens.input_tokens, tokens.output_tokens) is None


@PROPERTY_SETTINGS
@given(batch=batches(), ledger=ledgers(), strategy=st.sampled_from(STRATEGIES))
def test_a_batch_never_spends_more_than_quotas_and_budget_allow(
    engine_config: EngineConfig, batch: list[Task], ledger: Ledger, strategy: str
) -> None:
    before = snapshot(ledger)
    plan = optimize_task_assignments(
        batch, ledger, engine_config.models, engine_config.scoring, NOW, strategy
    )
    assert snapshot(ledger) == before  # the caller's ledger is untouched
    assert [d.task_id for d in plan.decisions] == [t.id for t in batch]
    assert within_limits(plan.ledger)

    # the final ledger is the starting one plus exactly the decisions' payments
    tokens: dict[str, int] = {}
    spend = 0.0
    for decision in plan.decisions:
        assert (decision.model is None) == (decision.payment is None)
        payment = decision.payment
        if payment is None:
            continue
        if payment.kind == "subscription":
            assert payment.family is not None
            tokens[payment.family] = tokens.get(payment.family, 0) + payment.tokens
        else:
            spend += payment.cost_usd
    for start, end in zip(ledger.subscriptions, plan.ledger.subscriptions, strict=True):
        used = tokens.get(start.model_family, 0)
        assert end.tokens_used_month == start.tokens_used_month + used
        assert end.tokens_used_today == start.tokens_used_today + used
        if start.token_limit_monthly is not None:
            assert start.tokens_used_month + used <= start.token_limit_monthly
        if start.token_limit_daily is not None:
            assert start.tokens_used_today + used <= start.token_limit_daily
    assert set(tokens) <= {s.model_family for s in ledger.subscriptions}
    assert abs(plan.ledger.budget.spent_usd - (ledger.budget.spent_usd + spend)) < 1e-9
    assert ledger.budget.spent_usd + spend <= ledger.budget.monthly_limit_usd + 1e-9
