"""Quota and budget arithmetic, charging, releasing and resets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from model_assigner.core.config import EngineConfig
from model_assigner.core.config_subscriptions import SubscriptionsConfig
from model_assigner.core.quota import (
    INF,
    add_months,
    calculate_cost,
    can_use_model,
    first_reset_after,
    get_remaining_monthly_budget,
    has_quota,
    has_room,
    next_reset,
    payment_for,
    release_charge,
    remaining_daily,
    remaining_monthly,
    roll_over,
    roll_over_budget,
    roll_over_subscription,
    update_quota_tracking,
)
from model_assigner.core.types import ApiBudget, Model, Subscription
from tests.helpers import NOW, build_ledger


def sub(
    *,
    family: str = "claude",
    daily: int | None = None,
    monthly: int | None = None,
    today: int = 0,
    month: int = 0,
    reset: datetime = datetime(2026, 3, 1, tzinfo=UTC),
    usage_day: date | None = None,
) -> Subscription:
    return Subscription(
        model_family=family,
        token_limit_daily=daily,
        token_limit_monthly=monthly,
        tokens_used_today=today,
        tokens_used_month=month,
        reset_date=reset,
        usage_day=usage_day,
    )


@pytest.fixture
def sonnet(engine_config: EngineConfig) -> Model:
    model = engine_config.model_named("sonnet-4.5")
    assert model is not None
    return model


@pytest.fixture
def gpt4_turbo(engine_config: EngineConfig) -> Model:
    model = engine_config.model_named("gpt-4-turbo")
    assert model is not None
    return model


# --- remaining, has_room, has_quota -------------------------------------------


def test_remaining_without_limits_is_infinite() -> None:
    s = sub(today=10**9, month=10**9)
    assert remaining_daily(s) == INF
    assert remaining_monthly(s) == INF
    assert has_room(s, 10**12)


def test_remaining_with_limits() -> None:
    s = sub(daily=1000, monthly=5_000_000, today=400, month=1_200_000)
    assert remaining_daily(s) == 600
    assert remaining_monthly(s) == 3_800_000


@pytest.mark.parametrize(
    ("daily", "monthly", "today", "month", "tokens", "room"),
    [
        (None, 5_000_000, 0, 1_200_000, 3_800_000, True),  # exactly what is left
        (None, 5_000_000, 0, 1_200_000, 3_800_001, False),
        (1000, None, 400, 0, 600, True),
        (1000, None, 400, 0, 601, False),
        (1000, 5000, 0, 4500, 600, False),  # the monthly limit binds
        (1000, 5000, 900, 0, 200, False),  # the daily limit binds
        (1000, 5000, 0, 0, 0, True),
        (0, None, 0, 0, 1, False),
    ],
)
def test_has_room(
    daily: int | None, monthly: int | None, today: int, month: int, tokens: int, room: bool
) -> None:
    assert has_room(sub(daily=daily, monthly=monthly, today=today, month=month), tokens) is room


def test_has_quota() -> None:
    subs = [sub(family="claude"), sub(family="openai")]
    assert has_quota(subs, "claude")
    assert has_quota(subs, "openai")
    assert not has_quota(subs, "deepseek")
    assert not has_quota([], "claude")


def test_remaining_budget_and_cost(sonnet: Model) -> None:
    budget = ApiBudget(monthly_limit_usd=100, spent_usd=37.5, reset_date=NOW)
    assert get_remaining_monthly_budget(budget) == 62.5
    assert calculate_cost(sonnet, 1_000_000, 1_000_000) == pytest.approx(3.0 + 15.0)
    assert calculate_cost(sonnet, 27500, 3500) == pytest.approx((27500 * 3 + 3500 * 15) / 1e6)


# --- payment_for, can_use_model -------------------------------------------------


def test_payment_by_subscription_with_room(sonnet: Model) -> None:
    ledger = build_ledger(claude_used=1_200_000)
    payment = payment_for(sonnet, ledger, 27500, 3500)
    assert payment is not None
    assert payment.kind == "subscription"
    assert payment.family == "claude"
    assert payment.tokens == 31000
    assert payment.cost_usd == 0
    assert payment.remaining_monthly == 5_000_000 - 1_200_000 - 31000
    assert payment.remaining_daily is None
    assert payment.label == "subscription:claude"


def test_payment_falls_to_the_api_when_the_subscription_is_full(sonnet: Model) -> None:
    ledger = build_ledger(claude_used=5_000_000 - 30_999)
    payment = payment_for(sonnet, ledger, 27500, 3500)
    assert payment is not None
    assert payment.kind == "api"
    assert payment.cost_usd == pytest.approx(0.135)
    assert payment.remaining_budget_usd == pytest.approx(100 - 0.135)
    assert payment.label == "api"


def test_payment_by_api_for_a_family_without_subscription(gpt4_turbo: Model) -> None:
    payment = payment_for(gpt4_turbo, build_ledger(), 27500, 3500)
    assert payment is not None and payment.kind == "api"
    assert payment.cost_usd == pytest.approx((27500 * 10 + 3500 * 30) / 1e6)


@pytest.mark.parametrize(("slack", "payable"), [(0.0, True), (1e-6, True), (-1e-6, False)])
def test_api_payment_at_the_budget_boundary(gpt4_turbo: Model, slack: float, payable: bool) -> None:
    cost = (27500 * 10 + 3500 * 30) / 1e6
    ledger = build_ledger(claude=False, budget=10.0, spent=10.0 - cost - slack)
    assert can_use_model(gpt4_turbo, ledger, 27500, 3500) is payable
    assert (payment_for(gpt4_turbo, ledger, 27500, 3500) is not None) is payable


def test_nothing_pays_when_quota_and_budget_are_gone(sonnet: Model) -> None:
    ledger = build_ledger(claude_used=5_000_000, budget=0.0)
    assert payment_for(sonnet, ledger, 27500, 3500) is None
    assert not can_use_model(sonnet, ledger, 27500, 3500)


# --- update_quota_tracking, release_charge --------------------------------------


def test_update_quota_tracking_charges_the_subscription(sonnet: Model) -> None:
    ledger = build_ledger(claude_used=1_200_000, claude_today=5)
    payment = payment_for(sonnet, ledger, 27500, 3500)
    assert payment is not None
    update_quota_tracking(ledger, payment)
    claude = ledger.subscription_for("claude")
    assert claude is not None
    assert claude.tokens_used_month == 1_231_000
    assert claude.tokens_used_today == 31_005
    assert ledger.budget.spent_usd == 0


def test_update_quota_tracking_charges_the_api_budget(gpt4_turbo: Model) -> None:
    ledger = build_ledger(spent=1.0)
    payment = payment_for(gpt4_turbo, ledger, 27500, 3500)
    assert payment is not None
    update_quota_tracking(ledger, payment)
    assert ledger.budget.spent_usd == pytest.approx(1.38)
    claude = ledger.subscription_for("claude")
    assert claude is not None and claude.tokens_used_month == 0


def test_update_quota_tracking_refuses_an_unknown_subscription(sonnet: Model) -> None:
    payment = payment_for(sonnet, build_ledger(), 100, 100)
    assert payment is not None
    with pytest.raises(ValueError, match="claude"):
        update_quota_tracking(build_ledger(claude=False), payment)


def test_charges_until_the_quota_is_exactly_full(sonnet: Model) -> None:
    ledger = build_ledger(claude_monthly=93_000)
    for _ in range(3):
        payment = payment_for(sonnet, ledger, 27500, 3500)
        assert payment is not None and payment.kind == "subscription"
        update_quota_tracking(ledger, payment)
    payment = payment_for(sonnet, ledger, 27500, 3500)
    assert payment is not None and payment.kind == "api"
    claude = ledger.subscription_for("claude")
    assert claude is not None and remaining_monthly(claude) == 0


def test_release_charge_same_day_gives_back_both_counts(sonnet: Model) -> None:
    ledger = build_ledger(claude_used=100_000, claude_today=40_000)
    roll_over(ledger, NOW)
    payment = payment_for(sonnet, ledger, 27500, 3500)
    assert payment is not None
    update_quota_tracking(ledger, payment)
    release_charge(ledger, payment, NOW)
    claude = ledger.subscription_for("claude")
    assert claude is not None
    assert (claude.tokens_used_today, claude.tokens_used_month) == (40_000, 100_000)


def test_release_charge_from_yesterday_leaves_today_alone(sonnet: Model) -> None:
    ledger = build_ledger(claude_used=100_000, claude_today=1_000)
    roll_over(ledger, NOW)
    payment = payment_for(sonnet, ledger, 27500, 3500)
    assert payment is not None
    release_charge(ledger, payment, NOW - timedelta(days=1))
    claude = ledger.subscription_for("claude")
    assert claude is not None
    assert claude.tokens_used_today == 1_000
    assert claude.tokens_used_month == 100_000 - 31_000


def test_release_charge_from_before_the_period_gives_nothing_back(sonnet: Model) -> None:
    ledger = build_ledger(claude_used=100_000, claude_today=1_000)
    roll_over(ledger, NOW)
    payment = payment_for(sonnet, ledger, 27500, 3500)
    assert payment is not None
    # the period started 2026-02-01 (reset_date 2026-03-01 minus a month)
    release_charge(ledger, payment, datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    claude = ledger.subscription_for("claude")
    assert claude is not None
    assert (claude.tokens_used_today, claude.tokens_used_month) == (1_000, 100_000)


def test_release_charge_never_goes_negative(sonnet: Model) -> None:
    ledger = build_ledger(claude_used=10, claude_today=10)
    payment = payment_for(sonnet, build_ledger(), 27500, 3500)
    assert payment is not None
    release_charge(ledger, payment, NOW)
    claude = ledger.subscription_for("claude")
    assert claude is not None
    assert (claude.tokens_used_today, claude.tokens_used_month) == (0, 0)


def test_release_api_charge(gpt4_turbo: Model) -> None:
    ledger = build_ledger(spent=5.0)
    payment = payment_for(gpt4_turbo, ledger, 27500, 3500)
    assert payment is not None
    update_quota_tracking(ledger, payment)
    release_charge(ledger, payment, NOW)
    assert ledger.budget.spent_usd == pytest.approx(5.0)
    release_charge(ledger, payment, datetime(2026, 1, 15, tzinfo=UTC))  # a past period
    assert ledger.budget.spent_usd == pytest.approx(5.0)
    release_charge(build_ledger(spent=0.1), payment, NOW)


def test_release_for_an_unknown_subscription_is_ignored(sonnet: Model) -> None:
    payment = payment_for(sonnet, build_ledger(), 100, 100)
    assert payment is not None
    ledger = build_ledger(claude=False, spent=3.0)
    release_charge(ledger, payment, NOW)
    assert ledger.budget.spent_usd == 3.0


def test_ledger_copy_is_independent() -> None:
    ledger = build_ledger(claude_used=5)
    copy = ledger.copy()
    claude = copy.subscription_for("claude")
    assert claude is not None
    claude.tokens_used_month = 999
    copy.budget.spent_usd = 50
    original = ledger.subscription_for("claude")
    assert original is not None and original.tokens_used_month == 5
    assert ledger.budget.spent_usd == 0


# --- add_months, resets ---------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2026, 1, 31), 1, datetime(2026, 2, 28)),
        (datetime(2028, 1, 31), 1, datetime(2028, 2, 29)),  # leap year
        (datetime(2026, 1, 15), 1, datetime(2026, 2, 15)),
        (datetime(2026, 3, 31), 1, datetime(2026, 4, 30)),
        (datetime(2026, 12, 1), 1, datetime(2027, 1, 1)),
        (datetime(2026, 12, 31), 2, datetime(2027, 2, 28)),
        (datetime(2026, 1, 31), 12, datetime(2027, 1, 31)),
        (datetime(2026, 3, 31), -1, datetime(2026, 2, 28)),
        (datetime(2026, 1, 1), -1, datetime(2025, 12, 1)),
        (datetime(2026, 5, 20, 13, 45, tzinfo=UTC), 1, datetime(2026, 6, 20, 13, 45, tzinfo=UTC)),
    ],
)
def test_add_months(start: datetime, months: int, expected: datetime) -> None:
    assert add_months(start, months) == expected


def test_next_reset_keeps_the_day_of_the_month() -> None:
    start = datetime(2026, 1, 31, tzinfo=UTC)
    # asleep through February and March: three months on is 30 April, not the
    # 28th that stepping from 28 February would give
    assert next_reset(start, datetime(2026, 3, 31, tzinfo=UTC)) == datetime(2026, 4, 30, tzinfo=UTC)
    assert next_reset(start, datetime(2026, 3, 30, tzinfo=UTC)) == datetime(2026, 3, 31, tzinfo=UTC)
    assert next_reset(start, datetime(2026, 1, 30, tzinfo=UTC)) == start


def test_daily_usage_resets_at_utc_midnight() -> None:
    s = sub(today=500, month=500, usage_day=date(2026, 2, 10))
    assert not roll_over_subscription(s, datetime(2026, 2, 10, 23, 59, 59, tzinfo=UTC))
    assert s.tokens_used_today == 500
    # 01:00 at UTC+2 is still 23:00 on the 10th in UTC
    plus_two = timezone(timedelta(hours=2))
    assert not roll_over_subscription(s, datetime(2026, 2, 11, 1, 0, tzinfo=plus_two))
    assert s.tokens_used_today == 500
    assert roll_over_subscription(s, datetime(2026, 2, 11, 0, 0, tzinfo=UTC))
    assert s.tokens_used_today == 0
    assert s.tokens_used_month == 500
    assert s.usage_day == date(2026, 2, 11)


def test_first_roll_over_adopts_the_day_without_clearing_it() -> None:
    # a fresh ledger from config has no usage_day: its counts are today's
    s = sub(today=700)
    assert roll_over_subscription(s, NOW)
    assert s.tokens_used_today == 700
    assert s.usage_day == NOW.date()
    assert not roll_over_subscription(s, NOW + timedelta(hours=1))


def test_monthly_usage_resets_at_reset_date_exactly_once() -> None:
    s = sub(month=4_000_000, usage_day=date(2026, 2, 28), reset=datetime(2026, 3, 1, tzinfo=UTC))
    roll_over_subscription(s, datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC))
    assert s.tokens_used_month == 4_000_000

    assert roll_over_subscription(s, datetime(2026, 3, 1, 0, 0, tzinfo=UTC))
    assert s.tokens_used_month == 0
    assert s.reset_date == datetime(2026, 4, 1, tzinfo=UTC)

    s.tokens_used_month = 1234  # used after the reset
    assert not roll_over_subscription(s, datetime(2026, 3, 1, 0, 0, tzinfo=UTC))
    roll_over_subscription(s, datetime(2026, 3, 31, 23, 0, tzinfo=UTC))
    assert s.tokens_used_month == 1234
    assert s.reset_date == datetime(2026, 4, 1, tzinfo=UTC)


def test_monthly_reset_after_months_asleep_moves_several_months() -> None:
    s = sub(month=99, usage_day=date(2026, 2, 1), reset=datetime(2026, 3, 1, tzinfo=UTC))
    assert roll_over_subscription(s, datetime(2026, 6, 15, tzinfo=UTC))
    assert s.tokens_used_month == 0
    assert s.reset_date == datetime(2026, 7, 1, tzinfo=UTC)


def test_month_by_month_resets_on_the_31st_do_not_drift_to_the_28th() -> None:
    """Each reset seen on time (not asleep): the subscription remembers its
    day, through a store round trip too, so February's clamp is not kept."""
    s = sub(reset=datetime(2026, 1, 31, tzinfo=UTC))
    b = ApiBudget(monthly_limit_usd=10, reset_date=datetime(2026, 1, 31, tzinfo=UTC))
    seen = []
    for day in (date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)):
        now = datetime(day.year, day.month, day.day, 1, tzinfo=UTC)
        assert roll_over_subscription(s, now) and roll_over_budget(b, now)
        s = Subscription.model_validate_json(s.model_dump_json())
        b = ApiBudget.model_validate_json(b.model_dump_json())
        seen.append((s.reset_date.date(), b.reset_date.date()))
    assert [pair[0] for pair in seen] == [
        date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)
    ]
    assert [pair[1] for pair in seen] == [pair[0] for pair in seen]


def test_a_record_without_a_reset_day_takes_its_reset_dates() -> None:
    data = sub(reset=datetime(2026, 3, 30, tzinfo=UTC)).model_dump(exclude={"reset_day"})
    assert Subscription.model_validate(data).reset_day == 30


def test_budget_resets_at_its_reset_date() -> None:
    budget = ApiBudget(
        monthly_limit_usd=100, spent_usd=80, reset_date=datetime(2026, 3, 1, tzinfo=UTC)
    )
    assert not roll_over_budget(budget, datetime(2026, 2, 28, 23, 0, tzinfo=UTC))
    assert budget.spent_usd == 80
    assert roll_over_budget(budget, datetime(2026, 3, 1, tzinfo=UTC))
    assert budget.spent_usd == 0
    assert budget.reset_date == datetime(2026, 4, 1, tzinfo=UTC)
    budget.spent_usd = 5
    assert not roll_over_budget(budget, datetime(2026, 3, 2, tzinfo=UTC))
    assert budget.spent_usd == 5


def test_roll_over_ledger_reports_changes() -> None:
    ledger = build_ledger(claude_used=10, spent=3)
    assert roll_over(ledger, NOW)  # adopts today
    assert not roll_over(ledger, NOW)
    assert roll_over(ledger, datetime(2026, 3, 1, tzinfo=UTC))
    claude = ledger.subscription_for("claude")
    assert claude is not None and claude.tokens_used_month == 0
    assert ledger.budget.spent_usd == 0


def test_naive_datetimes_are_utc() -> None:
    s = sub(month=10, reset=datetime(2026, 3, 1))
    assert s.reset_date == datetime(2026, 3, 1, tzinfo=UTC)
    roll_over_subscription(s, datetime(2026, 3, 1))
    assert s.tokens_used_month == 0


@pytest.mark.parametrize(
    ("now", "day", "first"),
    [
        (datetime(2026, 12, 1, 0, 0, tzinfo=UTC), 1, datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2026, 11, 30, 23, 59, tzinfo=UTC), 1, datetime(2026, 12, 1, tzinfo=UTC)),
        (datetime(2026, 2, 10, tzinfo=UTC), 31, datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2028, 2, 28, 12, tzinfo=UTC), 31, datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2035, 12, 31, 12, tzinfo=UTC), 15, datetime(2036, 1, 15, tzinfo=UTC)),
    ],
)
def test_the_first_reset_is_the_next_reset_day_after_now(
    now: datetime, day: int, first: datetime
) -> None:
    assert first_reset_after(now, day) == first


def test_a_config_with_a_reset_day_seeds_a_reset_in_the_future_whatever_the_date() -> None:
    quotas = SubscriptionsConfig.model_validate(
        {
            "subscriptions": [{"model_family": "claude", "reset_day": 1}],
            "api_budget": {"monthly_limit_usd": 10, "spent_usd": 2.5, "reset_day": 1},
        }
    )
    for year in range(2026, 2036):
        now = datetime(year, 7, 4, 9, tzinfo=UTC)
        ledger = quotas.ledger_at(now)
        assert ledger.budget.reset_date == datetime(year, 8, 1, tzinfo=UTC)
        roll_over(ledger, now)
        assert ledger.budget.spent_usd == 2.5  # no reset is due the moment it is seeded


def test_a_config_with_a_pinned_reset_date_keeps_its_behaviour() -> None:
    quotas = SubscriptionsConfig.model_validate(
        {
            "subscriptions": [{"model_family": "claude", "reset_date": "2026-01-31T00:00:00Z"}],
            "api_budget": {"monthly_limit_usd": 10, "spent_usd": 2.5,
                           "reset_date": "2026-01-31T00:00:00Z"},
        }
    )
    ledger = quotas.ledger_at(datetime(2026, 3, 5, tzinfo=UTC))
    assert ledger.budget.reset_date == datetime(2026, 1, 31, tzinfo=UTC)
    roll_over(ledger, datetime(2026, 3, 5, tzinfo=UTC))
    assert ledger.budget.spent_usd == 0.0
    assert ledger.budget.reset_date == datetime(2026, 3, 31, tzinfo=UTC)
    assert ledger.subscriptions[0].reset_date == datetime(2026, 3, 31, tzinfo=UTC)
