"""The engine's configuration: every number the seed uses, as a validated schema.

The seed hard-codes its thresholds inside functions; here they are data, so a
repository can tune them and a reader can find each one by name. Validation is
strict (unknown keys are errors) because a misspelt key that silently falls back
to a default is the worst kind of configuration bug.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    StringConstraints,
    model_validator,
)

from model_assigner.core.quota import Ledger, first_reset_after
from model_assigner.core.text import MAX_KEYWORD_CHARS
from model_assigner.core.types import (
    MAX_COUNT,
    ApiBudget,
    Complexity,
    Model,
    Priority,
    Strategy,
    Subscription,
    Tier,
    as_utc,
)

COMPLEXITY_LEVELS: tuple[Complexity, ...] = ("simple", "moderate", "complex", "highly_complex")
TIERS: tuple[Tier, ...] = ("premium", "mid-premium", "mid-range", "budget")

# Bounds on everything a config (a repository's included) can make the engine
# walk for every issue: a word list, a table of named entries, one word. The
# defaults use a fraction of each; a 30 KB keyword list is refused, not run.
MAX_WORDS = 64  # entries of one keyword / label / path-hint list
MAX_TABLE = 32  # named entries of one table (domains, risk levels, modifiers)
MAX_RULES = 16  # entries of an ordered rule list (bands, overrides, size factors)
MAX_NAME_CHARS = 64
# Tokens one issue can be estimated at: a billion is beyond any context window.
MAX_ESTIMATE_TOKENS = 10**9

Word = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEYWORD_CHARS)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
Words = Annotated[list[Word], Field(max_length=MAX_WORDS)]
TokenCount = Annotated[int, Field(ge=0, le=MAX_ESTIMATE_TOKENS)]


class _Strict(BaseModel):
    # No inf or nan: a weight of 1e400 would clamp every score to 100.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TimeBonuses(_Strict):
    immediate: NonNegativeFloat
    urgent: NonNegativeFloat
    week: NonNegativeFloat
    month: NonNegativeFloat
    flexible: NonNegativeFloat = 0


class TimeHours(_Strict):
    immediate: NonNegativeFloat
    urgent: NonNegativeFloat
    week: NonNegativeFloat
    month: NonNegativeFloat

    @model_validator(mode="after")
    def _ascending(self) -> Self:
        if not self.immediate <= self.urgent <= self.week <= self.month:
            raise ValueError("hours must ascend: immediate <= urgent <= week <= month")
        return self


class ComplexityRule(_Strict):
    files_at_least: int = Field(ge=0, le=MAX_COUNT)
    loc_above: int = Field(ge=0, le=MAX_COUNT)


class RiskIndicators(_Strict):
    labels: Words = Field(default_factory=list)
    path_hints: Words = Field(default_factory=list)
    description_keywords: Words = Field(default_factory=list)


# A token multiplier above this is a typo (or an attack on the budget).
MAX_FACTOR = 100.0
Factor = Annotated[float, Field(ge=0, le=MAX_FACTOR)]


class TokenFactor(_Strict):
    input: Factor = 1.0
    output: Factor = 1.0


class WorkspaceSizeFactor(_Strict):
    files_above: int = Field(ge=0, le=MAX_COUNT)
    input: Factor = 1.0
    output: Factor = 1.0


class ValueBand(_Strict):
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


class DomainOverride(_Strict):
    domain: Name
    min_value: float = Field(ge=0)
    prefer_family: Name


class BatchThresholds(_Strict):
    """The value cut-offs of the seed's Phase 4 strategies."""

    maximize_value_always: float = Field(default=75, ge=0)
    maximize_value_if_affordable: float = Field(default=40, ge=0)
    minimize_cost_api_overflow: float = Field(default=40, ge=0)


class OptimalConfig(_Strict):
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


class LearnedFactor(_Strict):
    """A calibration factor for one complexity and domain, and the evidence."""

    factor: float = Field(gt=0)
    samples: int = Field(ge=0)  # finished issues of this complexity and domain
    domain_samples: int = Field(ge=0)  # finished issues of this domain


class CalibrationConfig(_Strict):
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
class OnlineConfig(_Strict):
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


class WorkspaceWorkingSet(_Strict):
    files_above: int = Field(ge=0)
    factor: NonNegativeFloat


class ContextFit(_Strict):
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


class ScoringConfig(_Strict):
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


class _ResetSchedule(_Strict):
    """When monthly usage resets, as a config file states it.

    A shipped config must not carry a calendar date: a fixed ``reset_date``
    goes stale the day it passes, and everything that reads the config then
    starts mid-reset. So the config names a day of the month (``reset_day``)
    and the first reset is derived from the clock when the quota state is
    first built. A ``reset_date`` is still accepted (configs written before
    ``reset_day`` existed): it is the first reset, and later ones fall on its
    day of the month, exactly as before.
    """

    reset_day: int | None = Field(default=None, ge=1, le=31)
    reset_date: datetime | None = None

    @property
    def day(self) -> int:
        """The day of the month resets fall on."""
        if self.reset_day is not None:
            return self.reset_day
        return self.reset_date.day if self.reset_date is not None else 1

    def first_reset(self, now: datetime) -> datetime:
        """The pinned ``reset_date`` if the config has one (the roll-over
        moves it past ``now``), else the next ``reset_day`` after ``now``."""
        if self.reset_date is not None:
            return as_utc(self.reset_date)
        return first_reset_after(now, self.day)


class SubscriptionDefaults(_ResetSchedule):
    """A subscription in config/subscriptions.yaml: its limits, its starting
    counters and its reset schedule. ``at(now)`` makes the live record."""

    model_family: str = Field(min_length=1)
    monthly_cost: float = Field(default=0.0, ge=0)
    token_limit_daily: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    token_limit_monthly: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    tokens_used_today: int = Field(default=0, ge=0, le=MAX_COUNT)
    tokens_used_month: int = Field(default=0, ge=0, le=MAX_COUNT)

    def at(self, now: datetime) -> Subscription:
        return Subscription(
            model_family=self.model_family,
            monthly_cost=self.monthly_cost,
            token_limit_daily=self.token_limit_daily,
            token_limit_monthly=self.token_limit_monthly,
            tokens_used_today=self.tokens_used_today,
            tokens_used_month=self.tokens_used_month,
            reset_date=self.first_reset(now),
            reset_day=self.day,
        )


class BudgetDefaults(_ResetSchedule):
    """The API budget in config/subscriptions.yaml; ``at(now)`` as above."""

    monthly_limit_usd: float = Field(ge=0)
    spent_usd: float = Field(default=0.0, ge=0)

    def at(self, now: datetime) -> ApiBudget:
        return ApiBudget(
            monthly_limit_usd=self.monthly_limit_usd,
            spent_usd=self.spent_usd,
            reset_date=self.first_reset(now),
            reset_day=self.day,
        )


class SubscriptionsConfig(_Strict):
    """config/subscriptions.yaml."""

    subscriptions: list[SubscriptionDefaults] = Field(default_factory=list)
    api_budget: BudgetDefaults
    # The most of each subscription's monthly tokens, and of the API budget,
    # that the live reservations of one repository may hold (1: no limit).
    # One busy or hostile repository then cannot starve the others.
    repository_share: float = Field(default=1.0, gt=0, le=1)

    def ledger_at(self, now: datetime) -> Ledger:
        """The starting quota state for a store seeded, or a plan made, at
        ``now``: fresh objects every call, never shared with the config."""
        return Ledger([sub.at(now) for sub in self.subscriptions], self.api_budget.at(now))

    @model_validator(mode="after")
    def _unique(self) -> Self:
        families = [sub.model_family for sub in self.subscriptions]
        if len(set(families)) != len(families):
            raise ValueError("subscriptions: one subscription per model_family")
        return self


class CatalogConfig(_Strict):
    """config/models.yaml."""

    models: list[Model] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [model.name for model in self.models]
        if len(set(names)) != len(names):
            raise ValueError("models: model names must be unique")
        return self


class EngineConfig(_Strict):
    """All three files together, checked against each other."""

    scoring: ScoringConfig
    catalog: CatalogConfig
    quotas: SubscriptionsConfig

    @property
    def models(self) -> list[Model]:
        return self.catalog.models

    def model_named(self, name: str) -> Model | None:
        return next((m for m in self.catalog.models if m.name == name), None)
