"""The online strategy on small streams whose right answer is known by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model_assigner.core.assessment import Assessment, assess
from model_assigner.core.batch import plan_assessed
from model_assigner.core.config import ScoringConfig
from model_assigner.core.greedy import minimize_cost_one
from model_assigner.core.online import decide_online, due_for_redecision
from model_assigner.core.online_history import observe
from model_assigner.core.online_options import Need, options_for
from model_assigner.core.online_prices import estimate_prices
from model_assigner.core.quota import update_quota_tracking
from model_assigner.core.reasons import ReasonCode, reason
from model_assigner.core.types import Model, Observation
from tests.helpers import NOW, SEED_RESET, build_ledger, build_task, seed_task

# NOW is 2026-02-10 12:00; the ledgers reset on 2026-03-01: the period is
# February, 9.5 of its 28 days gone.
FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)


def high(scoring: ScoringConfig) -> Assessment:
    """The seed's example: value 78.65, 31,000 tokens."""
    return assess(seed_task(), scoring, NOW)


def low(scoring: ScoringConfig) -> Assessment:
    """P1 security hotfix, moderate, no deadline: value 42.9, 31,000 tokens:
    less value per token than ``high``; claude's models are among those it
    may use (rated >= 0.7 for backend, the minimize_cost overflow rule)."""
    task = build_task(id="low", priority="P1", labels=["security", "backend", "hotfix"],
                      estimated_files=3, estimated_loc=150)
    return assess(task, scoring, NOW)


def seen(a: Assessment, count: int, at: datetime = FEB_1 + timedelta(days=1)) -> list[Observation]:
    return [observe(a, at) for _ in range(count)]


def test_cold_start_decides_as_minimize_cost(models: list[Model], scoring: ScoringConfig) -> None:
    ledger = build_ledger()
    for a in (high(scoring), low(scoring)):
        greedy = minimize_cost_one(a, ledger, models, scoring, "minimize_cost")
        online = decide_online(a, ledger, models, scoring, NOW, history=())
        assert (online.model, online.payment) == (greedy.model, greedy.payment)
        assert online.strategy == "online"
        assert online.reason == reason(ReasonCode.COLD_START, seen=0, because=greedy.reason)
    assert estimate_prices(seen(high(scoring), 4), ledger, models, scoring, NOW) is None
    assert estimate_prices(seen(high(scoring), 5), ledger, models, scoring, NOW) is not None


def test_scarce_quota_is_priced_at_the_value_per_token_of_the_work_expected(
    models: list[Model], scoring: ScoringConfig
) -> None:
    """Ten issues like ``high`` seen this period forecast 10 x 18.5/9.5 more
    before the reset; the claude quota holds two and there is no API budget,
    so a claude token is worth exactly high's value per token. ``high``
    covers that price (net 0, taken); ``low``, with less value per token,
    does not (deferred, and told why)."""
    h, lo = high(scoring), low(scoring)
    ledger = build_ledger(claude_monthly=2 * h.total_tokens, budget=0)
    prices = estimate_prices(seen(h, 10), ledger, models, scoring, NOW)
    assert prices is not None
    assert prices.per_token["claude"] == pytest.approx(h.value / h.total_tokens, rel=1e-6)

    taken = decide_online(h, ledger, models, scoring, NOW, seen(h, 10))
    assert taken.model is not None and taken.paid_by == "subscription:claude"
    deferred = decide_online(lo, ledger, models, scoring, NOW, seen(h, 10))
    assert deferred.model is None
    assert deferred.reason.code == ReasonCode.PRICED_OUT
    assert deferred.unblock_hint == reason(ReasonCode.PRICES_FALL, reset="2026-03-01")


def test_plenty_of_quota_costs_nothing(models: list[Model], scoring: ScoringConfig) -> None:
    h, lo = high(scoring), low(scoring)
    ledger = build_ledger(claude_monthly=1000 * h.total_tokens, budget=0)
    prices = estimate_prices(seen(h, 10), ledger, models, scoring, NOW)
    assert prices is not None and prices.per_token["claude"] == 0.0
    decision = decide_online(lo, ledger, models, scoring, NOW, seen(h, 10))
    assert decision.paid_by == "subscription:claude"


def test_prices_fall_as_the_reset_nears_and_the_deferred_issue_is_due(
    models: list[Model], scoring: ScoringConfig
) -> None:
    h, lo = high(scoring), low(scoring)
    ledger = build_ledger(claude_monthly=2 * h.total_tokens, budget=0)
    history = seen(h, 10)
    waiting = {"o/r#7": observe(lo, NOW)}
    assert due_for_redecision(waiting, history, ledger, models, scoring, NOW) == []

    # 15 days on, the same ten issues seen forecast 10 x 3.5/24.5 = 1.4 more
    # before the reset: less than the two the quota holds, so it is free.
    later = NOW + timedelta(days=15)
    early = estimate_prices(history, ledger, models, scoring, NOW)
    late = estimate_prices(history, ledger, models, scoring, later)
    assert early is not None and late is not None
    assert early.per_token["claude"] > 0 and late.per_token["claude"] == 0.0
    assert due_for_redecision(waiting, history, ledger, models, scoring, later) == ["o/r#7"]

    decision = decide_online(lo, ledger, models, scoring, later, history)
    assert decision.paid_by == "subscription:claude"


def test_every_price_is_zero_just_before_the_reset(
    models: list[Model], scoring: ScoringConfig
) -> None:
    """However much work is forecast, tokens left at the reset are lost."""
    h, lo = high(scoring), low(scoring)
    ledger = build_ledger(claude_monthly=2 * h.total_tokens, budget=0)
    history = seen(h, 500, at=SEED_RESET - timedelta(hours=12))
    near = SEED_RESET - timedelta(hours=scoring.online.sweep_hours_before_reset - 0.5)
    before = near - timedelta(hours=1)
    waiting = {"o/r#7": observe(lo, NOW)}
    assert due_for_redecision(waiting, history, ledger, models, scoring, before) == []
    assert due_for_redecision(waiting, history, ledger, models, scoring, near) == ["o/r#7"]


def test_nothing_is_due_that_nothing_can_pay(models: list[Model], scoring: ScoringConfig) -> None:
    lo = low(scoring)
    broke = build_ledger(claude_used=5_000_000, budget=0)
    near = SEED_RESET - timedelta(hours=1)
    waiting = {"o/r#7": observe(lo, NOW)}
    assert due_for_redecision(waiting, seen(lo, 10), broke, models, scoring, near) == []


def test_last_periods_issues_end_the_cold_start(
    models: list[Model], scoring: ScoringConfig
) -> None:
    """No issue yet this period, but January's (from this point of the
    month on) forecast the rest of February."""
    h = high(scoring)
    ledger = build_ledger(claude_monthly=2 * h.total_tokens, budget=0)
    january = seen(h, 10, at=datetime(2026, 1, 25, tzinfo=UTC))
    prices = estimate_prices(january, ledger, models, scoring, NOW)
    assert prices is not None and prices.per_token["claude"] > 0
    # January's issues from before this point of the month forecast nothing
    early_january = seen(h, 10, at=datetime(2026, 1, 2, tzinfo=UTC))
    prices = estimate_prices(early_january, ledger, models, scoring, NOW)
    assert prices is not None and prices.per_token["claude"] == 0.0


def test_a_batch_is_decided_in_order_each_issue_joining_the_history(
    models: list[Model], scoring: ScoringConfig
) -> None:
    """Six copies of ``low``: the first five at a cold start (minimize_cost
    puts them on the API), the sixth priced against the five seen."""
    lo = low(scoring)
    tasks = [assess(lo.task.model_copy(update={"id": f"t{i}"}), scoring, NOW) for i in range(6)]
    plan = plan_assessed(tasks, build_ledger(), models, scoring, NOW, "online")
    cold = [d.reason.code == ReasonCode.COLD_START for d in plan.decisions]
    assert cold == [True] * 5 + [False]
    spent = sum(d.cost_usd for d in plan.decisions if d.paid_by == "api")
    assert plan.ledger.budget.spent_usd == pytest.approx(spent)


def test_the_fit_objective_weighs_the_models_rating(
    models: list[Model], scoring: ScoringConfig
) -> None:
    h = high(scoring)  # 78.65, the high band: sonnet first, then opus
    ledger = build_ledger()
    (by_value,) = [o for o in options_for(Need.of(h), models, scoring, ledger.subscriptions)
                   if o.payer == "claude"]
    assert by_value.model.name == "sonnet-4.5" and by_value.worth == h.value
    fit = scoring.model_copy(update={"objective": "fit"})
    (by_fit,) = [o for o in options_for(Need.of(h), models, fit, ledger.subscriptions)
                 if o.payer == "claude"]
    assert by_fit.model.name == "opus-4.6"
    assert by_fit.worth == pytest.approx(h.value * 0.95)


def test_charges_follow_the_decisions(models: list[Model], scoring: ScoringConfig) -> None:
    """What decide_online returns is what update_quota_tracking charges."""
    h = high(scoring)
    ledger = build_ledger()
    decision = decide_online(h, ledger, models, scoring, NOW, seen(h, 10))
    assert decision.payment is not None
    update_quota_tracking(ledger, decision.payment)
    claude = ledger.subscription_for("claude")
    assert claude is not None and claude.tokens_used_month == h.total_tokens


def test_optimal_under_the_fit_objective_takes_the_better_rated_model(
    models: list[Model], scoring: ScoringConfig
) -> None:
    """The seed's example (78.65, the high band): sonnet is the band's first
    choice and what the value objective pays claude for; under ``fit`` the
    claude subscription buys opus (rated 0.95 for backend, sonnet 0.9)."""
    from model_assigner.core.batch import plan_worth

    a = high(scoring)
    (by_value,) = plan_assessed([a], build_ledger(), models, scoring, NOW, "optimal").decisions
    assert (by_value.model, by_value.paid_by) == ("sonnet-4.5", "subscription:claude")
    fit = scoring.model_copy(update={"objective": "fit"})
    plan = plan_assessed([a], build_ledger(), models, fit, NOW, "optimal")
    (by_fit,) = plan.decisions
    assert (by_fit.model, by_fit.paid_by) == ("opus-4.6", "subscription:claude")
    assert plan_worth(plan, models, fit) == pytest.approx(a.value * 0.95)
    assert plan.upper_bound == pytest.approx(a.value * 0.95)
