"""Which subscription sat idle while a decision went elsewhere, and why.

A task paid from the API budget (or deferred) while a subscription had room
reads as a mistake unless the comment says the value bands kept that
subscription's models for higher-value work, and what would let the task
use them. This module finds those subscriptions and the levers, as Reasons
(core/wording.py words them).
"""

from __future__ import annotations

from model_assigner.core.config import ScoringConfig
from model_assigner.core.quota import Ledger, has_room, remaining_daily, remaining_monthly
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.selection import band_for, levers_for
from model_assigner.core.types import Decision, Model


def idle_reasons(
    decision: Decision, ledger: Ledger, models: list[Model], config: ScoringConfig
) -> list[Reason]:
    """For a decision not paid by a subscription: each subscription that has
    room for the task but none of whose models the task's value band
    allows, with the lever that would let it be used (the lowest value that
    reaches a band allowing one of its models, and what would lift the task
    there; or the band's tiers in the repository's configuration).
    ``ledger``: the quota before this decision's charge."""
    if decision.payment is not None and decision.payment.kind == "subscription":
        return []
    band = band_for(decision.value_score, config) or config.low_value_band
    total = decision.tokens.total
    reasons = []
    for sub in ledger.subscriptions:
        if not has_room(sub, total):
            continue
        family = [m for m in models if m.family == sub.model_family
                  and m.context_window >= decision.tokens.working_set]
        if not family or any(m.tier in band.tiers for m in family):
            continue  # no model to use, or one the band allows: the reason says why
        floors = [b.min_value for b in config.value_bands
                  if any(m.tier in b.tiers for m in family)]
        floor = min(floors) if floors else None
        levers = () if floor is None else tuple(levers_for(decision.breakdown, config, floor))
        reasons.append(reason(
            ReasonCode.IDLE_SUBSCRIPTION,
            family=sub.model_family,
            left=min(remaining_daily(sub), remaining_monthly(sub)),
            models=tuple(m.name for m in family),
            value=decision.value_score,
            band=band.name,
            tiers=tuple(band.tiers),
            floor=floor,
            levers=levers,
        ))
    return reasons
