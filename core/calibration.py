"""Learning the token estimate's error from reported usage.

The seed's formula stays the estimate's base; calibration multiplies it by a
factor learned per complexity and domain from finished issues whose agents
reported what they used. The factor is robust (a trimmed mean of log ratios:
one runaway session does not move it much), shrunk toward the domain's factor
and that toward x1 while samples are few (a ratio from two issues is mostly
noise), and bounded.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from model_assigner.core.config import (
    COMPLEXITY_LEVELS,
    CalibrationConfig,
    LearnedFactor,
    ScoringConfig,
)


@dataclass(frozen=True)
class Sample:
    """One finished issue: its class, the formula's estimate, what it used."""

    complexity: str
    domain: str
    estimated: int
    actual: int


def trimmed_mean(values: list[float], trim: float) -> float:
    """The mean after dropping ``trim`` of the values at each end (0 when
    there are none); with trim near 0.5 it tends to the median."""
    if not values:
        return 0.0
    ordered = sorted(values)
    cut = int(len(ordered) * trim)
    kept = ordered[cut : len(ordered) - cut] or ordered[len(ordered) // 2 : len(ordered) // 2 + 1]
    return sum(kept) / len(kept)


def _log_ratio(sample: Sample, config: CalibrationConfig) -> float:
    ratio = sample.actual / sample.estimated
    return math.log(min(max(ratio, config.min_factor), config.max_factor))


def learn(samples: Iterable[Sample], config: CalibrationConfig) -> dict[str, LearnedFactor]:
    """The factor for every complexity of every domain that has samples,
    keyed ``complexity/domain``."""
    by_domain: dict[str, list[float]] = defaultdict(list)
    by_cell: dict[tuple[str, str], list[float]] = defaultdict(list)
    for sample in samples:
        if sample.estimated <= 0:
            continue
        value = _log_ratio(sample, config)
        by_domain[sample.domain].append(value)
        by_cell[(sample.complexity, sample.domain)].append(value)
    k = config.prior_samples
    table: dict[str, LearnedFactor] = {}
    for domain, values in sorted(by_domain.items()):
        n_domain = len(values)
        domain_log = n_domain / (n_domain + k) * trimmed_mean(values, config.trim)
        for complexity in COMPLEXITY_LEVELS:
            cell = by_cell.get((complexity, domain), [])
            n_cell = len(cell)
            cell_log = (n_cell * trimmed_mean(cell, config.trim) + k * domain_log) / (n_cell + k)
            factor = min(max(math.exp(cell_log), config.min_factor), config.max_factor)
            table[f"{complexity}/{domain}"] = LearnedFactor(
                factor=round(factor, 4), samples=n_cell, domain_samples=n_domain
            )
    return table


def with_learned(config: ScoringConfig, table: dict[str, LearnedFactor]) -> ScoringConfig:
    """``config`` whose estimates use ``table`` (unchanged when calibration
    is off, so the seed's numbers stand exactly)."""
    if not config.calibration.enabled or config.calibration.learned == table:
        return config
    calibration = config.calibration.model_copy(update={"learned": table})
    return config.model_copy(update={"calibration": calibration})
