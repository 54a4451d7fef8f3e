"""The catalog: the seven models, tier filters, look-ups, cheapest capable."""

from __future__ import annotations

import pytest

from model_assigner.core.catalog import (
    filter_models,
    find_model,
    get_cheapest_capable_model,
    price_key,
)
from model_assigner.core.types import Model
from tests.helpers import build_ledger

SEED_MODELS = {
    "opus-4.6",
    "gpt-4",
    "sonnet-4.5",
    "gpt-4-turbo",
    "deepseek-v3",
    "qwen2.5-coder",
    "glm-4.7",
}


def names(models: list[Model]) -> set[str]:
    return {model.name for model in models}


def test_catalog_holds_the_seeds_seven_models(models: list[Model]) -> None:
    assert names(models) == SEED_MODELS
    for model in models:
        assert model.cost_per_mtok_input > 0 and model.cost_per_mtok_output > 0
        assert set(model.capabilities) >= {"infrastructure", "backend", "frontend", "testing"}


@pytest.mark.parametrize(
    ("tiers", "expected"),
    [
        (["premium"], {"opus-4.6", "gpt-4"}),
        (["mid-premium"], {"sonnet-4.5", "gpt-4-turbo"}),
        (["mid-range"], {"deepseek-v3"}),
        (["budget"], {"qwen2.5-coder", "glm-4.7"}),
        (["premium", "mid-premium"], {"opus-4.6", "gpt-4", "sonnet-4.5", "gpt-4-turbo"}),
        (["mid-premium", "mid-range"], {"sonnet-4.5", "gpt-4-turbo", "deepseek-v3"}),
        (["mid-range", "budget"], {"deepseek-v3", "qwen2.5-coder", "glm-4.7"}),
        ([], set()),
    ],
)
def test_filter_models_by_tier(models: list[Model], tiers: list[str], expected: set[str]) -> None:
    assert names(filter_models(models, tiers)) == expected


def test_find_model(models: list[Model]) -> None:
    found = find_model(models, "sonnet-4.5")
    assert found is not None and found.family == "claude" and found.tier == "mid-premium"
    assert find_model(models, "gpt-5") is None


def test_price_key_orders_by_input_plus_output_then_name(models: list[Model]) -> None:
    ordered = [m.name for m in sorted(models, key=price_key)]
    assert ordered == [
        "deepseek-v3",  # 0.70
        "qwen2.5-coder",  # 0.80
        "glm-4.7",  # 2.80
        "sonnet-4.5",  # 18
        "opus-4.6",  # 30
        "gpt-4-turbo",  # 40
        "gpt-4",  # 90
    ]
    twin = Model(
        name="a-twin",
        family="x",
        tier="budget",
        cost_per_mtok_input=0.28,
        cost_per_mtok_output=0.42,
        context_window=1000,
    )
    assert [m.name for m in sorted([*models, twin], key=price_key)][:2] == ["a-twin", "deepseek-v3"]


@pytest.mark.parametrize(
    ("domain", "floor", "expected"),
    [
        ("backend", 0.7, "deepseek-v3"),
        ("backend", 0.8, "deepseek-v3"),  # rated exactly at the floor
        ("backend", 0.81, "sonnet-4.5"),
        ("backend", 0.91, "opus-4.6"),
        ("backend", 0.96, None),
        ("infrastructure", 0.76, "sonnet-4.5"),
        ("documentation", 0.8, "sonnet-4.5"),
        ("unknown-domain", 0.1, None),  # no rating counts as 0
        ("unknown-domain", 0.0, "deepseek-v3"),
    ],
)
def test_get_cheapest_capable_model(
    models: list[Model], domain: str, floor: float, expected: str | None
) -> None:
    model = get_cheapest_capable_model(models, domain, floor, build_ledger(), 27500, 3500)
    assert (model.name if model else None) == expected


def test_cheapest_capable_skips_what_cannot_be_paid(models: list[Model]) -> None:
    # claude is full and the budget holds $0.01: deepseek ($0.0092) fits, sonnet
    # does not; under deepseek's cost, the next in price order (qwen, $0.0076 for
    # this mix) is taken; under that, nothing capable is payable.
    full = build_ledger(claude_used=5_000_000, budget=0.01)
    model = get_cheapest_capable_model(models, "backend", 0.81, full, 27500, 3500)
    assert model is None
    model = get_cheapest_capable_model(models, "backend", 0.7, full, 27500, 3500)
    assert model is not None and model.name == "deepseek-v3"
    tight = build_ledger(claude_used=5_000_000, budget=0.009)
    model = get_cheapest_capable_model(models, "backend", 0.7, tight, 27500, 3500)
    assert model is not None and model.name == "qwen2.5-coder"
    broke = build_ledger(claude_used=5_000_000, budget=0.007)
    assert get_cheapest_capable_model(models, "backend", 0.7, broke, 27500, 3500) is None
    # the claude subscription pays sonnet when it has room, whatever the budget
    quota = build_ledger(budget=0.0)
    model = get_cheapest_capable_model(models, "backend", 0.81, quota, 27500, 3500)
    assert model is not None and model.name == "sonnet-4.5"
