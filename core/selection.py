"""Phase 3 of the seed: pick the model for one task.

The branch order is the seed's: value band -> tier filter -> preferred order
(with the claude-quota branch and the domain override) -> the first preferred
model that quota or budget can pay for -> fallback. The fallback differs on
purpose: the seed returns the cheapest candidate even when nothing can pay for
it, while its flow chart says "Downgrade or Defer". We never assign what the
quota and the budget cannot pay for: cheapest affordable candidate, then the
lower bands' tiers, then defer (docs/design-decisions.md, decision 2).
"""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime

from model_assigner.core.assessment import Assessment, assess
from model_assigner.core.catalog import (
    filter_models,
    find_model,
    fits_window,
    price_key,
    window_reason,
)
from model_assigner.core.config import ScoringConfig, ValueBand
from model_assigner.core.quota import (
    INF,
    Ledger,
    calculate_cost,
    get_remaining_monthly_budget,
    has_quota,
    has_room,
    payment_for,
    remaining_daily,
    remaining_monthly,
)
from model_assigner.core.scoring import clamp, combine_terms
from model_assigner.core.types import (
    Decision,
    Model,
    PassedOver,
    Payment,
    ScoreBreakdown,
    Subscription,
    Task,
)


def band_for(value_score: float, config: ScoringConfig) -> ValueBand | None:
    """The first band whose floor the value reaches; None below the last."""
    for band in config.value_bands:
        if value_score >= band.min_value:
            return band
    return None


def bands_below(band: ValueBand, config: ScoringConfig) -> list[ValueBand]:
    ordered = config.bands()
    names = [b.name for b in ordered]
    return ordered[names.index(band.name) + 1 :] if band.name in names else []


def preferred_order_for(
    band: ValueBand,
    available_subscriptions: list[Subscription],
    domain: str,
    value_score: float,
    models: list[Model],
    config: ScoringConfig,
) -> list[str]:
    preferred_order = list(band.preferred)
    # "Check if we have subscription quota for Sonnet"
    if band.quota_family is not None and not has_quota(available_subscriptions, band.quota_family):
        preferred_order = list(band.preferred_without_quota or [])
    # Domain-specific overrides ("Claude excels at K8s YAML")
    for override in config.domain_overrides:
        if domain == override.domain and value_score >= override.min_value:
            family = {m.name for m in models if m.family == override.prefer_family}
            preferred_order = [m for m in preferred_order if m in family] + [
                m for m in preferred_order if m not in family
            ]
    return preferred_order


def why_unaffordable(model: Model, ledger: Ledger, input_tokens: int, output_tokens: int) -> str:
    total = input_tokens + output_tokens
    sub = ledger.subscription_for(model.family)
    if sub is None:
        quota = f"no {model.family} subscription"
    else:
        left = min(remaining_daily(sub), remaining_monthly(sub))
        quota = f"{model.family} quota has {max(0, int(left)):,} tokens left, {total:,} needed"
    cost = calculate_cost(model, input_tokens, output_tokens)
    budget = get_remaining_monthly_budget(ledger.budget)
    return f"{quota}; API cost ${cost:,.2f} is over the ${max(0.0, budget):,.2f} budget left"


def quota_summary(ledger: Ledger) -> str:
    parts = []
    for sub in ledger.subscriptions:
        left = min(remaining_daily(sub), remaining_monthly(sub))
        shown = "unlimited" if left == INF else f"{max(0, int(left)):,} tokens"
        parts.append(f"{sub.model_family} quota {shown} left")
    budget = get_remaining_monthly_budget(ledger.budget)
    parts.append(f"API budget ${max(0.0, budget):,.2f} left")
    return ", ".join(parts)


def make_decision(
    assessment: Assessment,
    model: Model | None,
    payment: Payment | None,
    band: str,
    strategy: str,
    reason: str,
    passed_over: list[PassedOver] | None = None,
    unblock_hint: str | None = None,
) -> Decision:
    tokens = assessment.tokens
    cost = calculate_cost(model, tokens.input_tokens, tokens.output_tokens) if model else 0.0
    return Decision(
        task_id=assessment.task.id,
        model=model.name if model else None,
        value_score=assessment.value,
        value_density=assessment.value_density,
        breakdown=assessment.breakdown,
        tokens=tokens,
        cost_usd=cost,
        band=band,
        strategy=strategy,
        payment=payment,
        passed_over=passed_over or [],
        reason=reason,
        unblock_hint=unblock_hint,
    )


def defer_low_value(
    assessment: Assessment, config: ScoringConfig, strategy: str, floor: float | None = None
) -> Decision:
    """Deferred for its value: below ``floor``, the lowest band's by default,
    or the batch threshold (batch_thresholds) that set it aside."""
    floor = config.value_bands[-1].min_value if floor is None else floor
    band = band_for(assessment.value, config) or config.low_value_band
    return make_decision(
        assessment,
        None,
        None,
        band.name,
        strategy,
        reason=(
            f"value {assessment.value:.1f} is below {floor:g}: low-value work is deferred "
            "rather than spending tokens on it"
        ),
        unblock_hint=low_value_hint(assessment, config, floor),
    )


def _value_with(b: ScoreBreakdown, config: ScoringConfig, weight: float, bonus: float) -> float:
    """The task's value were its priority weight and time bonus these."""
    score = combine_terms(weight, b.complexity_multiplier, bonus, b.domain_modifier,
                          b.risk_modifier)
    return clamp(score, config.score_min, config.score_max)


def _best_terms(config: ScoringConfig) -> tuple[float, float]:
    """The highest priority weight and time bonus any label or deadline gives."""
    return (max(config.priority_weights.values(), default=0.0),
            max(config.time_sensitivity_bonuses.model_dump().values()))


def value_levers(assessment: Assessment, config: ScoringConfig, floor: float) -> list[str]:
    """What would lift a deferred task's value to ``floor``: each term not
    yet at its highest, named only when raising it alone (or, failing that,
    together with the others) reaches the floor. Worked out with the value
    formula itself, so the hint never promises what cannot happen."""
    return levers_for(assessment.breakdown, config, floor)


def levers_for(b: ScoreBreakdown, config: ScoringConfig, floor: float) -> list[str]:
    """value_levers, from the score's breakdown alone."""
    best_weight, best_bonus = _best_terms(config)
    levers = []
    if b.priority_weight < best_weight and _value_with(b, config, best_weight,
                                                       b.time_bonus) >= floor:
        levers.append("a higher priority label")
    if b.time_bonus < best_bonus and _value_with(b, config, b.priority_weight,
                                                 best_bonus) >= floor:
        levers.append("a nearer milestone due date")
    blocking = config.blocking_time_bonus
    if b.time_bonus < blocking and _value_with(b, config, b.priority_weight, blocking) >= floor:
        levers.append("other issues depending on this one")
    if levers:
        return levers
    if _value_with(b, config, best_weight, max(best_bonus, blocking)) >= floor:
        return ["a higher priority label together with a nearer milestone due date"]
    return []


def low_value_hint(assessment: Assessment, config: ScoringConfig, floor: float) -> str:
    levers = value_levers(assessment, config, floor)
    if levers:
        return f"a value of {floor:g} or more would assign it: {_or_list(levers)}"
    b = assessment.breakdown
    best_weight, best_bonus = _best_terms(config)
    cap = _value_with(b, config, best_weight, max(best_bonus, config.blocking_time_bonus))
    return (
        f"no label or deadline lifts it to {floor:g}: its complexity ({b.complexity}), "
        f"domain ({b.domain}) and risk ({b.risk}) cap its value at {cap:.1f}; only a change "
        "to the scoring configuration would assign it"
    )


def _or_list(items: list[str]) -> str:
    if len(items) <= 2:
        return " or ".join(items)
    return f"{', '.join(items[:-1])}, or {items[-1]}"


def defer_unaffordable(
    assessment: Assessment,
    band: ValueBand,
    ledger: Ledger,
    strategy: str,
    passed_over: list[PassedOver],
) -> Decision:
    resets = ", ".join(s.reset_date.date().isoformat() for s in ledger.subscriptions)
    return make_decision(
        assessment,
        None,
        None,
        band.name,
        strategy,
        reason=(
            f"no model of tiers {', '.join(band.tiers)} or below can be paid for "
            f"{assessment.total_tokens:,} tokens: {quota_summary(ledger)}"
        ),
        passed_over=passed_over,
        unblock_hint=(
            "more subscription quota, a larger API budget, or the next quota reset "
            f"(subscription {resets or 'none'}, "
            f"API budget {ledger.budget.reset_date.date().isoformat()}) would assign it"
        ),
    )


def _first_affordable(
    names: list[str],
    candidates: list[Model],
    models: list[Model],
    band: ValueBand,
    assessment: Assessment,
    ledger: Ledger,
    passed_over: list[PassedOver] | None,
) -> tuple[Model, Payment] | None:
    tokens = assessment.tokens
    for model_name in names:
        model = find_model(models, model_name)
        if model is None:
            if passed_over is not None:
                passed_over.append(PassedOver(model=model_name, reason="not in the catalog"))
            continue
        if not fits_window(model, tokens):
            if passed_over is not None:
                passed_over.append(
                    PassedOver(model=model_name, reason=window_reason(model, tokens))
                )
            continue
        if model not in candidates:
            if passed_over is not None:
                passed_over.append(
                    PassedOver(
                        model=model_name,
                        reason=f"tier {model.tier} is not among the {band.name} band's tiers "
                        f"({', '.join(band.tiers)})",
                    )
                )
            continue
        payment = payment_for(model, ledger, tokens.input_tokens, tokens.output_tokens)
        if payment is not None:
            return model, payment
        if passed_over is not None:
            passed_over.append(
                PassedOver(
                    model=model_name,
                    reason=why_unaffordable(
                        model, ledger, tokens.input_tokens, tokens.output_tokens
                    ),
                )
            )
    return None


def _cheapest_affordable(
    candidates: list[Model], assessment: Assessment, ledger: Ledger, skip: set[str]
) -> tuple[Model, Payment] | None:
    tokens = assessment.tokens
    for model in sorted(candidates, key=price_key):
        if model.name in skip:
            continue
        payment = payment_for(model, ledger, tokens.input_tokens, tokens.output_tokens)
        if payment is not None:
            return model, payment
    return None


def select_model(
    task: Task,
    ledger: Ledger,
    models: list[Model],
    config: ScoringConfig,
    now: datetime,
    quota_strategy: str = "maximize_value",
    *,
    assessment: Assessment | None = None,
    depended_on: Container[str] = frozenset(),
) -> Decision:
    """Choose a model for ``task`` without charging anything; the caller charges
    ``decision.payment`` with update_quota_tracking when it commits."""
    if assessment is None:
        assessment = assess(task, config, now, depended_on)
    value_score = assessment.value
    total_tokens = assessment.total_tokens
    domain = assessment.domain

    available_subscriptions = [sub for sub in ledger.subscriptions if has_room(sub, total_tokens)]
    # Only models whose context window holds a turn's working set (context_fit).
    fitting = [m for m in models if fits_window(m, assessment.tokens)]

    band = band_for(value_score, config)
    if band is None:
        # Low value: defer, or use the cheapest
        if quota_strategy == "maximize_value":
            return defer_low_value(assessment, config, quota_strategy)
        band = config.low_value_band

    candidates = filter_models(fitting, band.tiers)
    preferred_order = preferred_order_for(
        band, available_subscriptions, domain, value_score, models, config
    )

    passed_over: list[PassedOver] = []
    found = _first_affordable(
        preferred_order, candidates, models, band, assessment, ledger, passed_over
    )
    if found:
        model, payment = found
        position = preferred_order.index(model.name) + 1
        choice = "first choice" if position == 1 else f"choice #{position}"
        pays = (f"the {payment.family} subscription pays" if payment.kind == "subscription"
                else "the API budget pays")
        reason = (
            f"its value, {value_score:.1f}, puts it in the {band.name} band "
            f"({band.min_value:g} and up), where {model.name} is the {choice}"
            + ("" if position == 1 else " (why not the ones before it: see the details)")
            + f"; {pays}"
        )
        return make_decision(
            assessment, model, payment, band.name, quota_strategy, reason, passed_over
        )

    # Fallback to the cheapest candidate that can be paid for
    found = _cheapest_affordable(candidates, assessment, ledger, skip=set(preferred_order))
    if found:
        model, payment = found
        reason = (
            f"value {value_score:.1f} is in the {band.name} band; no preferred model could be "
            f"paid for, so the cheapest payable model of tiers {', '.join(band.tiers)}"
        )
        return make_decision(
            assessment, model, payment, band.name, quota_strategy, reason, passed_over
        )

    # Downgrade to a cheaper allowed tier, else defer
    if config.allow_downgrade:
        tried = {m.name for m in candidates}
        for lower in bands_below(band, config):
            lower_candidates = [
                m for m in filter_models(fitting, lower.tiers) if m.name not in tried
            ]
            found = _first_affordable(
                [n for n in lower.preferred if n not in tried],
                lower_candidates,
                models,
                lower,
                assessment,
                ledger,
                None,
            ) or _cheapest_affordable(lower_candidates, assessment, ledger, skip=set())
            if found:
                model, payment = found
                reason = (
                    f"value {value_score:.1f} is in the {band.name} band, but nothing of tiers "
                    f"{', '.join(band.tiers)} could be paid for: downgraded to {model.name} "
                    f"({model.tier})"
                )
                return make_decision(
                    assessment, model, payment, band.name, quota_strategy, reason, passed_over
                )
            tried |= {m.name for m in lower_candidates}

    return defer_unaffordable(assessment, band, ledger, quota_strategy, passed_over)
