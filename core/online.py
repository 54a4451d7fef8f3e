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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from model_assigner.core.assessment import Assessment
from model_assigner.core.catalog import price_key
from model_assigner.core.config import ScoringConfig
from model_assigner.core.greedy import minimize_cost_one
from model_assigner.core.optimal import fit_worth, ranked_models, task_band, window_passed_over
from model_assigner.core.quota import (
    COST_EPSILON,
    INF,
    Ledger,
    add_months,
    calculate_cost,
    get_remaining_monthly_budget,
    has_room,
    remaining_daily,
    remaining_monthly,
)
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.selection import defer_unaffordable, make_decision, why_unaffordable
from model_assigner.core.types import (
    Decision,
    Model,
    Observation,
    PassedOver,
    Payment,
    Subscription,
    as_utc,
)

STRATEGY = "online"
API = ""  # the payer key of the API budget, as in core/optimal.py
# Net values this close to zero count as zero: an issue exactly at the price is taken.
NET_TOLERANCE = 1e-9


# --- the period ---------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The stretch of time the prices plan for: up to the first reset ahead."""

    start: datetime
    end: datetime
    now: datetime

    @property
    def elapsed(self) -> float:
        """The share of the period gone, 0..1."""
        length = (self.end - self.start).total_seconds()
        gone = (self.now - self.start).total_seconds()
        return min(1.0, max(0.0, gone / length)) if length > 0 else 1.0

    @property
    def hours_left(self) -> float:
        return max(0.0, (self.end - self.now).total_seconds() / 3600)

    def share_of(self, moment: datetime) -> float:
        """Where ``moment`` falls in the period before this one, 0..1."""
        before = add_months(self.start, -1)
        length = (self.start - before).total_seconds()
        return (as_utc(moment) - before).total_seconds() / length if length > 0 else 0.0


def period_of(ledger: Ledger, now: datetime) -> Period:
    """The period ends at the first reset ahead among the resources that
    have a monthly limit (the API budget always has one) and began a month
    before. Subscriptions resetting at another time are priced on this one
    clock (a documented simplification)."""
    now = as_utc(now)
    ends = [ledger.budget.reset_date]
    ends += [s.reset_date for s in ledger.subscriptions if s.token_limit_monthly is not None]
    end = min(as_utc(e) for e in ends)
    if end <= now:  # a ledger not rolled over: the reset is due now
        end = now + timedelta(seconds=1)
    return Period(start=add_months(end, -1), end=end, now=now)


def history_start(ledger: Ledger, now: datetime) -> datetime:
    """The oldest an issue of the history may have been seen and still count:
    the start of the last period (``forecast`` reads this period and the last,
    nothing older). A store reads only the history from here on."""
    return add_months(period_of(ledger, now).start, -1)


# --- how an issue may be paid ---------------------------------------------------


@dataclass(frozen=True)
class Need:
    """What an issue needs, whether just assessed or only remembered."""

    value: float
    domain: str
    working_set: int
    input_tokens: int
    output_tokens: int

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, item: Assessment | Observation) -> Need:
        if isinstance(item, Assessment):
            t = item.tokens
            return cls(item.value, item.domain, t.working_set, t.input_tokens, t.output_tokens)
        return cls(item.value, item.domain, item.working_set, item.input_tokens,
                   item.output_tokens)


@dataclass(frozen=True)
class Option:
    """One way of paying for an issue: a payer, the model it buys, how much
    of the payer's resource it uses, and the value it brings."""

    payer: str  # a subscription family, or API
    model: Model
    usage: float  # tokens, or USD for the API
    worth: float
    rank: int  # the model's place in the seed's order for this issue


def observe(assessment: Assessment, now: datetime) -> Observation:
    """What the history keeps of an issue seen at ``now``."""
    t = assessment.tokens
    return Observation(
        value=assessment.value,
        domain=assessment.domain,
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        working_set=t.working_set,
        seen_at=now,
    )


def observation_of(decision: Decision, now: datetime) -> Observation:
    """What the history keeps of an issue, from its decision."""
    t = decision.tokens
    return Observation(
        value=decision.value_score,
        domain=decision.breakdown.domain,
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        working_set=t.working_set,
        seen_at=now,
    )


def worth(value: float, model: Model, domain: str, config: ScoringConfig) -> float:
    """The value an assignment brings under the configured objective."""
    if config.objective == "fit":
        return fit_worth(value, model, domain, config.fit_exponent)
    return value


class _Memo:
    """options_for's answers for the last catalog and config it was asked
    with: a month's history repeats a few hundred kinds of issue, and the
    prices are re-solved at every decision."""

    def __init__(self) -> None:
        self.key: tuple[object, ...] = ()
        self.answers: dict[tuple[object, ...], list[Option]] = {}

    def for_owners(self, owners: tuple[object, ...]) -> dict[tuple[object, ...], list[Option]]:
        """The answers for this catalog and config (forgotten when they change)."""
        if len(owners) != len(self.key) or any(a is not b for a, b in zip(owners, self.key,
                                                                             strict=True)):
            self.key, self.answers = owners, {}
        if len(self.answers) > 50_000:
            self.answers = {}
        return self.answers

    def get(
        self, owners: tuple[object, ...], key: tuple[object, ...]
    ) -> list[Option] | None:
        return self.for_owners(owners).get(key)


_MEMO = _Memo()


def options_for(
    need: Need,
    models: list[Model],
    config: ScoringConfig,
    subscriptions: Sequence[Subscription],
    available: Sequence[Subscription] = (),
) -> list[Option]:
    """options_for_uncached, remembered for the same catalog and config
    (objects, compared by identity: a changed config is a new object)."""
    owners = (models, config)
    key = (need, tuple(s.model_family for s in subscriptions),
           tuple(s.model_family for s in available))
    found = _MEMO.get(owners, key)
    if found is None:
        found = options_for_uncached(need, models, config, subscriptions, available)
        _MEMO.answers[key] = found
    return found


def options_for_uncached(
    need: Need,
    models: list[Model],
    config: ScoringConfig,
    subscriptions: Sequence[Subscription],
    available: Sequence[Subscription] = (),
) -> list[Option]:
    """Every way ``need`` may be paid, among the models any strategy may give
    it (``ranked_models``: band, downgrade, capable; window permitting):

    - per subscription family, its best model there: the first in the seed's
      order, or under the ``fit`` objective the best rated;
    - from the API budget, the cheapest model (under ``fit``, each model
      not both dearer and no better rated than another).

    ``available``: the subscriptions with room (the 75 band's order reads it)."""
    if need.value <= 0:
        return []
    ranked = ranked_models(need, models, config, list(available))
    options: list[Option] = []
    for sub in subscriptions:
        family = [
            (rank, r.model) for rank, r in enumerate(ranked) if r.model.family == sub.model_family
        ]
        if not family:
            continue
        if config.objective == "fit":
            rank, model = max(family, key=lambda x: (worth(need.value, x[1], need.domain, config),
                                                     -x[0]))
        else:
            rank, model = family[0]
        options.append(Option(sub.model_family, model, float(need.total),
                              worth(need.value, model, need.domain, config), rank))
    priced = [
        (calculate_cost(r.model, need.input_tokens, need.output_tokens), rank, r.model)
        for rank, r in enumerate(ranked)
    ]
    if config.objective == "fit":
        kept: list[tuple[float, int, Model]] = []
        best = -1.0
        for cost, rank, model in sorted(priced, key=lambda x: (x[0], price_key(x[2]))):
            gain = worth(need.value, model, need.domain, config)
            if gain > best + NET_TOLERANCE:
                kept.append((cost, rank, model))
                best = gain
        priced = kept
    elif priced:
        priced = [min(priced, key=lambda x: (x[0], price_key(x[2])))]
    options += [
        Option(API, model, cost, worth(need.value, model, need.domain, config), rank)
        for cost, rank, model in priced
    ]
    return options


# --- prices -------------------------------------------------------------------


@dataclass(frozen=True)
class BidPrices:
    """Value per token of each family's quota and per dollar of the budget."""

    per_token: Mapping[str, float]
    per_usd: float
    period: Period
    basis: Reason  # what the prices were learned from (PRICE_BASIS)

    def of(self, option: Option) -> float:
        """The value the resources an option uses are worth now."""
        rate = self.per_usd if option.payer == API else self.per_token.get(option.payer, 0.0)
        return rate * option.usage

    def net(self, option: Option) -> float:
        return option.worth - self.of(option)

    def rate(self, option: Option) -> float:
        """The price of one unit of what the option uses: a token of its
        family's quota, or a dollar of the budget."""
        return self.per_usd if option.payer == API else self.per_token.get(option.payer, 0.0)


def capacity_left(ledger: Ledger, period: Period) -> dict[str, float]:
    """What each payer can still pay before the period ends: a subscription's
    monthly room, and with a daily limit no more than today's room plus a
    full day's limit for each day left; the API budget left (USD)."""
    left: dict[str, float] = {}
    days = max(0.0, (period.end - period.now).total_seconds() / 86400)
    for sub in ledger.subscriptions:
        room = max(0.0, remaining_monthly(sub))
        if sub.token_limit_daily is not None:
            later = sub.token_limit_daily * max(0.0, math.ceil(days) - 1)
            room = min(room, max(0.0, remaining_daily(sub)) + later)
        left[sub.model_family] = room
    left[API] = max(0.0, get_remaining_monthly_budget(ledger.budget))
    return left


def forecast(
    history: Iterable[Observation], period: Period, config: ScoringConfig
) -> tuple[list[tuple[Observation, float]], Reason, int, int]:
    """The issues expected in the rest of the period, each with a weight,
    where they come from (a PRICE_BASIS reason), and how many issues of
    this period and the last one were seen."""
    online = config.online
    this, last = [], []
    before = add_months(period.start, -1)
    # the same point of the last period: its issues from then on forecast ours
    same_point = before + (period.start - before) * period.elapsed
    had_last = False
    for item in history:
        seen = item.seen_at
        if period.start <= seen <= period.now:
            this.append(item)
        elif before <= seen < period.start:
            had_last = True
            if seen >= same_point:
                last.append(item)
    # The issues seen count as at least min_elapsed_hours' worth: a few
    # issues in the first hours say little about a month's arrival rate.
    length = (period.end - period.start).total_seconds()
    floor = online.min_elapsed_hours * 3600 / length if length > 0 else 1.0
    elapsed = min(1.0, max(period.elapsed, floor))
    weight_last = online.last_period_weight if had_last else 0.0
    scale = (1 - elapsed) / elapsed if elapsed > 0 else 0.0
    items = [(item, scale * (1 - weight_last)) for item in this]
    items += [(item, weight_last) for item in last]
    basis = reason(ReasonCode.PRICE_BASIS, seen=len(this),
                   last=len(last) if had_last else None, near_reset=False)
    return [(i, w) for i, w in items if w > 0], basis, len(this), int(had_last)


def estimate_prices(
    history: Iterable[Observation],
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
    now: datetime,
) -> BidPrices | None:
    """The bid prices at ``now``; None at a cold start (too little history)."""
    period = period_of(ledger, now)
    items, basis, seen, had_last = forecast(history, period, config)
    if not had_last and seen < config.online.min_history:
        return None
    zero = BidPrices({s.model_family: 0.0 for s in ledger.subscriptions}, 0.0, period, basis)
    if period.hours_left <= config.online.sweep_hours_before_reset:
        near = reason(ReasonCode.PRICE_BASIS, **{**basis.values, "near_reset": True})
        return BidPrices(zero.per_token, 0.0, period, near)
    capacity = {
        payer: room * config.online.capacity_share
        for payer, room in capacity_left(ledger, period).items()
    }
    per_token, per_usd = solve_prices(items, capacity, ledger, models, config)
    return BidPrices(per_token, per_usd, period, basis)


def solve_prices(
    items: Sequence[tuple[Observation, float]],
    capacity: Mapping[str, float],
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
) -> tuple[dict[str, float], float]:
    """The duals of the forecast's LP: maximize the value of the forecast
    issues taken (each up to its weight, fractions allowed) within the
    capacity left; a payer's dual is the value one more unit of it buys."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import csr_array

    per_token = {s.model_family: 0.0 for s in ledger.subscriptions}
    keyed: dict[tuple[float, str, int, int, int], float] = {}
    for item, weight in items:
        key = (item.value, item.domain, item.working_set, item.input_tokens, item.output_tokens)
        keyed[key] = keyed.get(key, 0.0) + weight
    groups = {Need(*key): weight for key, weight in keyed.items()}
    subscriptions = ledger.subscriptions
    memo = _MEMO.for_owners((models, config))
    families = tuple(s.model_family for s in subscriptions)
    values: list[float] = []
    upper: list[float] = []
    rows: list[int] = []
    cols: list[int] = []
    data: list[float] = []
    rhs: list[float] = []
    row_count = 0
    payer_rows: dict[str, list[tuple[int, float]]] = {}
    for need, weight in groups.items():
        options = memo.get((need, families, ()))
        if options is None:
            options = options_for(need, models, config, subscriptions)
        if not options:
            continue
        first = len(values)
        for option in options:
            payer_rows.setdefault(option.payer, []).append((len(values), option.usage))
            values.append(option.worth)
            upper.append(weight)
        if len(options) > 1:
            for j in range(first, len(values)):
                rows.append(row_count)
                cols.append(j)
                data.append(1.0)
            rhs.append(weight)
            row_count += 1
    if not values:
        return per_token, 0.0
    scales: dict[str, tuple[int, float]] = {}
    for payer, entries in payer_rows.items():
        cap = capacity.get(payer, INF)
        if cap == INF:
            continue
        scale = cap if cap > 0 else 1.0
        for j, usage in entries:
            rows.append(row_count)
            cols.append(j)
            data.append(usage / scale)
        rhs.append(cap / scale)
        scales[payer] = (row_count, scale)
        row_count += 1
    n = len(values)
    if row_count == 0:
        return per_token, 0.0
    matrix = csr_array(
        (np.array(data), (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))),
        shape=(row_count, n),
    )
    result = linprog(
        -np.array(values),
        A_ub=matrix,
        b_ub=np.array(rhs),
        bounds=np.column_stack([np.zeros(n), np.array(upper)]),
        method="highs",
    )
    if result.status != 0:  # cannot happen for this bounded, feasible LP
        return per_token, 0.0
    duals = -np.asarray(result.ineqlin.marginals, dtype=float)
    per_usd = 0.0
    for payer, (row, scale) in scales.items():
        price = max(0.0, float(duals[row])) / scale
        if payer == API:
            per_usd = price
        else:
            per_token[payer] = price
    return per_token, per_usd


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
