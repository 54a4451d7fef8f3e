"""What an assignment is worth under each objective (core/objective.py)."""

from __future__ import annotations

import pytest

from model_assigner.core.config import ScoringConfig
from model_assigner.core.objective import worth
from model_assigner.core.types import Model


def test_the_fit_exponent_weighs_the_rating_harder(
    models: list[Model], scoring: ScoringConfig
) -> None:
    opus = next(m for m in models if m.name == "opus-4.6")  # 0.95 for backend
    glm = next(m for m in models if m.name == "glm-4.7")  # 0.75 for backend
    once = scoring.model_copy(update={"objective": "fit"})
    four = scoring.model_copy(update={"objective": "fit", "fit_exponent": 4.0})
    assert worth(100, opus, "backend", once) / worth(100, glm, "backend", once) == (
        pytest.approx(0.95 / 0.75))
    assert worth(100, opus, "backend", four) / worth(100, glm, "backend", four) == (
        pytest.approx((0.95 / 0.75) ** 4))
    assert worth(100, glm, "backend", scoring) == 100  # the value objective
