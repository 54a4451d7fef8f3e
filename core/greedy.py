"""The ``minimize_cost`` rule for one task, shared by the batch strategy of
that name (core/batch.py) and the online strategy's cold start
(core/online.py), which is why it lives apart from both.
"""

from __future__ import annotations

from model_assigner.core.assessment import Assessment
from model_assigner.core.catalog import (
    filter_models,
    find_model,
    fits_window,
    get_cheapest_capable_model,
    price_key,
    window_reason,
)
from model_assigner.core.config import ScoringConfig, ValueBand
from model_assigner.core.quota import Ledger, has_room, payment_for
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.selection import (
    band_for,
    defer_low_value,
    defer_unaffordable,
    make_decision,
    preferred_order_for,
    why_unaffordable,
)
from model_assigner.core.types import Decision, Model, PassedOver


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


def minimize_cost_one(
    a: Assessment, ledger: Ledger, models: list[Model], config: ScoringConfig, strategy: str
) -> Decision:
    tokens = a.tokens
    band = band_for(a.value, config) or config.low_value_band
    catalog, models = models, [m for m in models if fits_window(m, tokens)]
    model = try_subscription_models(a, ledger, models, config)
    if model is not None:
        payment = payment_for(model, ledger, tokens.input_tokens, tokens.output_tokens)
        why = reason(ReasonCode.FITS_SUBSCRIPTION, model=model.name, family=model.family,
                     value=a.value)
        passed = cost_passed_over(a, model, band, ledger, catalog, config)
        return make_decision(a, model, payment, band.name, strategy, why, passed)
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
    why = reason(ReasonCode.CHEAPEST_CAPABLE_API, band=band.name, model=model.name,
                 floor=config.capability_floor, domain=a.domain)
    passed = cost_passed_over(a, model, band, ledger, catalog, config)
    return make_decision(a, model, payment, band.name, strategy, why, passed)


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
        floor = config.capability_floor
        why: Reason
        if not fits_window(model, t):
            why = window_reason(model, t)
        elif payment_for(model, ledger, t.input_tokens, t.output_tokens) is None:
            why = why_unaffordable(model, ledger, t.input_tokens, t.output_tokens)
        elif by_subscription and model.tier not in band.tiers:
            why = reason(ReasonCode.NOT_IN_BAND_TIERS, band=band.name, tiers=tuple(band.tiers))
        elif by_subscription and _paid_by_subscription(model, ledger, t.total):
            why = reason(ReasonCode.FIRST_SUBSCRIPTION_MODEL, taken=taken)
        elif by_subscription:
            why = reason(ReasonCode.ONLY_ON_API, family=family, taken=taken)
        elif rating < floor:
            why = reason(ReasonCode.BELOW_CAPABILITY_FLOOR, rating=rating, domain=a.domain,
                         floor=floor)
        elif chosen is not None:
            why = reason(ReasonCode.DEARER_THAN, taken=taken, floor=floor, domain=a.domain)
        else:
            why = reason(ReasonCode.NOTHING_ASSIGNED)
        passed.append(PassedOver(model=name, reason=why))
    return passed


def _paid_by_subscription(model: Model, ledger: Ledger, tokens: int) -> bool:
    sub = ledger.subscription_for(model.family)
    return sub is not None and has_room(sub, tokens)
