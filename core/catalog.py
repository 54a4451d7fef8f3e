"""Looking models up in the catalog: the seed's filter_models, find_model and
get_cheapest_capable_model, which it calls but never defines."""

from __future__ import annotations

from collections.abc import Iterable

from model_assigner.core.quota import Ledger, can_use_model
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.types import Model, PassedOver, TokenEstimate


def price_key(model: Model) -> tuple[float, str]:
    """The seed's fallback order (input + output price per Mtok), then the name,
    so that equal prices still give one answer."""
    return (model.cost_per_mtok_input + model.cost_per_mtok_output, model.name)


def filter_models(models: Iterable[Model], tier: Iterable[str]) -> list[Model]:
    tiers = set(tier)
    return [model for model in models if model.tier in tiers]


def find_model(models: Iterable[Model], name: str) -> Model | None:
    return next((model for model in models if model.name == name), None)


def get_cheapest_capable_model(
    models: Iterable[Model],
    domain: str,
    floor: float,
    ledger: Ledger,
    input_tokens: int,
    output_tokens: int,
) -> Model | None:
    """The cheapest model rated at least ``floor`` in ``domain`` that the quota
    or the budget can pay for (the seed overflowed to it unconditionally)."""
    capable = [m for m in models if m.capabilities.get(domain, 0.0) >= floor]
    for model in sorted(capable, key=price_key):
        if can_use_model(model, ledger, input_tokens, output_tokens):
            return model
    return None


def fits_window(model: Model, tokens: TokenEstimate) -> bool:
    """Whether the model's context window holds one turn's working set."""
    return model.context_window >= tokens.working_set


def window_reason(model: Model, tokens: TokenEstimate) -> Reason:
    return reason(ReasonCode.WINDOW_TOO_SMALL, window=model.context_window,
                  working_set=tokens.working_set)


def split_by_window(
    models: Iterable[Model], tokens: TokenEstimate
) -> tuple[list[Model], list[Model]]:
    """(the models whose window holds the working set, those too small)."""
    fitting: list[Model] = []
    small: list[Model] = []
    for model in models:
        (fitting if fits_window(model, tokens) else small).append(model)
    return fitting, small


def too_small(names: Iterable[str], small: list[Model], tokens: TokenEstimate) -> list[PassedOver]:
    """The too-small models among ``names``, each with why, in order."""
    by_name = {m.name: m for m in small}
    return [
        PassedOver(model=name, reason=window_reason(by_name[name], tokens))
        for name in dict.fromkeys(names)
        if name in by_name
    ]
