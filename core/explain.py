"""Plain-text explanations of decisions, shared by the CLI and the logs.

The bot renders the same Decision fields as Markdown (bot/comment.py); keeping
the wording here means the terminal and the issue say the same thing.
"""

from __future__ import annotations

from model_assigner.core.config import ScoringConfig
from model_assigner.core.quota import INF, Ledger, has_room, remaining_daily, remaining_monthly
from model_assigner.core.selection import band_for, levers_for
from model_assigner.core.types import Decision, Model, Payment


def format_payment(payment: Payment | None) -> str:
    if payment is None:
        return "nothing (deferred)"
    if payment.kind == "subscription":
        left = [
            f"{value:,} tokens left {period}"
            for value, period in (
                (payment.remaining_daily, "today"),
                (payment.remaining_monthly, "this month"),
            )
            if value is not None
        ]
        detail = f" ({', '.join(left)})" if left else " (no limit)"
        return f"{payment.family} subscription, {payment.tokens:,} tokens{detail}"
    return (
        f"API budget, ${payment.cost_usd:,.2f} (${payment.remaining_budget_usd or 0.0:,.2f} left "
        "this month)"
    )


def score_rows(decision: Decision) -> list[tuple[str, str, str]]:
    """(term, value, why) rows of the value score, in the seed's formula order."""
    b = decision.breakdown
    return [
        ("priority weight", f"{b.priority_weight:g}", b.priority or "no priority label (default)"),
        ("complexity", f"x{b.complexity_multiplier:g}", f"{b.complexity}: {b.complexity_signal}"),
        ("time bonus", f"+{b.time_bonus:g}", b.time_reason),
        ("domain", f"x{b.domain_modifier:g}", f"{b.domain}: {b.domain_reason}"),
        ("risk", f"x{b.risk_modifier:g}", f"{b.risk}: {b.risk_reason}"),
    ]


def formula(decision: Decision) -> str:
    b = decision.breakdown
    clamp = "" if b.raw_score == b.value_score else f" -> clamped to {b.value_score:.1f}"
    return (
        f"({b.priority_weight:g} x {b.complexity_multiplier:g} + {b.time_bonus:g}) "
        f"x {b.domain_modifier:g} x {b.risk_modifier:g} = {b.raw_score:.2f}{clamp}"
    )


def explain(decision: Decision) -> list[str]:
    """The whole decision as indented lines of text."""
    t = decision.tokens
    lines = [
        f"model: {decision.model or 'deferred'}",
        f"value: {decision.value_score:.1f}/100 ({decision.band} band)  {formula(decision)}",
    ]
    lines += [f"  {term:<16} {value:>6}  {why}" for term, value, why in score_rows(decision)]
    lines.append(
        f"tokens: {t.input_tokens:,} in + {t.output_tokens:,} out = {t.total:,} "
        f"({'; '.join(t.adjustments)})"
    )
    if decision.model:
        lines.append(f"cost at list price: ${decision.cost_usd:,.2f}")
    lines.append(f"paid by: {format_payment(decision.payment)}")
    lines.append(f"why: {decision.reason}")
    for passed in decision.passed_over:
        lines.append(f"  passed over {passed.model}: {passed.reason}")
    if decision.unblock_hint:
        lines.append(f"would change it: {decision.unblock_hint}")
    return lines


def plain_payment(payment: Payment | None) -> str:
    """What pays, in words, with what is left once it has: said once."""
    if payment is None:
        return "nothing is charged"
    if payment.kind == "subscription":
        left = [value for value in (payment.remaining_daily, payment.remaining_monthly)
                if value is not None]
        room = f" ({min(left):,} tokens left this month)" if left else ""
        return f"paid from the {payment.family} subscription{room}"
    return (f"paid from the API budget (${payment.remaining_budget_usd or 0.0:,.2f} left "
            "this month)")


def payment_sentence(decision: Decision) -> str:
    """What pays and what it costs, in one sentence."""
    payment = decision.payment
    if payment is None:
        return "Nothing is charged."
    if payment.kind == "subscription":
        left = [value for value in (payment.remaining_daily, payment.remaining_monthly)
                if value is not None]
        room = f"; {min(left):,} tokens left this month" if left else ""
        return (f"It is paid from the {payment.family} subscription, whose flat fee covers it: "
                f"no extra money (${decision.cost_usd:,.2f} at API list price{room}).")
    return (f"It is paid from the API budget: about ${decision.cost_usd:,.2f} at list price "
            f"(${payment.remaining_budget_usd or 0.0:,.2f} left this month).")


def _names(models: list[Model]) -> str:
    return ", ".join(m.name for m in models)


def idle_notes(
    decision: Decision, ledger: Ledger, models: list[Model], config: ScoringConfig
) -> list[str]:
    """For a decision not paid by a subscription: each subscription that has
    room for the task but none of whose models the task's value band
    allows, in plain words, with the lever that would let it be used (the
    lowest value that reaches a band allowing one of its models, and what
    would lift the task there; or the band's tiers in the repository's
    settings). ``ledger``: the quota before this decision's charge."""
    if decision.payment is not None and decision.payment.kind == "subscription":
        return []
    band = band_for(decision.value_score, config) or config.low_value_band
    total = decision.tokens.total
    notes = []
    for sub in ledger.subscriptions:
        if not has_room(sub, total):
            continue
        family = [m for m in models if m.family == sub.model_family
                  and m.context_window >= decision.tokens.working_set]
        if not family or any(m.tier in band.tiers for m in family):
            continue  # no model to use, or one the band allows: the reason says why
        left = min(remaining_daily(sub), remaining_monthly(sub))
        room = "room without limit" if left == INF else f"{int(left):,} tokens left"
        text = (
            f"The {sub.model_family} subscription has {room} but is not used: its models "
            f"({_names(family)}) are kept for higher-value work by the configured value bands. "
            f"This issue's value, {decision.value_score:.1f}, is in the {band.name} band, "
            f"which allows only {' and '.join(band.tiers)} models."
        )
        floors = [b.min_value for b in config.value_bands
                  if any(m.tier in b.tiers for m in family)]
        if floors:
            floor = min(floors)
            levers = levers_for(decision.breakdown, config, floor)
            how = f" ({' or '.join(levers)})" if levers else ""
            text += (
                f" A value of {floor:g} or more would let it use them{how}; so would the "
                f"operator adding a {sub.model_family} model's tier to the {band.name} "
                "band's `tiers` (`value_bands` in config/scoring.yaml)."
            )
        notes.append(text)
    return notes
