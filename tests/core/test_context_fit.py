"""A model must fit the task: its context window holds a turn's working set."""

from __future__ import annotations

from typing import Any

import pytest

from model_assigner.core.assessment import Assessment, assess
from model_assigner.core.batch import plan_assessed
from model_assigner.core.config import ContextFit, ScoringConfig, WorkspaceWorkingSet
from model_assigner.core.reasons import ReasonCode, reason
from model_assigner.core.tokens import working_set_tokens
from model_assigner.core.types import STRATEGIES, Model
from model_assigner.core.wording import explain
from tests.helpers import NOW, build_ledger, seed_task

GPT4_WINDOW = 8192


def critical_task_scoring(scoring: ScoringConfig, highly_complex: int) -> ScoringConfig:
    fit = ContextFit(
        working_set_tokens={"simple": 1, "moderate": 1, "complex": 1,
                            "highly_complex": highly_complex},
        workspace_factors=[WorkspaceWorkingSet(files_above=100, factor=2.0)],
    )
    return scoring.model_copy(update={"context_fit": fit})


def critical(scoring: ScoringConfig, **fields: Any) -> Assessment:
    """Value 100, highly complex: the critical band prefers opus, gpt-4, sonnet."""
    task = seed_task(estimated_files=12, **fields)
    return assess(task, scoring, NOW)


def without_opus(models: list[Model]) -> list[Model]:
    return [m for m in models if m.name != "opus-4.6"]


@pytest.mark.parametrize(("working_set", "fits"), [(GPT4_WINDOW, True), (GPT4_WINDOW + 1, False)])
def test_gpt4_is_assigned_only_when_its_window_holds_the_working_set(
    models: list[Model], scoring: ScoringConfig, working_set: int, fits: bool
) -> None:
    tuned = critical_task_scoring(scoring, working_set)
    a = critical(tuned)
    assert a.tokens.working_set == working_set
    (decision,) = plan_assessed([a], build_ledger(claude=False), without_opus(models), tuned, NOW,
                                "maximize_subscription_usage").decisions
    if fits:
        assert decision.model == "gpt-4"
    else:
        assert decision.model != "gpt-4"
        (skipped,) = [p for p in decision.passed_over if p.model == "gpt-4"]
        assert skipped.reason == reason(ReasonCode.WINDOW_TOO_SMALL, window=8192,
                                        working_set=8193)
        assert any("passed over gpt-4: its context window" in line for line in explain(decision))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_no_strategy_assigns_a_model_too_small(
    models: list[Model], scoring: ScoringConfig, strategy: str
) -> None:
    tuned = critical_task_scoring(scoring, GPT4_WINDOW + 1)
    tasks = [critical(tuned, id=f"t{i}") for i in range(3)]
    plan = plan_assessed(tasks, build_ledger(claude=False, budget=1000), without_opus(models),
                         tuned, NOW, strategy)
    assert all(d.model != "gpt-4" for d in plan.decisions)
    assert any(d.model is not None for d in plan.decisions)


def test_the_working_set_grows_with_complexity_and_workspace(scoring: ScoringConfig) -> None:
    sizes = [working_set_tokens(scoring, level, 0)
             for level in ("simple", "moderate", "complex", "highly_complex")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    # the shipped rules: x1.25 above 100 files, x1.5 above 1,000 (first match)
    assert working_set_tokens(scoring, "simple", 100) == sizes[0]
    assert working_set_tokens(scoring, "simple", 101) == round(sizes[0] * 1.25)
    assert working_set_tokens(scoring, "simple", 1001) == round(sizes[0] * 1.5)


def test_the_shipped_rule_keeps_gpt4_off_large_tasks_only(
    models: list[Model], scoring: ScoringConfig
) -> None:
    gpt4 = next(m for m in models if m.name == "gpt-4")
    assert working_set_tokens(scoring, "simple", 0) <= gpt4.context_window
    assert working_set_tokens(scoring, "moderate", 0) > gpt4.context_window
    others = [m for m in models if m.name != "gpt-4"]
    assert all(working_set_tokens(scoring, "highly_complex", 10_000) <= m.context_window
               for m in others)


def test_the_rule_can_be_turned_off(models: list[Model], scoring: ScoringConfig) -> None:
    off = scoring.model_copy(update={"context_fit": scoring.context_fit.model_copy(
        update={"enabled": False})})
    a = critical(off)
    assert a.tokens.working_set == 0
    (decision,) = plan_assessed([a], build_ledger(claude=False), without_opus(models), off, NOW,
                                "maximize_subscription_usage").decisions
    assert decision.model == "gpt-4"
