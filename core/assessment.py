"""A task's Phase 1 and Phase 2 results, computed once and shared.

The seed recomputes the value and token estimate in every function that needs
them; a batch of 10,000 tasks would classify each task several times over.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime

from model_assigner.core.config import ScoringConfig
from model_assigner.core.scoring import calculate_task_value
from model_assigner.core.tokens import estimate_token_usage
from model_assigner.core.types import ScoreBreakdown, Task, TokenEstimate


@dataclass(frozen=True)
class Assessment:
    task: Task
    breakdown: ScoreBreakdown
    tokens: TokenEstimate

    @property
    def value(self) -> float:
        return self.breakdown.value_score

    @property
    def domain(self) -> str:
        return self.breakdown.domain

    @property
    def total_tokens(self) -> int:
        return self.tokens.total

    @property
    def working_set(self) -> int:
        """Tokens one turn holds: a model's context window must reach it."""
        return self.tokens.working_set

    @property
    def value_density(self) -> float:
        """Value per thousand expected tokens."""
        total = self.tokens.total
        return self.value / (total / 1000) if total else 0.0


def assess(
    task: Task, config: ScoringConfig, now: datetime, depended_on: Container[str] = frozenset()
) -> Assessment:
    breakdown = calculate_task_value(task, config, now, depended_on)
    tokens = estimate_token_usage(task, config, breakdown.complexity, breakdown.domain)
    return Assessment(task=task, breakdown=breakdown, tokens=tokens)
