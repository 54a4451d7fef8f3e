"""Quota and budget arithmetic: what is left, what pays, charging and resets.

All of it works on a ``Ledger`` that the caller owns; nothing here reads the
clock, so a reset happens exactly when the caller's ``now`` says so.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from model_assigner.core.types import ApiBudget, Model, Payment, Subscription, as_utc

INF = float("inf")
# Money is compared with a little slack so that 0.1 + 0.2 fits a budget of 0.3.
COST_EPSILON = 1e-9


@dataclass
class Ledger:
    """The quota state a decision reads and a charge changes."""

    subscriptions: list[Subscription]
    budget: ApiBudget
    _by_family: dict[str, Subscription] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_family = {sub.model_family: sub for sub in self.subscriptions}

    def subscription_for(self, family: str) -> Subscription | None:
        return self._by_family.get(family)

    def copy(self) -> Ledger:
        return Ledger([sub.model_copy() for sub in self.subscriptions], self.budget.model_copy())


def remaining_daily(sub: Subscription) -> float:
    limit = INF if sub.token_limit_daily is None else sub.token_limit_daily
    return limit - sub.tokens_used_today


def remaining_monthly(sub: Subscription) -> float:
    limit = INF if sub.token_limit_monthly is None else sub.token_limit_monthly
    return limit - sub.tokens_used_month


def has_room(sub: Subscription, tokens: int) -> bool:
    return tokens <= remaining_daily(sub) and tokens <= remaining_monthly(sub)


def has_quota(available_subscriptions: list[Subscription], family: str) -> bool:
    return any(sub.model_family == family for sub in available_subscriptions)


def get_remaining_monthly_budget(budget: ApiBudget) -> float:
    return budget.monthly_limit_usd - budget.spent_usd


def calculate_cost(model: Model, input_tokens: int, output_tokens: int) -> float:
    input_cost = (input_tokens / 1_000_000) * model.cost_per_mtok_input
    output_cost = (output_tokens / 1_000_000) * model.cost_per_mtok_output
    return input_cost + output_cost


def _finite(value: float) -> int | None:
    return None if value == INF else int(value)


def payment_for(
    model: Model, ledger: Ledger, input_tokens: int, output_tokens: int
) -> Payment | None:
    """Who would pay: the model's family subscription when it has room, else the
    API budget when the cost fits, else nobody (None)."""
    total = input_tokens + output_tokens
    sub = ledger.subscription_for(model.family)
    if sub is not None and has_room(sub, total):
        return Payment(
            kind="subscription",
            family=sub.model_family,
            tokens=total,
            cost_usd=0.0,
            remaining_daily=_finite(remaining_daily(sub) - total),
            remaining_monthly=_finite(remaining_monthly(sub) - total),
        )
    cost = calculate_cost(model, input_tokens, output_tokens)
    remaining_budget = get_remaining_monthly_budget(ledger.budget)
    if cost <= remaining_budget + COST_EPSILON:
        return Payment(
            kind="api",
            family=model.family,
            tokens=total,
            cost_usd=cost,
            remaining_budget_usd=max(0.0, remaining_budget - cost),
        )
    return None


def can_use_model(model: Model, ledger: Ledger, input_tokens: int, output_tokens: int) -> bool:
    return payment_for(model, ledger, input_tokens, output_tokens) is not None


def update_quota_tracking(ledger: Ledger, payment: Payment) -> None:
    """Charge a payment that ``payment_for`` produced against the same ledger."""
    if payment.kind == "subscription":
        sub = ledger.subscription_for(payment.family or "")
        if sub is None:
            raise ValueError(f"no subscription for family {payment.family!r}")
        sub.tokens_used_today += payment.tokens
        sub.tokens_used_month += payment.tokens
    else:
        ledger.budget.spent_usd += payment.cost_usd


def release_charge(ledger: Ledger, payment: Payment, charged_at: datetime) -> None:
    """Give back a charge, but only from the periods it was counted in: a charge
    from yesterday is no longer in today's count, and one from before the last
    monthly reset is in no count at all."""
    charged_at = as_utc(charged_at)
    if payment.kind == "subscription":
        sub = ledger.subscription_for(payment.family or "")
        if sub is None:
            return
        if sub.usage_day is None or charged_at.date() == sub.usage_day:
            sub.tokens_used_today = max(0, sub.tokens_used_today - payment.tokens)
        if charged_at >= add_months(sub.reset_date, -1):
            sub.tokens_used_month = max(0, sub.tokens_used_month - payment.tokens)
    elif charged_at >= add_months(ledger.budget.reset_date, -1):
        ledger.budget.spent_usd = max(0.0, ledger.budget.spent_usd - payment.cost_usd)


def add_months(moment: datetime, months: int, day: int | None = None) -> datetime:
    """``day`` (default: moment's) of the month ``months`` on, clamped to that
    month's last day (Jan 31 -> Feb 28)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(day or moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def first_reset_after(now: datetime, day: int) -> datetime:
    """Midnight UTC of the first ``day`` of a month (clamped to the month's
    last day) that lies after ``now``: the first reset of a quota state
    seeded at ``now`` from a config that names only a day of the month."""
    now = as_utc(now)
    this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
    candidate = add_months(this_month, 0, day)
    return candidate if candidate > now else add_months(this_month, 1, day)


def next_reset(reset_date: datetime, now: datetime, day: int | None = None) -> datetime:
    """The first of reset_date, +1 month, +2 months ... that lies after now,
    each on ``day`` of its month (default reset_date's), clamped to the
    month's last day: resets on the 31st fall on 28 February, then on 31
    March again, not on the 28th for ever after."""
    months = 0
    moved = reset_date
    while moved <= now:
        months += 1
        moved = add_months(reset_date, months, day)
    return moved


def roll_over_subscription(sub: Subscription, now: datetime) -> bool:
    """Apply the resets due at ``now``; True when anything changed.

    Daily usage belongs to one UTC day (``usage_day``); monthly usage resets at
    ``reset_date``, which then moves one month on (repeatedly, if the ledger was
    asleep for months)."""
    now = as_utc(now)
    changed = False
    today = now.date()
    if sub.usage_day != today:
        if sub.usage_day is not None and sub.tokens_used_today:
            sub.tokens_used_today = 0
        sub.usage_day = today
        changed = True
    if now >= sub.reset_date:
        sub.tokens_used_month = 0
        sub.reset_date = next_reset(sub.reset_date, now, sub.reset_day)
        changed = True
    return changed


def roll_over_budget(budget: ApiBudget, now: datetime) -> bool:
    now = as_utc(now)
    if now >= budget.reset_date:
        budget.spent_usd = 0.0
        budget.reset_date = next_reset(budget.reset_date, now, budget.reset_day)
        return True
    return False


def roll_over(ledger: Ledger, now: datetime) -> bool:
    changed = [roll_over_subscription(sub, now) for sub in ledger.subscriptions]
    return roll_over_budget(ledger.budget, now) or any(changed)
