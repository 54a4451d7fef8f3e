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
from dataclasses import dataclass
from datetime import datetime

from model_assigner.core.assessment import Assessment, assess
from model_assigner.core.catalog import (
    filter_models,
    find_model,
    fits_window,
    get_cheapest_capable_model,
    price_key,
    window_reason,
)
from model_assigner.core.config import ScoringConfig, ValueBand
from model_assigner.core.quota import Ledger, has_room, payment_for, update_quota_tracking
from model_assigner.core.scoring import depended_on_ids
from model_assigner.core.selection import (
    band_for,
    defer_low_value,
    defer_unaffordable,
    make_decision,
    preferred_order_for,
    select_model,
    why_unaffordable,
)
from model_assigner.core.types import (
    GREEDY_STRATEGIES,
    STRATEGIES,
    Decision,
    Model,
    Observation,
    PassedOver,
    Task,
)


@dataclass
class BatchPlan:
    """Decisions in the order the tasks were given, and the ledger after them.

    ``upper_bound`` is the LP bound on the value any plan can capture: set by
    ``optimal`` (core/optimal.py), None for the greedy strategies. ``method``
    says how ``optimal`` found its plan ("milp" or "lp-round"), and
    ``proven_optimal`` whether HiGHS proved it the best possible."""

    decisions: list[Decision]
    ledger: Ledger
    upper_bound: float | None = None
    method: str | None = None
    proven_optimal: bool | None = None

    @property
    def value(self) -> float:
        """The total value score of the tasks the plan assigns."""
        return math.fsum(d.value_score for d in self.decisions if d.model is not None)

    @property
    def api_spend_usd(self) -> float:
        return math.fsum(d.payment.cost_usd for d in self.decisions if d.payment is not None)

    @property
    def bound(self) -> float | None:
        """Alias of ``upper_bound`` (bot/plan.py reads this name)."""
        return self.upper_bound

    @property
    def gap(self) -> float | None:
        """How much value the bound leaves room for (never negative)."""
        return None if self.upper_bound is None else max(0.0, self.upper_bound - self.value)

    @property
    def gap_ratio(self) -> float | None:
        """The gap as a fraction of the bound (0 when the bound is 0)."""
        gap = self.gap
        if gap is None or self.upper_bound is None:
            return None
        return gap / self.upper_bound if self.upper_bound > 0 else 0.0


def try_subscription_models(
    assessment: Assessment, ledger: Ledger, models: list[Model], config: ScoringConfig
) -> Model | None:
    """A model of the task's band that a subscription can pay for: preferred
    order first, then the band's other models from the cheapest. The band still
    applies so that "free" subscription tokens never put a trivial task on a
    premium model (the seed leaves this helper undefined)."""
    band = band_for(assessment.value, config) or config.low_value_band
    total = assessment.total_tokens
    available = [sub for sub in ledger.subscriptions if has_room(sub, total)]
    candidates = filter_models(models, band.tiers)
    order = preferred_order_for(
        band, available, assessment.domain, assessment.value, models, config
    )
    ranked = [m for name in order for m in candidates if m.name == name]
    ranked += sorted((m for m in candidates if m not in ranked), key=price_key)
    for model in ranked:
        sub = ledger.subscription_for(model.family)
        if sub is not None and has_room(sub, total):
            return model
    return None


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
        from model_assigner.core.optimal import plan_optimal  # imports scipy: only when asked for

        plan = plan_optimal(scored, ledger, models, config)
        if plan.proven_optimal or len(scored) > config.optimal.greedy_check_max_tasks:
            return plan
        return best_of_greedy(plan, scored, given, models, config, now)
    decisions: dict[str, Decision] = {}
    if strategy == "online":
        from model_assigner.core.online import (  # imports scipy: only when asked for
            decide_online,
            observe,
        )

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


def minimize_cost_one(
    a: Assessment, ledger: Ledger, models: list[Model], config: ScoringConfig, strategy: str
) -> Decision:
    tokens = a.tokens
    band = band_for(a.value, config) or config.low_value_band
    catalog, models = models, [m for m in models if fits_window(m, tokens)]
    model = try_subscription_models(a, ledger, models, config)
    if model is not None:
        payment = payment_for(model, ledger, tokens.input_tokens, tokens.output_tokens)
        reason = f"{model.name} fits the {model.family} subscription (value {a.value:.1f})"
        passed = cost_passed_over(a, model, band, ledger, catalog, config)
        return make_decision(a, model, payment, band.name, strategy, reason, passed)
    overflow = config.batch_thresholds.minimize_cost_api_overflow
    if a.value < overflow:
        return defer_low_value(a, config, strategy, overflow)
    model = get_cheapest_capable_model(
        models, a.domain, config.capability_floor, ledger, tokens.input_tokens, tokens.output_tokens
    )
    if model is None:
        passed = cost_passed_over(a, None, band, ledger, catalog, config)
        return defer_unaffordable(a, band, ledger, strategy, passed)
    payment = payment_for(model, ledger, tokens.input_tokens, tokens.output_tokens)
    reason = (
        f"no subscription can pay for a model the {band.name} band allows; "
        f"{model.name} is the cheapest model rated "
        f">= {config.capability_floor:g} for {a.domain} that the API budget can pay for"
    )
    passed = cost_passed_over(a, model, band, ledger, catalog, config)
    return make_decision(a, model, payment, band.name, strategy, reason, passed)


def cost_passed_over(
    a: Assessment,
    chosen: Model | None,
    band: ValueBand,
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
) -> list[PassedOver]:
    """Why minimize_cost did not take the models the task's band prefers,
    each reason the filter that really set it aside: nothing pays for it; a
    subscription pays for the model taken, which comes first among the
    band's models such a subscription covers; or, on the API, the cheapest
    model rated at least capability_floor was taken."""
    t = a.tokens
    available = [sub for sub in ledger.subscriptions if has_room(sub, t.total)]
    order = preferred_order_for(band, available, a.domain, a.value, models, config)
    by_subscription = chosen is not None and _paid_by_subscription(chosen, ledger, t.total)
    taken = chosen.name if chosen is not None else ""
    family = chosen.family if chosen is not None else ""
    passed = []
    for name in order:
        model = find_model(models, name)
        if model is None or (chosen is not None and model.name == chosen.name):
            continue
        rating = model.capabilities.get(a.domain, 0.0)
        if not fits_window(model, t):
            reason = window_reason(model, t)
        elif payment_for(model, ledger, t.input_tokens, t.output_tokens) is None:
            reason = why_unaffordable(model, ledger, t.input_tokens, t.output_tokens)
        elif by_subscription and model.tier not in band.tiers:
            reason = f"not in the {band.name} band's tiers ({', '.join(band.tiers)})"
        elif by_subscription and _paid_by_subscription(model, ledger, t.total):
            reason = f"{taken} comes first among the band's subscription-paid models"
        elif by_subscription:
            reason = f"only on the API, while the {family} subscription pays for {taken}"
        elif rating < config.capability_floor:
            reason = (f"rated {rating:g} for {a.domain}, below the capability floor "
                      f"{config.capability_floor:g}")
        elif chosen is not None:
            reason = (f"dearer per token than {taken}, the cheapest model rated "
                      f">= {config.capability_floor:g} for {a.domain}")
        else:
            reason = "nothing was assigned"
        passed.append(PassedOver(model=name, reason=reason))
    return passed


def _paid_by_subscription(model: Model, ledger: Ledger, tokens: int) -> bool:
    sub = ledger.subscription_for(model.family)
    return sub is not None and has_room(sub, tokens)
