"""Properties over generated tasks and ledgers (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from model_assigner.core.batch import optimize_task_assignments
from model_assigner.core.catalog import filter_models, fits_window
from model_assigner.core.config import EngineConfig
from model_assigner.core.quota import (
    Ledger,
    payment_for,
    update_quota_tracking,
)
from model_assigner.core.reasons import ReasonCode
from model_assigner.core.scoring import calculate_task_value, clamp
from model_assigner.core.selection import bands_below, select_model
from model_assigner.core.types import STRATEGIES, Task
from tests.core.properties_support import (
    PROPERTY_SETTINGS,
    batches,
    check_payment,
    ledgers,
    snapshot,
    tasks,
    within_limits,
)
from tests.helpers import (
    NOW,
    SEED_COMPLEXITY,
    SEED_DEFAULT_PRIORITY,
    SEED_DOMAIN,
    SEED_PRIORITY,
    SEED_RISK,
)


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
