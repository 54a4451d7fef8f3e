"""What an issue really used: reported token counts, their price, who pays.

An agent run reports tokens per model and per kind (fresh input, cache
writes, cache reads, output). This module prices them at the catalog's list
price, finds the payer (the assigned model's payer, or the family
subscription of the model really used) and charges the ledger in the periods
the run belongs to. It reads no clock: the caller passes the run's time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from model_assigner.core.quota import Ledger, add_months
from model_assigner.core.types import Decision, Model, Payment, as_utc

# A run may use several models (Claude Code's sub-agents): one line each.
MAX_LINES = 20
# No real run reports more than this many tokens of one kind; a bigger number
# is a typo or an attack, and would wipe out a month's quota in one report.
MAX_TOKENS = 10**10


class TokenUsage(BaseModel):
    """One model's tokens in one run, by the kinds the vendors price apart.
    ``input_tokens`` are the uncached ones (as Anthropic and our parsers
    count them); ``reported_cost_usd`` is the agent's own figure, shown
    beside ours, never charged."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: str | None = Field(default=None, min_length=1, max_length=200)
    input_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS)
    output_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS)
    cache_creation_input_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS)
    cache_read_input_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS)
    reported_cost_usd: float | None = Field(default=None, ge=0, le=1_000_000)

    @property
    def total(self) -> int:
        """Every token processed: what a subscription's token quota counts."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


class UsageReport(BaseModel):
    """One run's usage. ``run_id`` (a workflow run and attempt, or an agent's
    session id) is what makes a report idempotent: the same run reported
    twice counts once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    lines: list[TokenUsage] = Field(min_length=1, max_length=MAX_LINES)
    ended_at: datetime | None = None
    source: str = Field(default="operator", max_length=40)

    @field_validator("ended_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @property
    def total(self) -> int:
        return sum(line.total for line in self.lines)


class EstimateClass(BaseModel):
    """What a calibration sample needs of a decision's estimate, kept on the
    issue's reservation: its class and the formula's estimate before
    calibration (learning actual / base, a factor never feeds on itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    complexity: str = Field(max_length=40)
    domain: str = Field(max_length=100)
    base_tokens: int = Field(ge=0)
    calibration: float = Field(default=1.0, gt=0)


def estimate_class(decision: Decision) -> EstimateClass:
    factor = decision.tokens.calibration or 1.0
    return EstimateClass(
        complexity=decision.breakdown.complexity,
        domain=decision.breakdown.domain,
        base_tokens=round(decision.tokens.total / factor),
        calibration=factor,
    )


class EstimateSnapshot(BaseModel):
    """What the decision reserved for an issue, kept so that a report that
    comes later (even after the issue closed) knows the assigned model, its
    payer, and the estimate the calibration compares with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    payment: Payment
    charged_at: datetime
    complexity: str
    domain: str
    # The formula's estimate before calibration: the calibration learns
    # actual / base, so that its own factor never feeds back into itself.
    base_tokens: int = Field(ge=0)
    calibration: float = 1.0

    @property
    def tokens(self) -> int:
        return self.payment.tokens


class Charge(BaseModel):
    """One line of a run as charged: to whom, how much, and why there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    reported_model: str | None = None
    payment: Payment
    list_cost_usd: float
    reported_cost_usd: float | None = None
    note: str | None = None


class Run(BaseModel):
    """A reported run: its lines, and their charges (empty while the issue
    has no decision to charge them against)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reported_at: datetime
    ended_at: datetime
    source: str
    lines: list[TokenUsage]
    charges: list[Charge] = Field(default_factory=list)

    @property
    def charged(self) -> bool:
        return bool(self.charges)

    @property
    def tokens(self) -> int:
        return sum(line.total for line in self.lines)


class IssueUsage(BaseModel):
    """An issue's estimate and the runs reported for it. Frozen: replaced,
    never changed in place (the store shares parsed copies)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    estimate: EstimateSnapshot | None = None
    # True while a closed issue's estimate still counts as usage (its
    # reservation was settled before any report came): a late report then
    # gives it back. An open issue's estimate is its reservation instead.
    estimate_held: bool = False
    runs: dict[str, Run] = Field(default_factory=dict)

    @property
    def charged_runs(self) -> list[Run]:
        return [run for run in self.runs.values() if run.charged]

    @property
    def pending_runs(self) -> dict[str, Run]:
        return {key: run for key, run in self.runs.items() if not run.charged}

    @property
    def actual_tokens(self) -> int:
        return sum(charge.payment.tokens for run in self.charged_runs for charge in run.charges)

    @property
    def actual_cost_usd(self) -> float:
        """The API dollars charged (subscription-paid lines cost none)."""
        return sum(c.payment.cost_usd for run in self.charged_runs for c in run.charges)

    @property
    def list_cost_usd(self) -> float:
        return sum(c.list_cost_usd for run in self.charged_runs for c in run.charges)

    @property
    def reported_cost_usd(self) -> float | None:
        costs = [c.reported_cost_usd for run in self.charged_runs for c in run.charges]
        known = [cost for cost in costs if cost is not None]
        return sum(known) if known else None


# -- the catalog's names for what agents report --------------------------------

_DATE_SUFFIX = re.compile(r"(-\d{8}|-\d{4}-\d{2}-\d{2}|@\d{8})$")
_VERSION_DASH = re.compile(r"(?<=\d)-(?=\d(?:$|[^\d]))")


def normalize_model_name(name: str) -> str:
    """``claude-sonnet-4-5-20250929`` -> ``sonnet-4.5``; ``gpt-4-turbo-2024-04-09``
    -> ``gpt-4-turbo``. Agents report the vendor's API id; the catalog names
    the model the way people say it."""
    text = name.strip().lower()
    text = text.rsplit("/", 1)[-1]  # "anthropic/claude-..." as routers write it
    text = _DATE_SUFFIX.sub("", text)
    text = text.removeprefix("claude-")
    return _VERSION_DASH.sub(".", text)


def resolve_model(models: Sequence[Model], name: str | None) -> Model | None:
    """The catalog model an agent's model name means: the catalog's own name,
    one of the model's ``api_names``, or the name normalized."""
    if not name:
        return None
    for model in models:
        if name == model.name or name in model.api_names:
            return model
    wanted = normalize_model_name(name)
    for model in models:
        names = [model.name, *model.api_names]
        if any(normalize_model_name(known) == wanted for known in names):
            return model
    return None


# -- price and payer -------------------------------------------------------------


def list_price(model: Model, usage: TokenUsage) -> float:
    """USD at the catalog's list price, each token kind at its own price;
    cache prices default to the input price when the catalog has none."""
    read = model.cost_per_mtok_cache_read
    write = model.cost_per_mtok_cache_write
    per_mtok = (
        usage.input_tokens * model.cost_per_mtok_input
        + usage.output_tokens * model.cost_per_mtok_output
        + usage.cache_creation_input_tokens
        * (model.cost_per_mtok_input if write is None else write)
        + usage.cache_read_input_tokens * (model.cost_per_mtok_input if read is None else read)
    )
    return per_mtok / 1_000_000


def charge_in_periods(ledger: Ledger, payment: Payment, when: datetime) -> None:
    """Add a charge to the periods ``when`` falls in: a run that ended
    yesterday is not in today's count, one that ended before the last
    monthly reset in no count at all (``release_charge``'s mirror)."""
    when = as_utc(when)
    if payment.kind == "subscription":
        sub = ledger.subscription_for(payment.family or "")
        if sub is None:
            raise ValueError(f"no subscription for family {payment.family!r}")
        if sub.usage_day is None or when.date() == sub.usage_day:
            sub.tokens_used_today += payment.tokens
        if when >= add_months(sub.reset_date, -1):
            sub.tokens_used_month += payment.tokens
    elif when >= add_months(ledger.budget.reset_date, -1):
        ledger.budget.spent_usd += payment.cost_usd


def _payer(
    model: Model, estimate: EstimateSnapshot, ledger: Ledger, usage: TokenUsage
) -> Payment:
    """The assigned model's usage goes to the payer its reservation had; any
    other model's to its family subscription when there is one, else to the
    API budget. What was used is charged even past a limit: it is spent."""
    price = list_price(model, usage)
    if model.name == estimate.model:
        kind, family = estimate.payment.kind, estimate.payment.family
        if kind == "subscription" and ledger.subscription_for(family or "") is None:
            kind = "api"  # the subscription left the config since
    elif ledger.subscription_for(model.family) is not None:
        kind, family = "subscription", model.family
    else:
        kind, family = "api", model.family
    if kind == "subscription":
        return Payment(kind="subscription", family=family, tokens=usage.total, cost_usd=0.0)
    return Payment(kind="api", family=family, tokens=usage.total, cost_usd=price)


def charge_run(
    estimate: EstimateSnapshot,
    lines: Iterable[TokenUsage],
    ledger: Ledger,
    models: Sequence[Model],
    when: datetime,
) -> list[Charge]:
    """Price and charge one run's lines; returns what was charged. A line
    without a model is the assigned model's; a model the catalog does not
    know is priced and paid as the assigned model, and says so."""
    assigned = resolve_model(models, estimate.model)
    charges: list[Charge] = []
    for line in lines:
        model = resolve_model(models, line.model) if line.model else assigned
        note = None
        if model is None:
            model = assigned
            note = f"{line.model} is not in the catalog: priced and paid as {estimate.model}"
        if model is None:  # the assigned model left the catalog: nothing to price with
            raise ValueError(f"{estimate.model!r} is no longer in the model catalog")
        payment = _payer(model, estimate, ledger, line)
        if note is None and model.name != estimate.model:
            note = (
                f"ran on {model.name}, not the assigned {estimate.model}: "
                f"paid by {payment.label}"
            )
        charge_in_periods(ledger, payment, when)
        charges.append(
            Charge(
                model=model.name,
                reported_model=line.model,
                payment=payment,
                list_cost_usd=list_price(model, line),
                reported_cost_usd=line.reported_cost_usd,
                note=note,
            )
        )
    return charges
