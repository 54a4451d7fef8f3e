"""What an assignment is worth under the configured objective
(``ScoringConfig.objective``): the task's value, or under ``fit`` its value
scaled by how well the model is rated in the task's domain."""

from __future__ import annotations

from model_assigner.core.config import ScoringConfig
from model_assigner.core.types import Model


def fit_worth(value: float, model: Model, domain: str, exponent: float = 1.0) -> float:
    """A task's value done by ``model``, under the ``fit`` objective: scaled
    by the model's capability rating in the task's domain (to the power
    ``fit_exponent``)."""
    return value * float(model.capabilities.get(domain, 0.0) ** exponent)


def worth(value: float, model: Model, domain: str, config: ScoringConfig) -> float:
    """The value an assignment brings under the configured objective."""
    if config.objective == "fit":
        return fit_worth(value, model, domain, config.fit_exponent)
    return value
