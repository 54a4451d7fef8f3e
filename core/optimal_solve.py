"""Solving the ``optimal`` strategy's knapsack with HiGHS (scipy): the LP
relaxation and its Lagrangian bound, the MILP within a time limit, and the
lower-API-spend tie-break (a second MILP). scipy is imported only here, and
only when a plan is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from model_assigner.core.optimal_knapsack import API, Knapsack
from model_assigner.core.optimal_rounding import fill, reduce_spend, repair, round_and_repair
from model_assigner.core.quota import INF

# The API-spend tie-break stops within this fraction of the least spend: on
# tight batches proving the last cent takes HiGHS longer than the whole plan.
SPEND_GAP = 1e-3


@dataclass
class Solution:
    counts: list[int]
    upper_bound: float
    method: str
    proven_optimal: bool



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
