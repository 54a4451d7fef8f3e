"""The schema of config/subscriptions.yaml: each subscription's limits,
starting counters and reset schedule, and the API budget. ``ledger_at(now)``
makes the live quota state from it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import Field, model_validator

from model_assigner.core.config_bounds import Strict
from model_assigner.core.quota import Ledger, first_reset_after
from model_assigner.core.types import MAX_COUNT, ApiBudget, Subscription, as_utc


class _ResetSchedule(Strict):
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


class SubscriptionsConfig(Strict):
    """config/subscriptions.yaml."""

    subscriptions: list[SubscriptionDefaults] = Field(default_factory=list)
    api_budget: BudgetDefaults
    # The most of each subscription's monthly tokens, and of the API budget,
    # that the live reservations of one repository may hold (1: no limit),
    # once the store knows issues of another repository: one busy or hostile
    # repository then cannot starve the others, and a repository alone in
    # the installation still has the whole quota (docs/design-decisions.md).
    repository_share: float = Field(default=0.5, gt=0, le=1)

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
