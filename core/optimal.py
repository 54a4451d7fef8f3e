"""The ``optimal`` strategy: plan a whole batch for the most value the quotas and
the budget can buy, and say how close to the best possible the plan is.

A task's value score does not depend on the model it gets, so what a plan
decides is *how each task is paid*: by one subscription family's tokens, by the
API budget, or not at all. That is a small multiple knapsack:

    maximize    sum of value(t) over the tasks assigned
    subject to  each task paid at most once,
                for each subscription f: tokens charged to f <= min(remaining
                daily, remaining monthly) of f,
                API cost of the API-paid tasks <= the budget left,

where a task may be paid by f only when some model it may use belongs to
family f, and by the API at the list price of the cheapest model it may use.
The models a task may use are every model any seed strategy may give it (see
``ranked_models``), so every greedy plan is a feasible plan here: a plan that
HiGHS proves optimal is never worse than any of them.

Tasks with the same value, tokens, API cost and payers are interchangeable, so
they are grouped into classes and the integer variables count tasks per class
and payer: the 10,000 generated tasks of bench/ make about 1,200 classes.
HiGHS (``scipy.optimize.milp``) solves that exactly within a time limit. The
LP relaxation, rounded down, repaired and filled greedily, is the plan when the
model has more variables than ``milp_max_variables`` or when the MILP's best
plan at the time limit is not better. Every plan carries the LP bound,
certified by Lagrangian duality from the LP's duals (valid for any
non-negative multipliers, so solver tolerances cannot make it too low).

Ties: among plans of equal value, the lower API spend (a second MILP that keeps
the number of tasks of each class and only moves them between payers, to
within SPEND_GAP of the least spend), then the seed's preferred order for the
concrete model of each payer. API-paid tasks start on their cheapest allowed
model; the budget the plan leaves over then buys each of them, highest value
first, the first model of its band's preferred order that fits (what
select_model would pick), so the budget is never exceeded and a critical task
is not left on a budget model while the money for its preferred model is there.

Pure: no I/O, and the clock is read only by HiGHS for its time limit (a plan
that stops at the limit can depend on the machine's speed; a proven one does
not). scipy is imported only when a plan is made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from model_assigner.core.assessment import Assessment
from model_assigner.core.batch_plan import BatchPlan
from model_assigner.core.catalog import filter_models, fits_window, price_key, too_small
from model_assigner.core.config import ScoringConfig, ValueBand
from model_assigner.core.quota import (
    COST_EPSILON,
    INF,
    Ledger,
    calculate_cost,
    get_remaining_monthly_budget,
    has_room,
    remaining_daily,
    remaining_monthly,
    update_quota_tracking,
)
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.selection import (
    band_for,
    bands_below,
    make_decision,
    preferred_order_for,
    quota_left,
)
from model_assigner.core.types import Decision, Model, PassedOver, Payment, Subscription

STRATEGY = "optimal"
API = ""  # the payer key of the API budget; subscriptions are keyed by family
# Variables with a value this close to an integer are taken as that integer.
INTEGRALITY_TOLERANCE = 1e-6
# The API-spend tie-break stops within this fraction of the least spend: on
# tight batches proving the last cent takes HiGHS longer than the whole plan.
SPEND_GAP = 1e-3


# --- what a task may use --------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    """A model a task may use, and on which rule."""

    model: Model
    rule: str  # "band", "downgrade" or "capable"
    preferred: bool = False  # named in the band's preferred order


class Scored(Protocol):
    """What deciding which models a task may use reads of it: an
    Assessment, or an Observation of the online strategy's history."""

    @property
    def value(self) -> float: ...

    @property
    def domain(self) -> str: ...

    @property
    def working_set(self) -> int: ...


def task_band(assessment: Scored, config: ScoringConfig) -> ValueBand:
    """The task's value band; below the last band, the low-value band."""
    return band_for(assessment.value, config) or config.low_value_band


def ranked_models(
    assessment: Scored,
    models: list[Model],
    config: ScoringConfig,
    available: list[Subscription],
) -> list[Ranked]:
    """Every model a task may use, in the order the seed would try them.

    1. The band's preferred order (with the quota-family switch and the domain
       override), then the band's other models from the cheapest: what
       ``select_model`` tries first.
    2. With ``allow_downgrade``, each lower band's preferred models, then its
       other models from the cheapest: ``select_model``'s downgrade.
    3. When the value reaches ``minimize_cost_api_overflow``, the models rated
       at least ``capability_floor`` in the task's domain, from the cheapest:
       ``minimize_cost``'s overflow (``get_cheapest_capable_model``), which
       ignores tiers.

    Every greedy strategy assigns only models of this list, which is what makes
    ``optimal`` never worse than any of them. A model whose context window
    cannot hold the task's working set is never in it (context_fit).
    """
    band = task_band(assessment, config)
    models = [m for m in models if m.context_window >= assessment.working_set]
    ranked: list[Ranked] = []
    seen: set[str] = set()

    def add(candidates: list[Model], names: list[str], rule: str) -> None:
        by_name = {m.name: m for m in candidates}
        for name in names:
            model = by_name.get(name)
            if model is not None and model.name not in seen:
                seen.add(model.name)
                ranked.append(Ranked(model, rule, preferred=rule == "band"))
        for model in sorted(candidates, key=price_key):
            if model.name not in seen:
                seen.add(model.name)
                ranked.append(Ranked(model, rule))

    order = preferred_order_for(
        band, available, assessment.domain, assessment.value, models, config
    )
    add(filter_models(models, band.tiers), order, "band")
    if config.allow_downgrade:
        for lower in bands_below(band, config):
            add(filter_models(models, lower.tiers), list(lower.preferred), "downgrade")
    if assessment.value >= config.batch_thresholds.minimize_cost_api_overflow:
        floor = config.capability_floor
        capable = [m for m in models if m.capabilities.get(assessment.domain, 0.0) >= floor]
        add(capable, [], "capable")
    return ranked


class Ranker:
    """ranked_models, memoized: a batch has far fewer distinct (band, domain,
    value, quota) combinations than tasks."""

    def __init__(self, models: list[Model], config: ScoringConfig) -> None:
        self.models = models
        self.config = config
        self._cache: dict[tuple[str, str, float, bool, int], list[Ranked]] = {}

    def ranked(
        self, assessment: Scored, band: ValueBand, room: Callable[[str], bool]
    ) -> list[Ranked]:
        """``room(family)``: whether that family's subscription could pay the
        task (the 75 band's preferred order depends on it)."""
        family = band.quota_family
        quota = family is not None and room(family)
        key = (band.name, assessment.domain, assessment.value, quota, assessment.working_set)
        ranked = self._cache.get(key)
        if ranked is None:
            # preferred_order_for only asks whether the quota family has room
            subs = [_PLACEHOLDER.model_copy(update={"model_family": family})] if quota else []
            ranked = ranked_models(assessment, self.models, self.config, subs)
            self._cache[key] = ranked
        return ranked


# Stands for "a subscription of this family has room" in preferred_order_for.
_PLACEHOLDER = Subscription(model_family="-", reset_date=datetime(2000, 1, 1, tzinfo=UTC))


def _never(family: str) -> bool:
    return False


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
    # of the model that payer buys (core.online.worth).
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


@dataclass
class Solution:
    counts: list[int]
    upper_bound: float
    method: str
    proven_optimal: bool


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


def fit_worth(value: float, model: Model, domain: str, exponent: float = 1.0) -> float:
    """A task's value done by ``model``, under the ``fit`` objective: scaled
    by the model's capability rating in the task's domain (to the power
    ``fit_exponent``)."""
    return value * float(model.capabilities.get(domain, 0.0) ** exponent)


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


# --- solving --------------------------------------------------------------------


def _matrices(problem: Knapsack) -> tuple[Any, Any, list[str]]:
    """Rows: one per class with several payers (each task paid at most once),
    then one per finite payer capacity, scaled so that its bound is 1."""
    import numpy as np
    from scipy.sparse import csr_array

    rows: list[int] = []
    cols: list[int] = []
    data: list[float] = []
    rhs: list[float] = []
    kinds: list[str] = []
    by_class: dict[int, list[int]] = {}
    for j, k in enumerate(problem.var_class):
        by_class.setdefault(k, []).append(j)
    for k, variables in by_class.items():
        if len(variables) > 1:
            for j in variables:
                rows.append(len(rhs))
                cols.append(j)
                data.append(1.0)
            rhs.append(float(len(problem.classes[k].members)))
            kinds.append("class")
    for payer, cap in problem.capacity.items():
        if cap == INF:
            continue
        variables = [
            j for j, p in enumerate(problem.var_payer) if p == payer and problem.usage(j) > 0
        ]
        if not variables:
            continue
        scale = cap if cap > 0 else 1.0
        for j in variables:
            rows.append(len(rhs))
            cols.append(j)
            data.append(problem.usage(j) / scale)
        rhs.append(cap / scale)
        kinds.append(payer)
    matrix = csr_array(
        (np.array(data), (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))),
        shape=(len(rhs), len(problem.var_class)),
    )
    return matrix, np.array(rhs), kinds


def lagrangian_bound(values: Any, upper: Sequence[int], matrix: Any, rhs: Any, duals: Any) -> float:
    """sum(pi * b) + sum_j u_j * max(0, v_j - (A^T pi)_j): an upper bound on the
    value of every plan, for any pi >= 0 (weak duality). With the LP's duals it
    is the LP bound; clipping them to pi >= 0 keeps it valid whatever the
    solver's tolerances."""
    import numpy as np

    pi = np.maximum(np.asarray(duals, dtype=float), 0.0)
    reduced = np.asarray(values, dtype=float) - matrix.T @ pi
    terms = [float(x) for x in pi * rhs]
    terms += [float(u) * max(0.0, float(r)) for u, r in zip(upper, reduced, strict=True)]
    return math.fsum(terms)


def solve(problem: Knapsack, time_limit: float, max_variables: int) -> Solution:
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, linprog, milp

    n = len(problem.var_class)
    if n == 0:
        return Solution([], 0.0, "milp", True)
    values = np.array([problem.worth(j) for j in range(len(problem.var_class))])
    upper = np.array(problem.upper, dtype=float)
    matrix, rhs, _ = _matrices(problem)
    no_rows = matrix.shape[0] == 0

    # The LP relaxation: the bound, and the start of the fallback plan.
    lp = linprog(
        -values,
        A_ub=None if no_rows else matrix,
        b_ub=None if no_rows else rhs,
        bounds=np.column_stack([np.zeros(n), upper]),
        method="highs",
    )
    if lp.status == 0:
        duals = np.zeros(0) if no_rows else -lp.ineqlin.marginals
        bound = lagrangian_bound(values, problem.upper, matrix, rhs, duals)
        relaxed = lp.x
    else:  # cannot happen for this bounded, feasible LP; stay safe anyway
        bound = lagrangian_bound(values, problem.upper, matrix, rhs, np.zeros(len(rhs)))
        relaxed = np.zeros(n)

    best = round_and_repair(problem, [float(x) for x in relaxed])
    greedy = fill(problem, [0] * n)  # highest value first, as the seed's strategies go
    if problem.value_of(greedy) > problem.value_of(best):
        best = greedy
    method, proven = "lp-round", False

    if n <= max_variables:
        constraints = [] if no_rows else [LinearConstraint(matrix, -np.inf, rhs)]
        options = {"time_limit": time_limit, "mip_rel_gap": 0.0, "presolve": True}
        first = milp(
            -values,
            integrality=np.ones(n),
            bounds=Bounds(np.zeros(n), upper),
            constraints=constraints,
            options=options,
        )
        counts, exact = _integral(problem, first.x)
        if counts is not None and problem.value_of(counts) >= problem.value_of(best):
            best, method, proven = counts, "milp", first.status == 0 and exact
        spend_options = {**options, "mip_rel_gap": SPEND_GAP}
        best = _lower_spend(problem, reduce_spend(problem, best), matrix, rhs, upper, spend_options)
    best = reduce_spend(problem, best)
    return Solution(best, bound, method, proven)


def _integral(problem: Knapsack, x: Any) -> tuple[list[int] | None, bool]:
    """HiGHS's solution as counts, and whether it was feasible as it came
    (solver tolerances can leave a capacity a hair over: then it is repaired,
    and no longer proven optimal)."""
    if x is None:
        return None, False
    counts = [round(float(v)) for v in x]
    if problem.feasible(counts):
        return counts, True
    return repair(problem, counts), False


def _lower_spend(
    problem: Knapsack,
    counts: list[int],
    matrix: Any,
    rhs: Any,
    upper: Any,
    options: dict[str, Any],
) -> list[int]:
    """The same number of tasks of each class, paid for the least API spend:
    a second MILP that may only move tasks between payers, so the value
    cannot change."""
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_array

    totals: dict[int, int] = {}
    for j, k in enumerate(problem.var_class):
        totals[k] = totals.get(k, 0) + counts[j]
    movable = {
        k
        for j, k in enumerate(problem.var_class)
        if problem.var_payer[j] == API and counts[j] and problem.classes[k].payers
    }
    if not movable:
        return counts
    kept = sorted(k for k, total in totals.items() if total)
    row_of = {k: r for r, k in enumerate(kept)}
    cols = [j for j, k in enumerate(problem.var_class) if k in row_of]
    equal = csr_array(
        (
            np.ones(len(cols)),
            (np.array([row_of[problem.var_class[j]] for j in cols]), np.array(cols)),
        ),
        shape=(len(kept), len(problem.var_class)),
    )
    fixed = np.array([float(totals[k]) for k in kept])
    bounded = np.array(
        [u if totals.get(k, 0) else 0.0 for u, k in zip(upper, problem.var_class, strict=True)]
    )
    spend = np.array(
        [problem.usage(j) if p == API else 0.0 for j, p in enumerate(problem.var_payer)]
    )
    constraints = [LinearConstraint(equal, fixed, fixed)]
    if matrix.shape[0]:
        constraints.append(LinearConstraint(matrix, -np.inf, rhs))
    second = milp(
        spend,
        integrality=np.ones(len(spend)),
        bounds=Bounds(np.zeros(len(spend)), bounded),
        constraints=constraints,
        options=options,
    )
    candidate, _ = _integral(problem, second.x)
    if (
        candidate is not None
        and problem.value_of(candidate) >= problem.value_of(counts)
        and problem.spend_of(candidate) < problem.spend_of(counts)
    ):
        return candidate
    return counts


def round_and_repair(problem: Knapsack, relaxed: Sequence[float]) -> list[int]:
    """Round the LP solution down, repair whatever tolerance pushed over a
    capacity, then fill what is left greedily, highest value first."""
    counts = [
        max(0, min(u, math.floor(x + INTEGRALITY_TOLERANCE)))
        for x, u in zip(relaxed, problem.upper, strict=True)
    ]
    counts = repair(problem, counts)
    return fill(problem, counts)


def repair(problem: Knapsack, counts: list[int]) -> list[int]:
    """Drop tasks, least value per unit of the overused capacity first, until
    every class, quota and the budget is respected."""
    counts = [max(0, min(n, u)) for n, u in zip(counts, problem.upper, strict=True)]
    per_class: dict[int, list[int]] = {}
    for j, k in enumerate(problem.var_class):
        per_class.setdefault(k, []).append(j)
    for k, variables in per_class.items():
        excess = sum(counts[j] for j in variables) - len(problem.classes[k].members)
        # over-counted (rounding): give up API-paid tasks first
        for j in sorted(variables, key=lambda j: problem.var_payer[j] != API):
            if excess <= 0:
                break
            drop = min(excess, counts[j])
            counts[j] -= drop
            excess -= drop
    used = problem.used(counts)
    for payer, cap in problem.capacity.items():
        if used[payer] <= cap:
            continue
        variables = sorted(
            (j for j, p in enumerate(problem.var_payer) if p == payer and counts[j]),
            key=lambda j: (
                problem.worth(j) / max(problem.usage(j), 1e-300)
            ),
        )
        for j in variables:
            while counts[j] and used[payer] > cap:
                counts[j] -= 1
                used[payer] -= problem.usage(j)
            if used[payer] <= cap:
                break
        used = problem.used(counts)  # exact sums again after the subtractions
        while used[payer] > cap:  # float residue: drop one more
            j = next(j for j in variables if counts[j])
            counts[j] -= 1
            used = problem.used(counts)
    return counts


def fill(problem: Knapsack, counts: list[int]) -> list[int]:
    """Assign the tasks still left out where they fit: highest value first,
    smallest first among equals; a subscription before the API."""
    counts = list(counts)
    left = {k: len(c.members) for k, c in enumerate(problem.classes)}
    variables_of: dict[int, list[int]] = {}
    for j, k in enumerate(problem.var_class):
        left[k] -= counts[j]
        variables_of.setdefault(k, []).append(j)
    used = problem.used(counts)
    order = sorted(left, key=lambda k: (-problem.classes[k].value, problem.classes[k].tokens))
    for k in order:
        for j in sorted(variables_of.get(k, []), key=lambda j: problem.var_payer[j] == API):
            if left[k] <= 0:
                break
            payer = problem.var_payer[j]
            usage = problem.usage(j)
            room = problem.capacity[payer] - used[payer]
            fits = left[k] if usage <= 0 or room == INF else int(room // usage)
            take = max(0, min(left[k], fits, problem.upper[j] - counts[j]))
            if take:
                counts[j] += take
                used[payer] += usage * take
                left[k] -= take
    return counts if problem.feasible(counts) else repair(problem, counts)


def reduce_spend(problem: Knapsack, counts: list[int]) -> list[int]:
    """Move API-paid tasks to subscriptions that still have room, dearest first:
    the same value for less money."""
    counts = list(counts)
    used = problem.used(counts)
    index = {(problem.var_class[j], p): j for j, p in enumerate(problem.var_payer)}
    api_vars = sorted(
        (j for j, p in enumerate(problem.var_payer) if p == API and counts[j]),
        key=lambda j: -problem.usage(j),
    )
    for j in api_vars:
        k = problem.var_class[j]
        for payer in problem.classes[k].payers:
            target = index.get((k, payer))
            if target is None:  # no room for even one task of the class
                continue
            if problem.worth(target) < problem.worth(j):  # the fit objective: worth less
                continue
            tokens = problem.usage(target)
            room = problem.capacity[payer] - used[payer]
            move = counts[j] if room == INF or tokens <= 0 else min(counts[j], int(room // tokens))
            move = min(move, problem.upper[target] - counts[target])
            if move > 0:
                counts[j] -= move
                counts[target] += move
                used[payer] += tokens * move
                used[API] -= problem.usage(j) * move
    return counts


# --- from counts to decisions ---------------------------------------------------


def plan_optimal(
    scored: Sequence[Assessment], ledger: Ledger, models: list[Model], config: ScoringConfig
) -> BatchPlan:
    """The optimal plan for ``scored`` against ``ledger`` (a copy the caller
    owns; it is charged with the plan's payments)."""
    options = build_options(scored, ledger, models, config)
    problem = build_knapsack(options, ledger)
    limits = config.optimal
    solution = solve(problem, limits.time_limit_seconds, limits.milp_max_variables)

    payer_of: dict[int, str] = {}
    for j, n in enumerate(solution.counts):
        if not n:
            continue
        members = problem.classes[problem.var_class[j]].members
        free = [i for i in members if i not in payer_of]
        for i in free[:n]:
            payer_of[i] = problem.var_payer[j]

    start = ledger.copy()
    decisions = _decide(options, payer_of, start, ledger, models, config)
    return BatchPlan(
        decisions=decisions,
        ledger=ledger,
        upper_bound=solution.upper_bound,
        method=solution.method,
        proven_optimal=solution.proven_optimal,
    )


def _after_plan(ledger: Ledger, options: list[TaskOption], payer_of: dict[int, str]) -> Ledger:
    """The ledger with every planned subscription charge applied: which
    subscriptions still have room once the plan has run."""
    after = ledger.copy()
    for i, payer in payer_of.items():
        if payer != API:
            sub = after.subscription_for(payer)
            if sub is not None:
                tokens = options[i].total
                sub.tokens_used_today += tokens
                sub.tokens_used_month += tokens
    return after


def _prefer_payers(
    options: list[TaskOption], payer_of: dict[int, str], ledger: Ledger, ranker: Ranker
) -> None:
    """Among subscriptions of equal cost (none), pay each task from the family
    that comes first in its preferred order, where that family has room left."""
    if len(ledger.subscriptions) < 2:
        return
    after = _after_plan(ledger, options, payer_of)
    for i in sorted(payer_of, key=lambda i: -options[i].value):
        current = payer_of[i]
        if current == API:
            continue
        a = options[i].assessment
        total = options[i].total

        def room(family: str, total: int = total) -> bool:
            sub = after.subscription_for(family)
            return sub is not None and has_room(sub, total)

        for ranked in ranker.ranked(a, task_band(a, ranker.config), room):
            family = ranked.model.family
            if family == current:
                break
            sub = after.subscription_for(family)
            if family in options[i].payers and sub is not None and has_room(sub, options[i].total):
                old = after.subscription_for(current)
                if old is not None:
                    old.tokens_used_today -= options[i].total
                    old.tokens_used_month -= options[i].total
                sub.tokens_used_today += options[i].total
                sub.tokens_used_month += options[i].total
                payer_of[i] = family
                break


def _decide(
    options: list[TaskOption],
    payer_of: dict[int, str],
    start: Ledger,
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
) -> list[Decision]:
    ranker = Ranker(models, config)
    _prefer_payers(options, payer_of, start, ranker)
    after = _after_plan(start, options, payer_of)
    room_after = {sub.model_family: remaining_room(sub) for sub in after.subscriptions}

    # The budget the plan leaves when every API-paid task is on its cheapest
    # allowed model: the room for preferred models, handed out by value.
    # With spend_leftover_budget off, none: every API task stays on its
    # cheapest allowed model (the lower-spend tie rule taken to the letter).
    api_tasks = [i for i, p in payer_of.items() if p == API]
    slack = (
        get_remaining_monthly_budget(start.budget)
        + COST_EPSILON
        - math.fsum(options[i].api_cost for i in api_tasks)
        if config.optimal.spend_leftover_budget
        else 0.0
    )

    decisions: dict[int, Decision] = {}
    # The seed's order: highest value first (stable), so the 'left' figures in
    # each payment read like the greedy strategies' do.
    for option in sorted(options, key=lambda o: -o.value):
        i = option.index
        a = option.assessment
        payer = payer_of.get(i)
        if payer is None:
            continue  # decided below, against the ledger after the whole plan
        band = task_band(a, config)
        total = option.total

        def room(family: str, total: int = total, payer: str = payer) -> bool:
            return family == payer or room_after.get(family, -1.0) >= total

        ranked = ranker.ranked(a, band, room)
        tokens = a.tokens
        if payer != API:
            family = [r for r in ranked if r.model.family == payer]
            choice = family[0]
            if config.objective == "fit":  # the best rated, the seed's order among equals
                choice = max(family, key=lambda r: (
                    r.model.capabilities.get(a.domain, 0.0), -family.index(r)))
            position = ranked.index(choice)
            sub = ledger.subscription_for(payer)
            if sub is None or not has_room(sub, option.total):  # cannot happen: checked plan
                continue
            payment = Payment(
                kind="subscription",
                family=payer,
                tokens=option.total,
                cost_usd=0.0,
                remaining_daily=_finite(remaining_daily(sub) - option.total),
                remaining_monthly=_finite(remaining_monthly(sub) - option.total),
            )
            passed = [
                PassedOver(
                    model=r.model.name,
                    reason=reason(ReasonCode.PLAN_OTHER_SUBSCRIPTION, payer=payer,
                                  family=r.model.family),
                )
                for r in ranked[:position]
                if r.preferred
            ]
            why = reason(ReasonCode.PLAN_SUBSCRIPTION, value=a.value, band=band.name,
                         payer=payer, model=choice.model.name, rule=choice.rule,
                         tiers=tuple(band.tiers))
        else:
            cheapest = option.api_model
            assert cheapest is not None
            skipped: list[tuple[Ranked, float]] = []
            choice = next(r for r in ranked if r.model.name == cheapest.name)
            budget_left = get_remaining_monthly_budget(ledger.budget) + COST_EPSILON
            kept = max(0.0, slack + option.api_cost)  # what the plan keeps for this task
            for r in ranked:
                cost = calculate_cost(r.model, tokens.input_tokens, tokens.output_tokens)
                extra = cost - option.api_cost
                if r.model.name == cheapest.name or (extra <= slack and cost <= budget_left):
                    choice = r
                    slack -= max(0.0, extra)
                    break
                skipped.append((r, cost))
            passed = [
                PassedOver(
                    model=r.model.name,
                    reason=reason(ReasonCode.PLAN_BUDGET_SHARE, cost=cost, kept=kept),
                )
                for r, cost in skipped
                if r.preferred
            ]
            cost = calculate_cost(choice.model, tokens.input_tokens, tokens.output_tokens)
            if cost > budget_left:  # float residue; the checked plan fits
                continue
            payment = Payment(
                kind="api",
                family=choice.model.family,
                tokens=option.total,
                cost_usd=cost,
                remaining_budget_usd=max(0.0, get_remaining_monthly_budget(ledger.budget) - cost),
            )
            why = reason(ReasonCode.PLAN_API, value=a.value, band=band.name,
                         model=choice.model.name, rule=choice.rule, tiers=tuple(band.tiers))
        update_quota_tracking(ledger, payment)
        passed = window_passed_over(a, band, models) + passed
        decisions[i] = make_decision(a, choice.model, payment, band.name, STRATEGY, why, passed)
    for option in options:
        if option.index not in decisions:
            decisions[option.index] = _deferred(option, start, ledger, config)
    return [decisions[i] for i in range(len(options))]


def window_passed_over(a: Assessment, band: ValueBand, models: list[Model]) -> list[PassedOver]:
    """The band's preferred models left out because their context window
    cannot hold the task's working set (context_fit)."""
    names = [*band.preferred, *(band.preferred_without_quota or [])]
    small = [m for m in models if not fits_window(m, a.tokens)]
    return too_small(names, small, a.tokens)


def _finite(value: float) -> int | None:
    return None if value == INF else int(value)


def _deferred(option: TaskOption, start: Ledger, after: Ledger, config: ScoringConfig) -> Decision:
    a = option.assessment
    band = task_band(a, config)
    why: Reason
    if a.value <= 0:
        why = reason(ReasonCode.NO_VALUE, value=a.value)
        hint = reason(ReasonCode.GIVE_IT_VALUE)
    elif not option.payers and option.api_model is None:
        why = reason(ReasonCode.UNPAYABLE_ALONE, tokens=option.total, **quota_left(start))
        hint = reason(ReasonCode.MORE_QUOTA)
    else:
        why = reason(ReasonCode.OUTBID_BY_PLAN, value=a.value, tokens=option.total,
                     api_cost=option.api_cost, **quota_left(after))
        hint = reason(ReasonCode.PLAN_MORE_VALUE)
    return make_decision(a, None, None, band.name, STRATEGY, why, unblock_hint=hint)
