"""What the store's tests share: quotas as a config file states them,
payments and reservations, and the process start method of the crash tests."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime

from model_assigner.bot.store.state import Reservation, State
from model_assigner.core.config_subscriptions import SubscriptionsConfig
from model_assigner.core.types import ApiBudget, Payment, Subscription

NOW = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
RESET = datetime(2026, 3, 1, tzinfo=UTC)
# multiprocessing start method: fork is fast and available on Linux, where
# flock and the atomic rename are what is under test.
MP = multiprocessing.get_context("fork")


def quotas(
    *,
    monthly: int | None = 5_000_000,
    daily: int | None = 1_000_000,
    budget: float = 100.0,
    reset: datetime = RESET,
    extra: tuple[Subscription, ...] = (),
) -> SubscriptionsConfig:
    subscriptions = [
        Subscription(
            model_family="claude",
            monthly_cost=20.0,
            token_limit_daily=daily,
            token_limit_monthly=monthly,
            reset_date=reset,
        ),
        *extra,
    ]
    # As a config file would state them: a pinned first reset_date.
    return SubscriptionsConfig.model_validate(
        {
            "subscriptions": [s.model_dump(exclude={"usage_day"}) for s in subscriptions],
            "api_budget": ApiBudget(monthly_limit_usd=budget, reset_date=reset).model_dump(),
        }
    )


def sub_payment(tokens: int, family: str = "claude") -> Payment:
    return Payment(kind="subscription", family=family, tokens=tokens, cost_usd=0.0)


def api_payment(cost: float, tokens: int = 10_000) -> Payment:
    return Payment(kind="api", family="openai", tokens=tokens, cost_usd=cost)


def held(payment: Payment, at: datetime = NOW, model: str = "sonnet-4.5") -> Reservation:
    return Reservation(model=model, payment=payment, charged_at=at)


def claude(state: State) -> Subscription:
    return state.subscriptions["claude"]
