"""The engine's configuration: every number the seed uses, as a validated schema.

The seed hard-codes its thresholds inside functions; here they are data, so a
repository can tune them and a reader can find each one by name. Validation is
strict (unknown keys are errors) because a misspelt key that silently falls back
to a default is the worst kind of configuration bug.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, NonNegativeFloat, model_validator

from model_assigner.core.config_bounds import (
    MAX_RULES,
    MAX_TABLE,
    MAX_WORDS,
    Name,
    Strict,
    TokenCount,
    Words,
)
from model_assigner.core.config_subscriptions import SubscriptionsConfig
from model_assigner.core.types import MAX_COUNT, Complexity, Model, Priority, Strategy, Tier

COMPLEXITY_LEVELS: tuple[Complexity, ...] = ("simple", "moderate", "complex", "highly_complex")
TIERS: tuple[Tier, ...] = ("premium", "mid-premium", "mid-range", "budget")


class TimeBonuses(Strict):
    immediate: NonNegativeFloat
    urgent: NonNegativeFloat
    week: NonNegativeFloat
    month: NonNegativeFloat
    flexible: NonNegativeFloat = 0


class TimeHours(Strict):
    immediate: NonNegativeFloat
    urgent: NonNegativeFloat
    week: NonNegativeFloat
    month: NonNegativeFloat

    @model_validator(mode="after")
    def _ascending(self) -> Self:
        if not self.immediate <= self.urgent <= self.week <= self.month:
            raise ValueError("hours must ascend: immediate <= urgent <= week <= month")
        return self


class ComplexityRule(Strict):
    files_at_least: int = Field(ge=0, le=MAX_COUNT)
    loc_above: int = Field(ge=0, le=MAX_COUNT)


class RiskIndicators(Strict):
    labels: Words = Field(default_factory=list)
    path_hints: Words = Field(default_factory=list)
    description_keywords: Words = Field(default_factory=list)


# A token multiplier above this is a typo (or an attack on the budget).
MAX_FACTOR = 100.0
Factor = Annotated[float, Field(ge=0, le=MAX_FACTOR)]


class TokenFactor(Strict):
    input: Factor = 1.0
    output: Factor = 1.0


class WorkspaceSizeFactor(Strict):
    files_above: int = Field(ge=0, le=MAX_COUNT)
    input: Factor = 1.0
    output: Factor = 1.0


class ValueBand(Strict):
    name: Name
    min_value: float = Field(ge=0)
    tiers: list[Tier] = Field(min_length=1, max_length=len(TIERS))
    preferred: Annotated[list[Name], Field(max_length=MAX_WORDS)]
    quota_family: Name | None = None
    preferred_without_quota: Annotated[list[Name], Field(max_length=MAX_WORDS)] | None = None

    @model_validator(mode="after")
    def _quota_pair(self) -> Self:
        if (self.quota_family is None) != (self.preferred_without_quota is None):
            raise ValueError("quota_family and preferred_without_quota go together")
        return self


class DomainOverride(Strict):
    domain: Name
    min_value: float = Field(ge=0)
    prefer_family: Name


class BatchThresholds(Strict):
    """The value cut-offs of the seed's Phase 4 strategies."""

    maximize_value_always: float = Field(default=75, ge=0)
    maximize_value_if_affordable: float = Field(default=40, ge=0)
    minimize_cost_api_overflow: float = Field(default=40, ge=0)


class OptimalConfig(Strict):
    """How the ``optimal`` strategy solves its plan (core/optimal.py).

    The upper limits keep a repository's override from tying up the App."""

    # HiGHS stops the exact MILP after this long and keeps its best plan so far.
    time_limit_seconds: float = Field(default=0.25, gt=0, le=30)
    # Above this many integer variables (after grouping identical tasks) the
    # plan comes from the LP relaxation, rounded down and repaired greedily.
    milp_max_variables: int = Field(default=20_000, ge=0, le=1_000_000)
    # A plan not proven optimal is checked against the greedy strategies'
    # plans (and replaced by a better one) for batches up to this many tasks;
    # larger batches would spend more time on the check than on the plan.
    greedy_check_max_tasks: int = Field(default=2_000, ge=0)
    # The budget a plan leaves over buys each API-paid task, highest value
    # first, the first model of its band's preferred order that fits (True),
    # or is left unspent, every API task on its cheapest allowed model (False).
    spend_leftover_budget: bool = True


class LearnedFactor(Strict):
    """A calibration factor for one complexity and domain, and the evidence."""

    factor: float = Field(gt=0)
    samples: int = Field(ge=0)  # finished issues of this complexity and domain
    domain_samples: int = Field(ge=0)  # finished issues of this domain


class CalibrationConfig(Strict):
    """How reported usage corrects the token estimate (core/calibration.py).

    The factor for a complexity and domain is the trimmed mean of
    log(actual / estimated) over its finished issues, shrunk toward the
    domain's, which is shrunk toward x1: with n samples the data weigh
    n / (n + prior_samples). It is then bounded."""

    enabled: bool = True
    prior_samples: float = Field(default=10, gt=0, le=10_000)
    trim: float = Field(default=0.1, ge=0, lt=0.5)
    min_factor: float = Field(default=0.25, gt=0, le=1)
    max_factor: float = Field(default=4.0, ge=1, le=100)
    # Filled in by the bot from its store (complexity/domain -> factor); the
    # estimate reads it only while ``enabled``.
    learned: dict[str, LearnedFactor] = Field(default_factory=dict)
class OnlineConfig(Strict):
    """The ``online`` strategy's bid prices (core/online.py, docs/online-strategy.md)."""

    # Fewer issues seen this period than this, and none from the last one:
    # no prices yet, the issue is decided as minimize_cost decides it.
    min_history: int = Field(default=5, ge=0)
    # The issues seen this period count as at least this many hours' worth
    # when scaled to the time left: a few issues in the first hours say
    # little about a month's arrival rate.
    min_elapsed_hours: float = Field(default=24, ge=0)
    # How much of the forecast of the rest of the period comes from the last
    # period's issues that arrived at the same point of their period or later
    # (when the store has any); the rest is this period's issues so far,
    # scaled to the time left.
    last_period_weight: float = Field(default=0.5, ge=0, le=1)
    # Capacity the price LP may plan with, as a share of what is left:
    # below 1 keeps a reserve against a forecast that is too low.
    capacity_share: float = Field(default=1.0, gt=0, le=1)
    # In the last hours before a reset, every price is zero: whatever fits is
    # assigned, since tokens left at the reset are lost.
    sweep_hours_before_reset: float = Field(default=6, ge=0, le=24 * 31)


class WorkspaceWorkingSet(Strict):
    files_above: int = Field(ge=0)
    factor: NonNegativeFloat


class ContextFit(Strict):
    """What must fit in a model's context window: the working set of one
    turn of an agent (instructions, the files it edits and reads, its
    answer), not the task's whole input, which an agent spreads over turns."""

    enabled: bool = True
    working_set_tokens: dict[Complexity, int]
    # First rule whose threshold the workspace's file count exceeds applies.
    workspace_factors: list[WorkspaceWorkingSet] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        for level in COMPLEXITY_LEVELS:
            if level not in self.working_set_tokens:
                raise ValueError(f"working_set_tokens: missing {level!r}")
        if min(self.working_set_tokens.values()) < 0:
            raise ValueError("working_set_tokens: negative token count")
        return self


DEFAULT_CONTEXT_FIT = ContextFit(
    working_set_tokens={
        "simple": 6_000, "moderate": 12_000, "complex": 24_000, "highly_complex": 48_000
    },
    workspace_factors=[
        WorkspaceWorkingSet(files_above=1000, factor=1.5),
        WorkspaceWorkingSet(files_above=100, factor=1.25),
    ],
)


# The scoring keys a repository's `.github/model-assigner.yml` may set unless
# the operator says otherwise (ScoringConfig.repository_may_override): how its
# issues are classified and valued, each number clamped to the operator's own
# range (bot/github/repo_config.py). Never what an issue costs (token estimates and
# factors), nor how the shared quota is spent (strategy, bands, floors).
REPOSITORY_KEYS: tuple[str, ...] = (
    "priority_weights",
    "complexity_multipliers",
    "domain_modifiers",
    "risk_modifiers",
    "time_sensitivity_bonuses",
    "time_sensitivity_hours",
    "default_priority_weight",
    "blocking_time_bonus",
    "complexity_rules",
    "complexity_fallback",
    "complex_keywords",
    "domain_labels",
    "domain_path_hints",
    "default_domain",
    "risk_indicators",
    "default_risk",
)


class ScoringConfig(Strict):
    """config/scoring.yaml."""

    priority_weights: dict[Priority, NonNegativeFloat]
    complexity_multipliers: dict[Complexity, NonNegativeFloat]
    domain_modifiers: Annotated[dict[Name, NonNegativeFloat], Field(max_length=MAX_TABLE)]
    risk_modifiers: Annotated[dict[Name, NonNegativeFloat], Field(max_length=MAX_TABLE)]
    time_sensitivity_bonuses: TimeBonuses
    quota_strategy: Strategy = "online"

    default_priority_weight: NonNegativeFloat = 20
    time_sensitivity_hours: TimeHours
    blocking_time_bonus: NonNegativeFloat = 12
    score_min: float = 0
    score_max: float = 100

    complexity_rules: dict[Complexity, ComplexityRule]
    complexity_fallback: Complexity = "simple"
    complex_keywords: Words = Field(default_factory=list)

    domain_labels: Annotated[dict[Name, Words], Field(max_length=MAX_TABLE)]
    domain_path_hints: Annotated[dict[Name, Words], Field(max_length=MAX_TABLE)] = Field(
        default_factory=dict
    )
    default_domain: Name = "backend"

    risk_indicators: Annotated[dict[Name, RiskIndicators], Field(max_length=MAX_TABLE)]
    default_risk: Name = "development"

    token_estimates: dict[Complexity, tuple[TokenCount, TokenCount]]
    domain_token_factors: Annotated[dict[Name, TokenFactor], Field(max_length=MAX_TABLE)] = (
        Field(default_factory=dict)
    )
    workspace_size_factors: Annotated[
        list[WorkspaceSizeFactor], Field(max_length=MAX_RULES)
    ] = Field(default_factory=list)

    value_bands: list[ValueBand] = Field(min_length=1, max_length=MAX_RULES)
    low_value_band: ValueBand
    domain_overrides: Annotated[list[DomainOverride], Field(max_length=MAX_RULES)] = Field(
        default_factory=list
    )
    allow_downgrade: bool = True
    capability_floor: float = Field(default=0.7, ge=0)
    batch_thresholds: BatchThresholds = BatchThresholds()
    optimal: OptimalConfig = OptimalConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    online: OnlineConfig = OnlineConfig()
    context_fit: ContextFit = DEFAULT_CONTEXT_FIT
    # What optimal and online maximize: "value", the sum of the value scores
    # of the tasks assigned (the seed's); "fit", each value scaled by the
    # assigned model's capability rating in the task's domain.
    objective: Literal["value", "fit"] = "value"
    # Under "fit", the rating counts raised to this power: 1 scales a task's
    # value by the rating; higher values weigh a better-rated model more
    # against its price (0.95 vs 0.7 is x1.36 at 1, x3.4 at 4).
    fit_exponent: float = Field(default=1.0, ge=0, le=10)
    # Operator only: the keys above a repository's file may set (never this one).
    repository_may_override: list[str] = Field(default_factory=lambda: list(REPOSITORY_KEYS))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for name in self.repository_may_override:
            if name not in type(self).model_fields or name == "repository_may_override":
                raise ValueError(f"repository_may_override: {name!r} is not a scoring key")
        for level in COMPLEXITY_LEVELS:
            if level not in self.complexity_multipliers:
                raise ValueError(f"complexity_multipliers: missing {level!r}")
            if level not in self.token_estimates:
                raise ValueError(f"token_estimates: missing {level!r}")
        if self.complexity_fallback in self.complexity_rules:
            raise ValueError(
                f"complexity_fallback: {self.complexity_fallback!r} also has a rule"
            )
        mins = [band.min_value for band in self.value_bands]
        if mins != sorted(mins, reverse=True) or len(set(mins)) != len(mins):
            raise ValueError("value_bands: min_value must strictly descend")
        if self.score_min > self.score_max:
            raise ValueError("score_min: above score_max")
        for tokens in self.token_estimates.values():
            if min(tokens) < 0:
                raise ValueError("token_estimates: negative token count")
        return self

    def bands(self) -> list[ValueBand]:
        """The bands from the top, the low-value band last."""
        return [*self.value_bands, self.low_value_band]


class CatalogConfig(Strict):
    """config/models.yaml."""

    models: list[Model] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [model.name for model in self.models]
        if len(set(names)) != len(names):
            raise ValueError("models: model names must be unique")
        return self


class EngineConfig(Strict):
    """All three files together, checked against each other."""

    scoring: ScoringConfig
    catalog: CatalogConfig
    quotas: SubscriptionsConfig

    @property
    def models(self) -> list[Model]:
        return self.catalog.models

    def model_named(self, name: str) -> Model | None:
        return next((m for m in self.catalog.models if m.name == name), None)
