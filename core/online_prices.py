"""The ``online`` strategy's bid prices (step 2 of core/online.py): the duals
of the forecast's LP against the quota and budget left, per token of each
subscription family and per API dollar. scipy is imported only when prices
are solved.
"""


from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from model_assigner.core.config import ScoringConfig
from model_assigner.core.online_history import Period, forecast, period_of
from model_assigner.core.online_options import API, MEMO, Need, Option, options_for
from model_assigner.core.quota import (
    INF,
    Ledger,
    get_remaining_monthly_budget,
    remaining_daily,
    remaining_monthly,
)
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.types import Model, Observation


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
    memo = MEMO.for_owners((models, config))
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
