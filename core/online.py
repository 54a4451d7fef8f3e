"""The ``online`` strategy: decide each issue as it arrives, against bid prices.

The App meets issues one at a time and never sees the month ahead. A greedy
rule lets the first issues take the quota whatever comes later; the batch
planner needs the batch it never gets. Bid-price control (revenue
management; Agrawal, Wang and Ye 2014 for the online LP) prices each
resource instead, here each subscription family's tokens and the API
budget's dollars, and accepts an issue only when its value covers the price
of what it would use:

1. Forecast the rest of the period: this period's issues so far, scaled by
   the time left over the time gone, blended (``last_period_weight``) with
   the last period's issues that arrived at this point of their period or
   later.
2. Solve the LP of the forecast against the quota and budget left (the
   ``optimal`` strategy's relaxation, on the forecast); its duals are the
   prices, per token of each family and per API dollar.
3. The arriving issue takes the way of paying that leaves it the most value
   after the price (its net value), when that is not negative; otherwise it
   is deferred.

Re-solved at every decision, so the prices follow the quota actually left.
As a reset approaches the forecast of what is still to come shrinks, so the
prices fall, and in the last ``sweep_hours_before_reset`` they are zero:
deferred issues are then worth re-deciding (``due_for_redecision``).

Cold start: with no issue from the last period and fewer than
``min_history`` issues seen this period, there is nothing to learn prices from, and the issue is
decided as ``minimize_cost`` decides it (the best greedy strategy measured
one issue at a time; docs/online-strategy.md).

Pure: the clock, the ledger and the history come in as arguments.

Where each step lives: the period, the history and the forecast (1) in
core/online_history.py; the ways of paying for an issue in
core/online_options.py; the prices (2) in core/online_prices.py; here,
the decision (3) and which deferred issues are due again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from model_assigner.core.allowed_models import task_band, window_passed_over
from model_assigner.core.assessment import Assessment
from model_assigner.core.config import ScoringConfig
from model_assigner.core.greedy import minimize_cost_one
from model_assigner.core.online_history import period_of
from model_assigner.core.online_options import API, NET_TOLERANCE, Need, Option, options_for
from model_assigner.core.online_prices import BidPrices, estimate_prices
from model_assigner.core.quota import (
    COST_EPSILON,
    INF,
    Ledger,
    calculate_cost,
    get_remaining_monthly_budget,
    has_room,
    remaining_daily,
    remaining_monthly,
)
from model_assigner.core.reasons import ReasonCode, reason
from model_assigner.core.selection import defer_unaffordable, make_decision, why_unaffordable
from model_assigner.core.types import Decision, Model, Observation, PassedOver, Payment

STRATEGY = "online"


# --- deciding -------------------------------------------------------------------


def feasible(option: Option, ledger: Ledger, need: Need) -> bool:
    """Whether the ledger can pay for the option now."""
    if option.payer == API:
        return option.usage <= get_remaining_monthly_budget(ledger.budget) + COST_EPSILON
    sub = ledger.subscription_for(option.payer)
    return sub is not None and has_room(sub, need.total)


def best_option(
    need: Need, ledger: Ledger, models: list[Model], config: ScoringConfig, prices: BidPrices
) -> tuple[Option | None, list[Option]]:
    """The payable option with the highest net value (ties: the seed's
    order of models, subscriptions before the API), and every payable one."""
    available = [s for s in ledger.subscriptions if has_room(s, need.total)]
    options = [
        o for o in options_for(need, models, config, ledger.subscriptions, available)
        if feasible(o, ledger, need)
    ]
    best: Option | None = None
    for option in sorted(options, key=lambda o: (o.rank, o.payer == API)):
        if best is None or prices.net(option) > prices.net(best) + NET_TOLERANCE:
            best = option
    return best, options


def decide_online(
    assessment: Assessment,
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
    now: datetime,
    history: Sequence[Observation] = (),
) -> Decision:
    """The online decision for one issue against ``ledger`` (not charged:
    the caller charges ``decision.payment``)."""
    prices = estimate_prices(history, ledger, models, config, now)
    if prices is None:
        greedy = minimize_cost_one(assessment, ledger, models, config, STRATEGY)
        seen = sum(1 for h in history if period_of(ledger, now).start <= h.seen_at)
        return greedy.model_copy(
            update={"reason": reason(ReasonCode.COLD_START, seen=seen, because=greedy.reason)}
        )
    return decide_with_prices(assessment, ledger, models, config, prices)


def _priced(prices: BidPrices, option: Option) -> dict[str, object]:
    """What a reason quotes of an option: what it uses of which payer, and
    what that is worth at the prices (``rate`` per token or per dollar)."""
    return {"payer": option.payer, "usage": option.usage, "price": prices.of(option),
            "rate": prices.rate(option)}


def decide_with_prices(
    assessment: Assessment,
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
    prices: BidPrices,
) -> Decision:
    need = Need.of(assessment)
    band = task_band(assessment, config)
    windows = window_passed_over(assessment, band, models)
    best, options = best_option(need, ledger, models, config, prices)
    if best is None:
        passed = windows + _unpaid(assessment, band.preferred, models, ledger, windows)
        return defer_unaffordable(assessment, band, ledger, STRATEGY, passed)
    reset = prices.period.end.date().isoformat()
    if prices.net(best) < -NET_TOLERANCE * max(1.0, best.worth):
        why = reason(ReasonCode.PRICED_OUT, value=assessment.value, model=best.model.name,
                     reset=reset, basis=prices.basis, **_priced(prices, best))
        hint = reason(ReasonCode.PRICES_FALL, reset=reset)
        return make_decision(assessment, None, None, band.name, STRATEGY, why, windows, hint)
    t = assessment.tokens
    if best.payer == API:
        cost = calculate_cost(best.model, t.input_tokens, t.output_tokens)
        payment = Payment(
            kind="api",
            family=best.model.family,
            tokens=t.total,
            cost_usd=cost,
            remaining_budget_usd=max(0.0, get_remaining_monthly_budget(ledger.budget) - cost),
        )
    else:
        sub = ledger.subscription_for(best.payer)
        assert sub is not None  # feasible() checked it
        payment = Payment(
            kind="subscription",
            family=best.payer,
            tokens=t.total,
            cost_usd=0.0,
            remaining_daily=_finite(remaining_daily(sub) - t.total),
            remaining_monthly=_finite(remaining_monthly(sub) - t.total),
        )
    why = reason(ReasonCode.COVERS_PRICE, value=assessment.value, model=best.model.name,
                 **_priced(prices, best))
    passed = windows + _beaten(assessment, band.preferred, best, options, prices, models,
                               ledger, windows)
    return make_decision(assessment, best.model, payment, band.name, STRATEGY, why, passed)


def _unpaid(
    a: Assessment, names: list[str], models: list[Model], ledger: Ledger,
    already: list[PassedOver],
) -> list[PassedOver]:
    skip = {p.model for p in already}
    by_name = {m.name: m for m in models}
    t = a.tokens
    return [
        PassedOver(model=name, reason=why_unaffordable(by_name[name], ledger, t.input_tokens,
                                                       t.output_tokens))
        for name in names
        if name in by_name and name not in skip
    ]


def _beaten(
    a: Assessment,
    names: list[str],
    best: Option,
    options: list[Option],
    prices: BidPrices,
    models: list[Model],
    ledger: Ledger,
    already: list[PassedOver],
) -> list[PassedOver]:
    """Why the band's preferred models before the one taken were not taken."""
    skip = {p.model for p in already}
    passed: list[PassedOver] = []
    by_model = {o.model.name: o for o in options}
    for name in names:
        if name == best.model.name:
            break
        if name in skip:
            continue
        option = by_model.get(name)
        if option is None:
            model = next((m for m in models if m.name == name), None)
            if model is None:
                continue
            t = a.tokens
            sub = ledger.subscription_for(model.family)
            if sub is not None and has_room(sub, t.total):
                why = reason(ReasonCode.NOT_ALLOWED)
            else:
                cost = calculate_cost(model, t.input_tokens, t.output_tokens)
                why = reason(ReasonCode.API_ONLY_COSTS, cost=cost, best=best.model.name)
        else:
            why = reason(ReasonCode.LESS_AFTER_PRICES, net=prices.net(option),
                         payer=option.payer, usage=option.usage, best=best.model.name,
                         best_net=prices.net(best))
        passed.append(PassedOver(model=name, reason=why))
    return passed


def _finite(value: float) -> int | None:
    return None if value == INF else int(value)


# --- re-deciding ----------------------------------------------------------------


def due_for_redecision(
    deferred: Mapping[str, Observation],
    history: Sequence[Observation],
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
    now: datetime,
) -> list[str]:
    """The deferred issues worth deciding again now, highest value first:
    those the quota and budget left could pay for and whose value covers
    today's prices (all payable ones at a cold start, or once prices are zero
    near a reset). Each is then decided again as a new arrival would be; the
    decision itself re-checks everything, so a list a little stale is safe."""
    prices = estimate_prices(history, ledger, models, config, now)
    due: list[tuple[float, str]] = []
    for key, item in deferred.items():
        need = Need.of(item)
        if prices is None:
            zero = BidPrices({}, 0.0, period_of(ledger, now),
                             reason(ReasonCode.PRICE_BASIS, seen=0, last=None, near_reset=False))
            best, _ = best_option(need, ledger, models, config, zero)
        else:
            best, _ = best_option(need, ledger, models, config, prices)
            if best is not None and prices.net(best) < -NET_TOLERANCE * max(1.0, best.worth):
                best = None
        if best is not None:
            due.append((item.value, key))
    return [key for _, key in sorted(due, key=lambda x: (-x[0], x[1]))]
