"""Phase 4 of the seed: assign a whole batch under one quota strategy.

Each of the seed's strategies walks the tasks in the seed's order and charges as
it goes, on a copy of the ledger, so the caller's quota state changes only if it
adopts the plan's ledger. Every strategy only ever assigns what select_model (or
the cheaper fallbacks here) found payable, so no plan exceeds a quota or the
budget. The fourth strategy, ``optimal``, plans the batch as a whole
(core/optimal.py) and returns the same kind of plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from model_assigner.core.assessment import Assessment, assess
from model_assigner.core.batch_plan import BatchPlan
from model_assigner.core.config import ScoringConfig
from model_assigner.core.greedy import minimize_cost_one, try_subscription_models
from model_assigner.core.online import decide_online
from model_assigner.core.online_history import observe
from model_assigner.core.optimal import plan_optimal
from model_assigner.core.quota import Ledger, update_quota_tracking
from model_assigner.core.scoring import depended_on_ids
from model_assigner.core.selection import defer_low_value, select_model
from model_assigner.core.types import (
    GREEDY_STRATEGIES,
    STRATEGIES,
    Decision,
    Model,
    Observation,
    Task,
)

__all__ = [
    "BatchPlan",
    "best_of_greedy",
    "minimize_cost_one",
    "optimize_task_assignments",
    "plan_assessed",
    "plan_worth",
    "try_subscription_models",
]


def _commit(ledger: Ledger, decision: Decision) -> None:
    if decision.payment is not None:
        update_quota_tracking(ledger, decision.payment)


def _check_ids(ids: list[str]) -> None:
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"task id {duplicate!r} appears more than once")


def optimize_task_assignments(
    tasks: Sequence[Task],
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
    now: datetime,
    strategy: str = "maximize_subscription_usage",
    history: Sequence[Observation] = (),
) -> BatchPlan:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    _check_ids([task.id for task in tasks])
    depended_on = depended_on_ids(tasks)
    scored = [assess(task, config, now, depended_on) for task in tasks]
    return plan_assessed(scored, ledger, models, config, now, strategy, history)


def plan_assessed(
    scored: Sequence[Assessment],
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
    now: datetime,
    strategy: str = "maximize_subscription_usage",
    history: Sequence[Observation] = (),
) -> BatchPlan:
    """Phase 4 on tasks already scored (Phases 1 and 2), in the given order:
    what optimize_task_assignments does after scoring, and what the benchmark
    times. ``history``: the issues seen before, which only ``online`` reads
    (it decides the tasks one by one in the given order, each then joining
    the history)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    ids = [a.task.id for a in scored]
    _check_ids(ids)
    given = ledger
    ledger = ledger.copy()
    if strategy == "optimal":
        plan = plan_optimal(scored, ledger, models, config)
        if plan.proven_optimal or len(scored) > config.optimal.greedy_check_max_tasks:
            return plan
        return best_of_greedy(plan, scored, given, models, config, now)
    decisions: dict[str, Decision] = {}
    if strategy == "online":
        seen = list(history)
        for a in scored:
            decisions[a.task.id] = decide_online(a, ledger, models, config, now, seen)
            _commit(ledger, decisions[a.task.id])
            seen.append(observe(a, now))
        return BatchPlan(decisions=[decisions[task_id] for task_id in ids], ledger=ledger)
    thresholds = config.batch_thresholds

    def select(a: Assessment) -> Decision:
        return select_model(a.task, ledger, models, config, now, "maximize_value", assessment=a)

    if strategy == "maximize_subscription_usage":
        # Fill subscription quotas with the highest-value tasks that fit, then the
        # API; low-value tasks are deferred by select_model('maximize_value').
        for a in sorted(scored, key=lambda a: a.value, reverse=True):
            decision = select(a).model_copy(update={"strategy": strategy})
            _commit(ledger, decision)
            decisions[a.task.id] = decision

    elif strategy == "minimize_cost":
        # Subscriptions for everything that fits, smallest first to pack them;
        # cheapest capable API model for the overflow; defer the rest.
        for a in sorted(scored, key=lambda a: a.total_tokens):
            decisions[a.task.id] = minimize_cost_one(a, ledger, models, config, strategy)
            _commit(ledger, decisions[a.task.id])

    else:  # maximize_value
        for a in sorted(scored, key=lambda a: a.value, reverse=True):
            if a.value >= thresholds.maximize_value_always:
                decision = select(a)
            elif a.value >= thresholds.maximize_value_if_affordable:
                # The seed re-checks can_use_model here; select_model already
                # assigns only what can be paid for.
                decision = select(a)
            else:
                # select_model defers below the lowest band too: the higher of the two.
                floor = max(thresholds.maximize_value_if_affordable,
                            config.value_bands[-1].min_value)
                decision = defer_low_value(a, config, strategy, floor)
            decision = decision.model_copy(update={"strategy": strategy})
            _commit(ledger, decision)
            decisions[a.task.id] = decision

    return BatchPlan(decisions=[decisions[task_id] for task_id in ids], ledger=ledger)


def plan_worth(plan: BatchPlan, models: list[Model], config: ScoringConfig) -> float:
    """What ``optimal`` and ``online`` maximize: the plan's value, or under
    the ``fit`` objective each assigned task's value times its model's
    rating in the task's domain."""
    if config.objective != "fit":
        return plan.value
    by_name = {m.name: m for m in models}
    return math.fsum(
        d.value_score
        * by_name[d.model].capabilities.get(d.breakdown.domain, 0.0) ** config.fit_exponent
        for d in plan.decisions
        if d.model is not None and d.model in by_name
    )


def best_of_greedy(
    plan: BatchPlan,
    scored: Sequence[Assessment],
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
    now: datetime,
) -> BatchPlan:
    """An ``optimal`` plan HiGHS did not prove optimal (the rounded LP, or the
    MILP at its time limit) could lose to a greedy strategy on a few tasks:
    the greedy plans are made too, and the best plan of all is kept (more
    value; at equal value, less API spend when optimal.spend_leftover_budget
    is off), with the LP bound it is measured against."""
    best = plan
    for strategy in GREEDY_STRATEGIES:
        other = plan_assessed(scored, ledger, models, config, now, strategy)
        more = plan_worth(other, models, config) - plan_worth(best, models, config)
        # Equal value: the lower spend wins only where the plan itself keeps
        # spend low; otherwise the plan's spending on preferred models stands.
        cheaper = (
            not config.optimal.spend_leftover_budget
            and more >= -1e-9
            and other.api_spend_usd < best.api_spend_usd - 1e-9
        )
        if more > 1e-9 or cheaper:
            best = BatchPlan(
                decisions=[d.model_copy(update={"strategy": "optimal"}) for d in other.decisions],
                ledger=other.ledger,
                upper_bound=plan.upper_bound,
                method=f"{plan.method}, beaten by {strategy}",
                proven_optimal=False,
            )
    return best
