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
The models a task may use are every model any seed strategy may give it
(``ranked_models``, core/allowed_models.py), so every greedy plan is a
feasible plan here: a plan that HiGHS proves optimal is never worse than any
of them.

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

Where each step lives: the tasks, their classes and the integer program in
core/optimal_knapsack.py; HiGHS, the bound and the lower-spend MILP in
core/optimal_solve.py; rounding the LP, repair, the greedy fill and moving
API tasks to subscriptions in core/optimal_rounding.py; here, the plan's
counts made into decisions (the payer and model tie rules, the leftover
budget, the deferred tasks' reasons).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from model_assigner.core.allowed_models import Ranked, Ranker, task_band, window_passed_over
from model_assigner.core.assessment import Assessment
from model_assigner.core.batch_plan import BatchPlan
from model_assigner.core.config import ScoringConfig
from model_assigner.core.optimal_knapsack import (
    API,
    TaskOption,
    build_knapsack,
    build_options,
    remaining_room,
)
from model_assigner.core.optimal_solve import solve
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
from model_assigner.core.selection import make_decision, quota_left
from model_assigner.core.types import Decision, Model, PassedOver, Payment

STRATEGY = "optimal"


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
