"""From a fractional or over-full plan to a feasible one: the LP relaxation
rounded down, repaired where tolerance pushed a capacity over, filled greedily
(highest value first), and API-paid tasks moved to subscriptions with room
(the same value for less money).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from model_assigner.core.optimal_knapsack import API, Knapsack
from model_assigner.core.quota import INF

# Variables with a value this close to an integer are taken as that integer.
INTEGRALITY_TOLERANCE = 1e-6


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
