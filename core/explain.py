"""Plain-text explanations of decisions, shared by the CLI and the logs.

The bot renders the same Decision fields as Markdown (bot/comment.py); keeping
the wording here means the terminal and the issue say the same thing.
"""

from __future__ import annotations

from core.types import Decision, Payment


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
