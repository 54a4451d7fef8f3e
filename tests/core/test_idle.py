"""Which subscription sat idle while a decision went elsewhere (core/idle.py),
as codes and values: the words are tests/core/test_wording.py's."""

from __future__ import annotations

from model_assigner.core.assessment import assess
from model_assigner.core.batch import plan_assessed
from model_assigner.core.config import ScoringConfig
from model_assigner.core.idle import idle_reasons
from model_assigner.core.quota import Ledger
from model_assigner.core.reasons import Lever, ReasonCode
from model_assigner.core.types import Decision, Model, Task
from tests.helpers import NOW, build_ledger, build_task


def p1_security() -> Task:
    """(30 x 1 + 0) x 1.1 x 1.3 = 42.9: the standard band (mid-range, budget)."""
    return build_task(id="o/r#1", priority="P1", labels=["security", "backend", "hotfix"],
                      estimated_files=3, estimated_loc=150)


def decide(task: Task, ledger: Ledger, models: list[Model], scoring: ScoringConfig) -> Decision:
    a = assess(task, scoring, NOW)
    return plan_assessed([a], ledger, models, scoring, NOW,
                         "maximize_subscription_usage").decisions[0]


def test_an_api_paid_decision_names_the_idle_subscription_and_its_lever(
    models: list[Model], scoring: ScoringConfig
) -> None:
    ledger = build_ledger()
    decision = decide(p1_security(), ledger, models, scoring)
    assert decision.paid_by == "api"
    (idle,) = idle_reasons(decision, ledger, models, scoring)
    assert idle.code == ReasonCode.IDLE_SUBSCRIPTION
    v = idle.values
    assert (v["family"], v["left"], v["band"]) == ("claude", 5_000_000, "standard")
    assert set(v["models"]) == {m.name for m in models if m.family == "claude"}
    # the lowest band that allows a claude model, and what would reach it
    floor = min(b.min_value for b in scoring.value_bands
                if any(m.tier in b.tiers for m in models if m.family == "claude"))
    assert v["floor"] == floor
    # P0 alone gives (40 x 1 + 0) x 1.1 x 1.3 = 57.2: a deadline or dependants would
    assert v["levers"] == (Lever.DEADLINE, Lever.DEPENDANTS)


def test_a_subscription_paid_or_full_subscription_is_not_idle(
    models: list[Model], scoring: ScoringConfig
) -> None:
    paid = build_task(id="o/r#2", priority="P0", labels=["security", "hotfix"],
                      estimated_files=8, estimated_loc=800)
    ledger = build_ledger()
    decision = decide(paid, ledger, models, scoring)
    assert decision.paid_by == "subscription:claude"
    assert idle_reasons(decision, ledger, models, scoring) == []
    full = build_ledger(claude_used=5_000_000)
    decision = decide(p1_security(), full, models, scoring)
    assert idle_reasons(decision, full, models, scoring) == []
