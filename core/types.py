"""The seed's data structures, plus what the seed needs but never defines.

The seed's fields keep their names (``tokens_used_today``, ``cost_per_mtok_input``
...) so that its pseudocode, our code and the JSON we emit all read alike.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model_assigner.core.reasons import Reason

Priority = Literal["P0", "P1", "P2", "P3", "P4"]
Tier = Literal["premium", "mid-premium", "mid-range", "budget"]
Complexity = Literal["simple", "moderate", "complex", "highly_complex"]
Strategy = Literal[
    "maximize_subscription_usage", "minimize_cost", "maximize_value", "optimal", "online"
]

STRATEGIES: tuple[Strategy, ...] = (
    "maximize_subscription_usage",
    "minimize_cost",
    "maximize_value",
    "optimal",
    "online",
)
# The seed's Phase 4 strategies, each a single greedy pass over the batch.
GREEDY_STRATEGIES: tuple[Strategy, ...] = STRATEGIES[:3]


# The largest count (tokens, files) anything may hold: a quadrillion is
# absurd for any quota, and far below where int-to-float arithmetic overflows
# (10**320 tokens raised OverflowError on every delivery).
MAX_COUNT = 10**15


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are read as UTC: GitHub and the seed's examples mean UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Task(BaseModel):
    """A unit of work. ``blocks`` and ``workspace_files`` are ours, not the seed's:
    the seed asks whether a task blocks others and how big its workspace is but
    gives no way to say so, and a GitHub repository is not a local path."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    title: str
    description: str = ""
    # Optional: a task with no priority gets the default weight (the seed's
    # priority_map.get(..., 20)).
    priority: Priority | None = None
    labels: list[str] = Field(default_factory=list)
    estimated_files: int = Field(default=0, ge=0)
    estimated_loc: int = Field(default=0, ge=0)
    dependencies: list[str] = Field(default_factory=list)
    workspace_path: str = ""
    deadline: datetime | None = None
    assigned_model: str | None = None
    value_score: float | None = None
    blocks: list[str] = Field(default_factory=list)
    workspace_files: int | None = Field(default=None, ge=0)

    @field_validator("deadline")
    @classmethod
    def _deadline_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


class Model(BaseModel):
    """A model the engine may pick. ``family`` is ours: the seed matched models
    to subscriptions by name prefix, and ``sonnet-4.5`` never starts with
    ``claude``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1)
    family: str = Field(min_length=1)
    tier: Tier
    cost_per_mtok_input: float = Field(ge=0)
    cost_per_mtok_output: float = Field(ge=0)
    context_window: int = Field(gt=0)
    capabilities: dict[str, float] = Field(default_factory=dict)
    benchmarks: dict[str, float] = Field(default_factory=dict)
    # Ours, for reported usage (core/usage.py): cache reads and writes at the
    # vendor's prices (None: priced as input), and the ids agents report.
    cost_per_mtok_cache_read: float | None = Field(default=None, ge=0)
    cost_per_mtok_cache_write: float | None = Field(default=None, ge=0)
    api_names: list[str] = Field(default_factory=list)


class Subscription(BaseModel):
    """A flat-fee plan with token quotas. ``usage_day`` is ours: without it no
    one can tell when ``tokens_used_today`` must go back to zero.

    Finite numbers only: a store or config holding ``1e400`` or ``Infinity``
    would be written back as ``null``, which no later start could read."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model_family: str = Field(min_length=1)
    monthly_cost: float = Field(default=0.0, ge=0)
    token_limit_daily: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    token_limit_monthly: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    tokens_used_today: int = Field(default=0, ge=0, le=MAX_COUNT)
    tokens_used_month: int = Field(default=0, ge=0, le=MAX_COUNT)
    reset_date: datetime
    usage_day: date | None = None
    # Ours: the day of the month resets fall on. reset_date alone forgets it
    # once a short month clamps it (31 Jan -> 28 Feb -> 28 Mar ...).
    reset_day: int | None = Field(default=None, ge=1, le=31)

    @field_validator("reset_date")
    @classmethod
    def _reset_utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @model_validator(mode="after")
    def _remember_reset_day(self) -> Self:
        if self.reset_day is None:
            self.reset_day = self.reset_date.day
        return self


class ApiBudget(BaseModel):
    """The monthly pay-as-you-go budget the seed's ``get_remaining_monthly_budget``
    reads but never defines. Finite numbers only (see Subscription)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    monthly_limit_usd: float = Field(ge=0)
    spent_usd: float = Field(default=0.0, ge=0)
    reset_date: datetime
    reset_day: int | None = Field(default=None, ge=1, le=31)  # as Subscription's

    @field_validator("reset_date")
    @classmethod
    def _reset_utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @model_validator(mode="after")
    def _remember_reset_day(self) -> Self:
        if self.reset_day is None:
            self.reset_day = self.reset_date.day
        return self


class ScoreBreakdown(BaseModel):
    """Every term of ``calculate_task_value``: the comment and CLI show all of it,
    so a maintainer can see which label or deadline moved the score. Each
    ``*_signal``/``*_reason`` is the signal that set its term, as data
    (core/reasons.py; worded by core/wording.py)."""

    priority: str | None
    priority_weight: float
    complexity: Complexity
    complexity_multiplier: float
    complexity_signal: Reason
    time_bonus: float
    time_reason: Reason
    domain: str
    domain_modifier: float
    domain_reason: Reason
    risk: str
    risk_modifier: float
    risk_reason: Reason
    raw_score: float
    value_score: float


class TokenEstimate(BaseModel):
    input_tokens: int
    output_tokens: int
    workspace_files: int
    # How the estimate was made, one Reason per step (base, domain, workspace,
    # calibration).
    adjustments: list[Reason] = Field(default_factory=list)
    # Ours: the learned factor applied (core/calibration.py), 1.0 for none.
    calibration: float = 1.0
    # Ours: the tokens one turn of an agent holds at once (context_fit in
    # config/scoring.yaml); a model whose context window is smaller is never
    # assigned. 0: no requirement (an estimate made before the rule existed).
    working_set: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


class Observation(BaseModel):
    """An issue the online strategy has seen: what its prices are learned
    from. Only what deciding it needs, so the store keeps it small."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    domain: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    working_set: int = Field(default=0, ge=0)
    seen_at: datetime

    @field_validator("seen_at")
    @classmethod
    def _seen_utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class PassedOver(BaseModel):
    """A preferred model the engine did not take, and why."""

    model: str
    reason: Reason


class Payment(BaseModel):
    """What pays for a decision and what is left after it. Finite numbers
    only: a reservation is stored, and must read back."""

    model_config = ConfigDict(allow_inf_nan=False)

    kind: Literal["subscription", "api"]
    family: str | None = None
    tokens: int = Field(ge=0, le=MAX_COUNT)
    cost_usd: float
    remaining_daily: int | None = None
    remaining_monthly: int | None = None
    remaining_budget_usd: float | None = None

    @property
    def label(self) -> str:
        return f"subscription:{self.family}" if self.kind == "subscription" else "api"


class Decision(BaseModel):
    """The engine's answer for one task: the model (None = deferred) and the
    whole why, so that callers never need to re-derive an explanation."""

    task_id: str
    model: str | None
    value_score: float
    value_density: float
    breakdown: ScoreBreakdown
    tokens: TokenEstimate
    cost_usd: float
    band: str
    strategy: str
    payment: Payment | None = None
    passed_over: list[PassedOver] = Field(default_factory=list)
    # Why, and for a deferral what would change it: codes and values
    # (core/reasons.py), worded only by core/wording.py.
    reason: Reason
    unblock_hint: Reason | None = None
    # Ours, for the comment: why a subscription with room was not used and
    # what would change it (core.idle.idle_reasons); and, for a person's
    # override, what model-assigner itself would have chosen.
    idle: list[Reason] = Field(default_factory=list)
    instead: Reason | None = None

    @property
    def deferred(self) -> bool:
        return self.model is None

    @property
    def paid_by(self) -> str | None:
        return None if self.payment is None else self.payment.label
