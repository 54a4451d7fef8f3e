"""The plain-text explanation every decision carries."""

from __future__ import annotations

from typing import Any

import pytest

from model_assigner.core.config import ScoringConfig
from model_assigner.core.explain import explain, format_payment, formula, score_rows
from model_assigner.core.selection import select_model
from model_assigner.core.types import Decision, Model, Payment, Task
from tests.helpers import NOW, build_ledger, build_task, seed_task, task_for


def decide(task: Task, models: list[Model], scoring: ScoringConfig, **ledger: Any) -> Decision:
    return select_model(task, build_ledger(**ledger), models, scoring, NOW)


def test_seed_example_explanation(models: list[Model], scoring: ScoringConfig) -> None:
    decision = decide(seed_task(), models, scoring, claude_used=1_200_000)
    lines = explain(decision)
    assert lines[0] == "model: sonnet-4.5"
    assert lines[1] == "value: 78.7/100 (high band)  (40 x 1 + 15) x 1.1 x 1.3 = 78.65"
    text = "\n".join(lines)
    assert "priority weight      40  P0" in text
    assert "complexity           x1  moderate: 3 files (estimated_files) >= 3" in text
    assert "time bonus          +15  due in 2.0 h (<= 4 h: immediate)" in text
    assert "domain             x1.1  backend: label 'backend'" in text
    assert "risk               x1.3  production: label 'hotfix'" in text
    assert "tokens: 27,500 in + 3,500 out = 31,000 (moderate: 27,500 in / 3,500 out)" in text
    assert "cost at list price: $0.14" in text
    assert "paid by: claude subscription, 31,000 tokens (3,769,000 tokens left this month)" in text
    assert ("why: its value, 78.7, puts it in the high band (75 and up), where sonnet-4.5 is "
            "the first choice; the claude subscription pays") in text
    assert "would change it" not in text


def test_score_rows_follow_the_formula(models: list[Model], scoring: ScoringConfig) -> None:
    rows = score_rows(decide(build_task(priority=None), models, scoring))
    assert [row[0] for row in rows] == [
        "priority weight",
        "complexity",
        "time bonus",
        "domain",
        "risk",
    ]
    assert rows[0] == ("priority weight", "20", "no priority label (default)")
    assert rows[2] == ("time bonus", "+0", "no deadline")


def test_formula_shows_the_clamp(models: list[Model], scoring: ScoringConfig) -> None:
    task = task_for("P0", "highly_complex", 15, "infrastructure", "production")
    decision = decide(task, models, scoring)
    assert formula(decision) == "(40 x 2 + 15) x 1.2 x 1.3 = 148.20 -> clamped to 100.0"


def test_deferred_explanation(models: list[Model], scoring: ScoringConfig) -> None:
    decision = decide(build_task(priority="P4"), models, scoring)
    lines = explain(decision)
    assert lines[0] == "model: deferred"
    text = "\n".join(lines)
    assert "paid by: nothing (deferred)" in text
    assert "cost at list price" not in text
    # P4, simple (no estimate), no labels: no label or deadline can lift it.
    assert "would change it: no label or deadline lifts it to 40" in text


def test_passed_over_models_are_listed(models: list[Model], scoring: ScoringConfig) -> None:
    decision = decide(seed_task(), models, scoring, claude_used=5_000_000, budget=0.1)
    text = "\n".join(explain(decision))
    assert "passed over gpt-4-turbo: claude quota" not in text  # turbo is openai
    assert (
        "passed over gpt-4-turbo: no openai subscription; API cost $0.38 is over the $0.10" in text
    )
    assert "passed over sonnet-4.5: claude quota has 0 tokens left, 31,000 needed" in text
    assert "passed over deepseek-v3: tier mid-range is not among the high band's tiers" in text
    assert "paid by: API budget, $0.01 ($0.09 left this month)" in text


@pytest.mark.parametrize(
    ("payment", "text"),
    [
        (None, "nothing (deferred)"),
        (
            Payment(kind="subscription", family="claude", tokens=1000, cost_usd=0),
            "claude subscription, 1,000 tokens (no limit)",
        ),
        (
            Payment(
                kind="subscription",
                family="claude",
                tokens=1000,
                cost_usd=0,
                remaining_daily=5,
                remaining_monthly=2_000_000,
            ),
            "claude subscription, 1,000 tokens "
            "(5 tokens left today, 2,000,000 tokens left this month)",
        ),
        (
            Payment(
                kind="api",
                family="openai",
                tokens=1000,
                cost_usd=1.2345,
                remaining_budget_usd=98.7655,
            ),
            "API budget, $1.23 ($98.77 left this month)",
        ),
    ],
)
def test_format_payment(payment: Payment | None, text: str) -> None:
    assert format_payment(payment) == text
