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
    Ledger,
    calculate_cost,
    get_remaining_monthly_budget,
    has_quota,
    has_room,
    payment_for,
    remaining_daily,
    remaining_monthly,
)
from model_assigner.core.reasons import Lever, Reason, ReasonCode, reason
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


def why_unaffordable(model: Model, ledger: Ledger, input_tokens: int, output_tokens: int) -> Reason:
    sub = ledger.subscription_for(model.family)
    return reason(
        ReasonCode.CANNOT_PAY,
        family=model.family,
        quota_left=None if sub is None else min(remaining_daily(sub), remaining_monthly(sub)),
        needed=input_tokens + output_tokens,
        api_cost=calculate_cost(model, input_tokens, output_tokens),
        budget_left=get_remaining_monthly_budget(ledger.budget),
    )


def quota_left(ledger: Ledger) -> dict[str, object]:
    """What is left of each subscription (tokens; INF: no limit) and of the
    budget, as the values a deferral's reason quotes."""
    return {
        "quotas": tuple(
            (sub.model_family, min(remaining_daily(sub), remaining_monthly(sub)))
            for sub in ledger.subscriptions
        ),
        "budget_left": get_remaining_monthly_budget(ledger.budget),
    }


def make_decision(
    assessment: Assessment,
    model: Model | None,
    payment: Payment | None,
    band: str,
    strategy: str,
    why: Reason,
    passed_over: list[PassedOver] | None = None,
    unblock_hint: Reason | None = None,
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
        reason=why,
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
        reason(ReasonCode.LOW_VALUE, value=assessment.value, floor=floor),
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


def value_levers(assessment: Assessment, config: ScoringConfig, floor: float) -> list[Lever]:
    """What would lift a deferred task's value to ``floor``: each term not
    yet at its highest, named only when raising it alone (or, failing that,
    together with the others) reaches the floor. Worked out with the value
    formula itself, so the hint never promises what cannot happen."""
    return levers_for(assessment.breakdown, config, floor)


def levers_for(b: ScoreBreakdown, config: ScoringConfig, floor: float) -> list[Lever]:
    """value_levers, from the score's breakdown alone."""
    best_weight, best_bonus = _best_terms(config)
    levers: list[Lever] = []
    if b.priority_weight < best_weight and _value_with(b, config, best_weight,
                                                       b.time_bonus) >= floor:
        levers.append(Lever.PRIORITY)
    if b.time_bonus < best_bonus and _value_with(b, config, b.priority_weight,
                                                 best_bonus) >= floor:
        levers.append(Lever.DEADLINE)
    blocking = config.blocking_time_bonus
    if b.time_bonus < blocking and _value_with(b, config, b.priority_weight, blocking) >= floor:
        levers.append(Lever.DEPENDANTS)
    if levers:
        return levers
    if _value_with(b, config, best_weight, max(best_bonus, blocking)) >= floor:
        return [Lever.PRIORITY_AND_DEADLINE]
    return []


def low_value_hint(assessment: Assessment, config: ScoringConfig, floor: float) -> Reason:
    levers = value_levers(assessment, config, floor)
    if levers:
        return reason(ReasonCode.VALUE_LEVERS, floor=floor, levers=tuple(levers))
    b = assessment.breakdown
    best_weight, best_bonus = _best_terms(config)
    cap = _value_with(b, config, best_weight, max(best_bonus, config.blocking_time_bonus))
    return reason(ReasonCode.VALUE_CAPPED, floor=floor, complexity=b.complexity,
                  domain=b.domain, risk=b.risk, cap=cap)


def defer_unaffordable(
    assessment: Assessment,
    band: ValueBand,
    ledger: Ledger,
    strategy: str,
    passed_over: list[PassedOver],
) -> Decision:
    return make_decision(
        assessment,
        None,
        None,
        band.name,
        strategy,
        reason(ReasonCode.UNAFFORDABLE, tiers=tuple(band.tiers),
               tokens=assessment.total_tokens, **quota_left(ledger)),
        passed_over=passed_over,
        unblock_hint=reason(
            ReasonCode.QUOTA_RESETS,
            subscriptions=tuple(s.reset_date.date().isoformat() for s in ledger.subscriptions),
            budget=ledger.budget.reset_date.date().isoformat(),
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
                passed_over.append(
                    PassedOver(model=model_name, reason=reason(ReasonCode.NOT_IN_CATALOG))
                )
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
                        reason=reason(ReasonCode.TIER_NOT_IN_BAND, tier=model.tier,
                                      band=band.name, tiers=tuple(band.tiers)),
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
        why = reason(
            ReasonCode.CHOSEN_IN_BAND, value=value_score, band=band.name,
            band_min=band.min_value, model=model.name,
            position=preferred_order.index(model.name) + 1, payer=payment.kind,
            family=payment.family,
        )
        return make_decision(
            assessment, model, payment, band.name, quota_strategy, why, passed_over
        )

    # Fallback to the cheapest candidate that can be paid for
    found = _cheapest_affordable(candidates, assessment, ledger, skip=set(preferred_order))
    if found:
        model, payment = found
        why = reason(ReasonCode.CHEAPEST_PAYABLE, value=value_score, band=band.name,
                     tiers=tuple(band.tiers))
        return make_decision(
            assessment, model, payment, band.name, quota_strategy, why, passed_over
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
                why = reason(ReasonCode.DOWNGRADED, value=value_score, band=band.name,
                             tiers=tuple(band.tiers), model=model.name, tier=model.tier)
                return make_decision(
                    assessment, model, payment, band.name, quota_strategy, why, passed_over
                )
            tried |= {m.name for m in lower_candidates}

    return defer_unaffordable(assessment, band, ledger, quota_strategy, passed_over)
