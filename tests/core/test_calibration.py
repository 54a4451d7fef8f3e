"""Calibration: robust, shrunk toward x1 while samples are few, bounded, off-able."""

from __future__ import annotations

import pytest

from model_assigner.core.assessment import assess
from model_assigner.core.calibration import Sample, learn, trimmed_mean, with_learned
from model_assigner.core.config import CalibrationConfig, ScoringConfig
from model_assigner.core.reasons import ReasonCode
from tests.helpers import NOW, seed_task

SETTINGS = CalibrationConfig()


def samples(n: int, ratio: float, complexity: str = "moderate",
            domain: str = "infrastructure") -> list[Sample]:
    return [Sample(complexity, domain, 10_000, round(10_000 * ratio)) for _ in range(n)]


def test_few_samples_are_shrunk_toward_one_and_many_reach_the_ratio() -> None:
    few = learn(samples(2, 3.0), SETTINGS)["moderate/infrastructure"]
    many = learn(samples(500, 3.0), SETTINGS)["moderate/infrastructure"]
    assert 1.0 < few.factor < 1.5
    assert many.factor == pytest.approx(3.0, rel=0.03)
    assert (many.samples, many.domain_samples) == (500, 500)


def test_a_runaway_issue_barely_moves_the_factor() -> None:
    calm = learn(samples(40, 1.5), SETTINGS)["moderate/infrastructure"].factor
    wild = learn(samples(39, 1.5) + samples(1, 1000.0), SETTINGS)["moderate/infrastructure"]
    assert wild.factor == pytest.approx(calm, rel=0.02)


def test_factors_are_bounded() -> None:
    table = learn(samples(1000, 50.0) + samples(1000, 0.001, domain="docs"), SETTINGS)
    high, low = table["moderate/infrastructure"].factor, table["moderate/docs"].factor
    assert SETTINGS.max_factor * 0.99 < high <= SETTINGS.max_factor
    assert SETTINGS.min_factor <= low < SETTINGS.min_factor * 1.01


def test_a_complexity_without_samples_borrows_its_domains_factor() -> None:
    table = learn(samples(200, 2.0), SETTINGS)
    assert table["complex/infrastructure"].samples == 0
    assert table["complex/infrastructure"].factor == pytest.approx(
        table["moderate/infrastructure"].factor, rel=0.1)
    assert "complex/backend" not in table


def test_trimmed_mean_drops_the_ends() -> None:
    assert trimmed_mean([1, 2, 3, 4, 100], 0.2) == 3
    assert trimmed_mean([], 0.2) == 0


def test_new_estimates_use_the_factor_and_say_so(scoring: ScoringConfig) -> None:
    task = seed_task(labels=["security", "kubernetes", "hotfix"])
    base = assess(task, scoring, NOW).tokens
    complexity = base.adjustments[0].values["complexity"]
    table = learn(samples(37, 1.4, complexity=complexity), SETTINGS)
    tuned = assess(task, with_learned(scoring, table), NOW).tokens
    factor = table[f"{complexity}/infrastructure"].factor
    assert tuned.input_tokens == int(round(base.input_tokens * factor, 6))
    assert tuned.calibration == factor
    assert tuned.adjustments[-1].code == ReasonCode.TOKENS_CALIBRATION
    assert tuned.adjustments[-1].values["domain_samples"] == 37
    assert tuned.adjustments[-1].values["domain"] == "infrastructure"


def test_the_seed_example_stays_exact_with_calibration_off(scoring: ScoringConfig) -> None:
    off = scoring.model_copy(update={"calibration": CalibrationConfig(enabled=False)})
    table = learn(samples(100, 2.0, domain="backend"), SETTINGS)
    configured = off.model_copy(update={"calibration": off.calibration.model_copy(
        update={"learned": table})})
    tokens = assess(seed_task(), configured, NOW).tokens
    # The seed's worked example: moderate, backend -> 27,500 in / 3,500 out.
    assert (tokens.input_tokens, tokens.output_tokens, tokens.calibration) == (27_500, 3_500, 1.0)
    assert with_learned(off, table) is off
    # And on, with nothing learned, the same numbers.
    assert assess(seed_task(), scoring, NOW).tokens.total == 31_000
