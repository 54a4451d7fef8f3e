"""Reported usage: list prices per token kind, model names, payers, periods."""

from __future__ import annotations

from datetime import timedelta

import pytest

from model_assigner.core.config import EngineConfig
from model_assigner.core.types import Payment
from model_assigner.core.usage import (
    EstimateSnapshot,
    TokenUsage,
    charge_in_periods,
    charge_run,
    list_price,
    normalize_model_name,
    resolve_model,
)
from tests.helpers import NOW, build_ledger


def estimate(model: str = "sonnet-4.5", kind: str = "subscription", tokens: int = 31_000,
             cost: float = 0.0) -> EstimateSnapshot:
    family = "claude" if kind == "subscription" else "zhipu"
    return EstimateSnapshot(
        model=model, payment=Payment(kind=kind, family=family, tokens=tokens, cost_usd=cost),
        charged_at=NOW, complexity="moderate", domain="backend", base_tokens=tokens,
    )


def test_cached_tokens_are_priced_as_the_vendor_prices_them(engine_config: EngineConfig) -> None:
    sonnet = engine_config.model_named("sonnet-4.5")
    assert sonnet is not None
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000,
                       cache_creation_input_tokens=1_000_000, cache_read_input_tokens=1_000_000)
    # $3 input + $15 output + $3.75 cache write + $0.30 cache read (Anthropic's list).
    assert list_price(sonnet, usage) == pytest.approx(22.05)
    gpt = engine_config.model_named("gpt-4-turbo")
    assert gpt is not None
    # No cache price in the catalog: cached input at the input price.
    assert list_price(gpt, TokenUsage(cache_read_input_tokens=1_000_000)) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("reported", "catalog"),
    [
        ("claude-sonnet-4-5-20250929", "sonnet-4.5"),
        ("claude-opus-4-6", "opus-4.6"),
        ("anthropic/claude-sonnet-4-5", "sonnet-4.5"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("deepseek-chat", "deepseek-v3"),
        ("glm-4.7", "glm-4.7"),
    ],
)
def test_agent_model_ids_resolve_to_the_catalog(
    engine_config: EngineConfig, reported: str, catalog: str
) -> None:
    found = resolve_model(engine_config.models, reported)
    assert found is not None and found.name == catalog


def test_unknown_model_ids_do_not_resolve(engine_config: EngineConfig) -> None:
    assert resolve_model(engine_config.models, "claude-haiku-4-5-20251001") is None
    assert normalize_model_name("claude-haiku-4-5-20251001") == "haiku-4.5"


def test_assigned_model_is_charged_to_its_reservations_payer(
    engine_config: EngineConfig,
) -> None:
    ledger = build_ledger()
    ledger.subscriptions[0].usage_day = NOW.date()
    charges = charge_run(estimate(), [TokenUsage(input_tokens=40_000, output_tokens=2_000)],
                         ledger, engine_config.models, NOW)
    assert [c.payment.label for c in charges] == ["subscription:claude"]
    assert ledger.subscriptions[0].tokens_used_month == 42_000
    assert ledger.subscriptions[0].tokens_used_today == 42_000
    assert ledger.budget.spent_usd == 0.0
    assert charges[0].note is None


def test_another_model_goes_to_that_models_payer_and_says_so(
    engine_config: EngineConfig,
) -> None:
    ledger = build_ledger()
    line = TokenUsage(model="gpt-4-turbo", input_tokens=100_000, output_tokens=10_000,
                      reported_cost_usd=1.2)
    charges = charge_run(estimate("glm-4.7", "api", 31_000, 0.02), [line], ledger,
                         engine_config.models, NOW)
    # No openai subscription: the API budget, at gpt-4-turbo's list price.
    assert charges[0].payment.kind == "api"
    assert charges[0].payment.cost_usd == pytest.approx(1.0 + 0.3)
    assert ledger.budget.spent_usd == pytest.approx(1.3)
    assert charges[0].reported_cost_usd == 1.2
    assert charges[0].note is not None and "not the assigned glm-4.7" in charges[0].note
    # A claude model on an API-paid estimate: the claude subscription pays.
    charges = charge_run(estimate("glm-4.7", "api", 31_000, 0.02),
                         [TokenUsage(model="claude-opus-4-6", input_tokens=5_000)], ledger,
                         engine_config.models, NOW)
    assert charges[0].payment.label == "subscription:claude"


def test_a_model_outside_the_catalog_is_paid_as_the_assigned_one(
    engine_config: EngineConfig,
) -> None:
    ledger = build_ledger()
    charges = charge_run(estimate(), [TokenUsage(model="claude-haiku-4-5", input_tokens=9)],
                         ledger, engine_config.models, NOW)
    assert charges[0].model == "sonnet-4.5"
    assert charges[0].note is not None and "not in the catalog" in charges[0].note


def test_a_run_is_charged_only_in_the_periods_it_ended_in() -> None:
    ledger = build_ledger(reset_date=NOW + timedelta(days=10))
    sub = ledger.subscriptions[0]
    sub.usage_day = NOW.date()
    payment = Payment(kind="subscription", family="claude", tokens=1000, cost_usd=0.0)
    charge_in_periods(ledger, payment, NOW - timedelta(days=1))  # yesterday, this month
    assert (sub.tokens_used_today, sub.tokens_used_month) == (0, 1000)
    charge_in_periods(ledger, payment, NOW - timedelta(days=40))  # before the last reset
    assert (sub.tokens_used_today, sub.tokens_used_month) == (0, 1000)
    api = Payment(kind="api", family="zhipu", tokens=1000, cost_usd=2.5)
    charge_in_periods(ledger, api, NOW - timedelta(days=40))
    assert ledger.budget.spent_usd == 0.0
    charge_in_periods(ledger, api, NOW)
    assert ledger.budget.spent_usd == 2.5
