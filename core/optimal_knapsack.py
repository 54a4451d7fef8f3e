"""The ``optimal`` strategy's model: how each task may be paid (``TaskOption``),
interchangeable tasks grouped into classes (``TaskClass``), and the
class-level integer program (``Knapsack``) that core/optimal_solve.py solves.
See core/optimal.py for the problem it states.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from model_assigner.core.allowed_models import Ranker, task_band
from model_assigner.core.assessment import Assessment
from model_assigner.core.catalog import price_key
from model_assigner.core.config import ScoringConfig
from model_assigner.core.objective import fit_worth
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
from model_assigner.core.types import Model, Subscription

API = ""  # the payer key of the API budget; subscriptions are keyed by family


def remaining_room(sub: Subscription) -> float:
    """Tokens the subscription can still pay today (INF when unlimited)."""
    return max(0.0, min(remaining_daily(sub), remaining_monthly(sub)))


# --- the knapsack ---------------------------------------------------------------


@dataclass
class TaskOption:
    """How one task may be paid."""

    index: int
    assessment: Assessment
    allowed: tuple[Model, ...]
    payers: tuple[str, ...]  # subscription families that could pay it alone
    api_model: Model | None  # its cheapest allowed model, when the budget could pay it alone
    api_cost: float
    # What the task is worth paid by each payer (payers, then the API), under
    # the objective: its value, or with ``fit`` its value times the rating
    # of the model that payer buys (core.objective.worth).
    worths: tuple[float, ...] = ()
    value: float = field(init=False)
    total: int = field(init=False)  # tokens

    def __post_init__(self) -> None:
        self.value = self.assessment.value
        self.total = self.assessment.total_tokens

    def worth_of(self, payer: str) -> float:
        if not self.worths:
            return self.value
        if payer == API:
            return self.worths[-1]
        return self.worths[self.payers.index(payer)]


@dataclass
class TaskClass:
    """Interchangeable tasks: same value, tokens, API cost and payers."""

    value: float
    tokens: int
    api_cost: float | None
    payers: tuple[str, ...]
    worths: tuple[float, ...] = ()  # as TaskOption's; empty: the value for every payer
    members: list[int] = field(default_factory=list)

    def worth_of(self, payer: str) -> float:
        if not self.worths:
            return self.value
        if payer == API:
            return self.worths[-1]
        return self.worths[self.payers.index(payer)]


@dataclass
class Knapsack:
    """The class-level integer program: variable j counts the tasks of class
    ``var_class[j]`` paid by ``var_payer[j]``, at most ``upper[j]``."""

    classes: list[TaskClass]
    capacity: dict[str, float]  # payer -> tokens (subscriptions) or USD (API)
    var_class: list[int]
    var_payer: list[str]
    upper: list[int]

    def usage(self, var: int) -> float:
        """What one task of the variable's class uses of its payer's capacity."""
        task_class = self.classes[self.var_class[var]]
        if self.var_payer[var] == API:
            return task_class.api_cost or 0.0
        return float(task_class.tokens)

    def value_of(self, counts: Sequence[int]) -> float:
        return math.fsum(self.worth(j) * n for j, n in enumerate(counts))

    def worth(self, var: int) -> float:
        """What one task of the variable's class is worth paid by its payer."""
        return self.classes[self.var_class[var]].worth_of(self.var_payer[var])

    def spend_of(self, counts: Sequence[int]) -> float:
        return math.fsum(
            self.usage(j) * n for j, n in enumerate(counts) if self.var_payer[j] == API
        )

    def used(self, counts: Sequence[int]) -> dict[str, float]:
        totals: dict[str, list[float]] = {payer: [] for payer in self.capacity}
        for j, n in enumerate(counts):
            if n:
                totals[self.var_payer[j]].append(self.usage(j) * n)
        return {payer: math.fsum(parts) for payer, parts in totals.items()}

    def feasible(self, counts: Sequence[int]) -> bool:
        per_class = [0] * len(self.classes)
        for j, n in enumerate(counts):
            if n < 0 or n > self.upper[j]:
                return False
            per_class[self.var_class[j]] += n
        if any(total > len(c.members) for total, c in zip(per_class, self.classes, strict=True)):
            return False
        used = self.used(counts)
        return all(used[payer] <= cap for payer, cap in self.capacity.items())



def build_options(
    scored: Sequence[Assessment], ledger: Ledger, models: list[Model], config: ScoringConfig
) -> list[TaskOption]:
    budget_left = get_remaining_monthly_budget(ledger.budget)
    ranker = Ranker(models, config)
    # The allowed set depends on the band, the domain and the value (which
    # thresholds it crosses), not on the order, so it is computed once per key.
    allowed_cache: dict[
        tuple[str, str, float, int], tuple[tuple[Model, ...], frozenset[str]]
    ] = {}
    cheapest_cache: dict[tuple[str, str, float, int, int, int], tuple[Model | None, float]] = {}
    options = []
    for index, a in enumerate(scored):
        key = (task_band(a, config).name, a.domain, a.value, a.working_set)
        cached = allowed_cache.get(key)
        if cached is None:
            allowed_models = tuple(r.model for r in ranker.ranked(a, task_band(a, config), _never))
            cached = (allowed_models, frozenset(m.family for m in allowed_models))
            allowed_cache[key] = cached
        allowed, families = cached
        if a.value <= 0:
            options.append(TaskOption(index, a, allowed, (), None, 0.0))
            continue
        payers = tuple(
            sub.model_family
            for sub in ledger.subscriptions
            if sub.model_family in families and has_room(sub, a.total_tokens)
        )
        tokens = a.tokens
        cost_key = (*key, tokens.input_tokens, tokens.output_tokens)
        found = cheapest_cache.get(cost_key)
        if found is None:
            found = _cheapest(allowed, tokens.input_tokens, tokens.output_tokens)
            cheapest_cache[cost_key] = found
        api_model, api_cost = found
        if api_model is None or api_cost > budget_left + COST_EPSILON:
            api_model, api_cost = None, 0.0
        worths: tuple[float, ...] = ()
        if config.objective == "fit":
            k = config.fit_exponent
            api_worth = (fit_worth(a.value, api_model, a.domain, k) if api_model is not None
                         else 0.0)
            worths = (
                *(max(fit_worth(a.value, m, a.domain, k) for m in allowed if m.family == family)
                  for family in payers),
                api_worth,
            )
        options.append(TaskOption(index, a, allowed, payers, api_model, api_cost, worths))
    return options


def _never(family: str) -> bool:
    return False



def _cheapest(
    allowed: tuple[Model, ...], input_tokens: int, output_tokens: int
) -> tuple[Model | None, float]:
    """The allowed model of the lowest list price for these tokens (ties: the
    seed's price order, then the name)."""
    if not allowed:
        return None, 0.0
    priced = [(calculate_cost(m, input_tokens, output_tokens), price_key(m), m) for m in allowed]
    cost, _, model = min(priced, key=lambda item: (item[0], item[1]))
    return model, cost


def build_knapsack(options: list[TaskOption], ledger: Ledger) -> Knapsack:
    classes: dict[
        tuple[float, int, float | None, tuple[str, ...], tuple[float, ...]], TaskClass
    ] = {}
    for option in options:
        api_cost = option.api_cost if option.api_model is not None else None
        if not option.payers and api_cost is None:
            continue  # nothing can pay for it, or it is worth nothing
        key = (option.value, option.total, api_cost, option.payers, option.worths)
        task_class = classes.get(key)
        if task_class is None:
            task_class = classes[key] = TaskClass(*key)
        task_class.members.append(option.index)
    capacity: dict[str, float] = {
        sub.model_family: remaining_room(sub) for sub in ledger.subscriptions
    }
    capacity[API] = max(0.0, get_remaining_monthly_budget(ledger.budget)) + COST_EPSILON
    var_class: list[int] = []
    var_payer: list[str] = []
    upper: list[int] = []
    for k, task_class in enumerate(classes.values()):
        count = len(task_class.members)
        for payer in task_class.payers:
            room = capacity[payer]
            if task_class.tokens == 0 or room == INF:
                fits = count
            else:
                fits = min(count, int(room // task_class.tokens))
            if fits > 0:  # a variable that must stay 0 would only skew the scaling
                var_class.append(k)
                var_payer.append(payer)
                upper.append(fits)
        if task_class.api_cost is not None:
            cost = task_class.api_cost
            fits = count if cost <= 0 else min(count, int(capacity[API] // cost))
            if fits > 0:
                var_class.append(k)
                var_payer.append(API)
                upper.append(fits)
    return Knapsack(list(classes.values()), capacity, var_class, var_payer, upper)
