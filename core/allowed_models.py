"""The models a task may use, in the order the seed would try them: every
model any strategy may give it (``ranked_models``). The ``optimal`` plan and
the ``online`` prices choose only among these, which is what makes
``optimal`` never worse than any greedy strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from model_assigner.core.assessment import Assessment
from model_assigner.core.catalog import filter_models, fits_window, price_key, too_small
from model_assigner.core.config import ScoringConfig, ValueBand
from model_assigner.core.selection import band_for, bands_below, preferred_order_for
from model_assigner.core.types import Model, PassedOver, Subscription


@dataclass(frozen=True)
class Ranked:
    """A model a task may use, and on which rule."""

    model: Model
    rule: str  # "band", "downgrade" or "capable"
    preferred: bool = False  # named in the band's preferred order


class Scored(Protocol):
    """What deciding which models a task may use reads of it: an
    Assessment, or an Observation of the online strategy's history."""

    @property
    def value(self) -> float: ...

    @property
    def domain(self) -> str: ...

    @property
    def working_set(self) -> int: ...


def task_band(assessment: Scored, config: ScoringConfig) -> ValueBand:
    """The task's value band; below the last band, the low-value band."""
    return band_for(assessment.value, config) or config.low_value_band


def ranked_models(
    assessment: Scored,
    models: list[Model],
    config: ScoringConfig,
    available: list[Subscription],
) -> list[Ranked]:
    """Every model a task may use, in the order the seed would try them.

    1. The band's preferred order (with the quota-family switch and the domain
       override), then the band's other models from the cheapest: what
       ``select_model`` tries first.
    2. With ``allow_downgrade``, each lower band's preferred models, then its
       other models from the cheapest: ``select_model``'s downgrade.
    3. When the value reaches ``minimize_cost_api_overflow``, the models rated
       at least ``capability_floor`` in the task's domain, from the cheapest:
       ``minimize_cost``'s overflow (``get_cheapest_capable_model``), which
       ignores tiers.

    Every greedy strategy assigns only models of this list, which is what makes
    ``optimal`` never worse than any of them. A model whose context window
    cannot hold the task's working set is never in it (context_fit).
    """
    band = task_band(assessment, config)
    models = [m for m in models if m.context_window >= assessment.working_set]
    ranked: list[Ranked] = []
    seen: set[str] = set()

    def add(candidates: list[Model], names: list[str], rule: str) -> None:
        by_name = {m.name: m for m in candidates}
        for name in names:
            model = by_name.get(name)
            if model is not None and model.name not in seen:
                seen.add(model.name)
                ranked.append(Ranked(model, rule, preferred=rule == "band"))
        for model in sorted(candidates, key=price_key):
            if model.name not in seen:
                seen.add(model.name)
                ranked.append(Ranked(model, rule))

    order = preferred_order_for(
        band, available, assessment.domain, assessment.value, models, config
    )
    add(filter_models(models, band.tiers), order, "band")
    if config.allow_downgrade:
        for lower in bands_below(band, config):
            add(filter_models(models, lower.tiers), list(lower.preferred), "downgrade")
    if assessment.value >= config.batch_thresholds.minimize_cost_api_overflow:
        floor = config.capability_floor
        capable = [m for m in models if m.capabilities.get(assessment.domain, 0.0) >= floor]
        add(capable, [], "capable")
    return ranked


class Ranker:
    """ranked_models, memoized: a batch has far fewer distinct (band, domain,
    value, quota) combinations than tasks."""

    def __init__(self, models: list[Model], config: ScoringConfig) -> None:
        self.models = models
        self.config = config
        self._cache: dict[tuple[str, str, float, bool, int], list[Ranked]] = {}

    def ranked(
        self, assessment: Scored, band: ValueBand, room: Callable[[str], bool]
    ) -> list[Ranked]:
        """``room(family)``: whether that family's subscription could pay the
        task (the 75 band's preferred order depends on it)."""
        family = band.quota_family
        quota = family is not None and room(family)
        key = (band.name, assessment.domain, assessment.value, quota, assessment.working_set)
        ranked = self._cache.get(key)
        if ranked is None:
            # preferred_order_for only asks whether the quota family has room
            subs = [_PLACEHOLDER.model_copy(update={"model_family": family})] if quota else []
            ranked = ranked_models(assessment, self.models, self.config, subs)
            self._cache[key] = ranked
        return ranked


# Stands for "a subscription of this family has room" in preferred_order_for.
_PLACEHOLDER = Subscription(model_family="-", reset_date=datetime(2000, 1, 1, tzinfo=UTC))


def window_passed_over(a: Assessment, band: ValueBand, models: list[Model]) -> list[PassedOver]:
    """The band's preferred models left out because their context window
    cannot hold the task's working set (context_fit)."""
    names = [*band.preferred, *(band.preferred_without_quota or [])]
    small = [m for m in models if not fits_window(m, a.tokens)]
    return too_small(names, small, a.tokens)
