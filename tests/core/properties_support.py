"""Hypothesis strategies over tasks, ledgers and batches, and the checks the
property tests share (tests/core/test_properties.py, test_optimal.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from model_assigner.core.config import EngineConfig
from model_assigner.core.quota import (
    COST_EPSILON,
    Ledger,
    calculate_cost,
    remaining_daily,
    remaining_monthly,
)
from model_assigner.core.types import ApiBudget, Decision, Subscription, Task
from tests.helpers import (
    NOW,
    SEED_RESET,
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
