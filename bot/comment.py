"""The bot's one comment per issue, rendered from a Decision.

The text is a pure function of the decision (no timestamps), so re-assigning
an issue to the same answer produces the same text and costs no edit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.explain import format_payment, formula, score_rows
from core.types import Decision

MARKER = "<!-- model-assigner:decision -->"


@dataclass(frozen=True)
class Override:
    """A person's `model:<name>` label."""

    model: str
    by: str | None
    known: bool


def _code(text: str) -> str:
    """Text from a person's label, safe inside a Markdown code span."""
    return text.replace("`", "'").replace("\n", " ")[:100]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_comment(
    decision: Decision,
    label: str,
    override: Override | None = None,
    config_problem: str | None = None,
) -> str:
    lines = [MARKER]
    if override is not None:
        who = f"@{override.by}" if override.by else "a maintainer"
        lines.append(f"### Model: `{_code(override.model)}` (chosen by {who})")
        lines.append("")
        if not override.known:
            lines.append(
                f"`{_code(override.model)}` is not in the model catalog, so no quota is reserved "
                "for it."
            )
        else:
            lines.append(
                f"The `{label}` label was set by hand, so model-assigner keeps it and reserves "
                f"quota for it: {format_payment(decision.payment)}."
            )
        lines.append("")
        lines.append(
            "Remove the label to let model-assigner choose again. "
            "For reference, its own assessment follows."
        )
    elif decision.model is None:
        lines.append("### Model: deferred")
        lines.append("")
        lines.append(f"**Why:** {decision.reason}.")
        if decision.unblock_hint:
            lines.append("")
            lines.append(f"**What would change it:** {decision.unblock_hint}.")
    else:
        lines.append(f"### Model: `{decision.model}`")
        lines.append("")
        lines.append(f"**Why:** {decision.reason}.")
    lines += [
        "",
        f"**Value score: {decision.value_score:.1f}/100** ({decision.band} band) = "
        f"`{formula(decision)}`",
        "",
        "| term | value | signal |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {term} | {value} | {_cell(why)} |" for term, value, why in score_rows(decision)]
    t = decision.tokens
    lines += [
        "",
        f"**Tokens:** {t.input_tokens:,} in + {t.output_tokens:,} out = {t.total:,} "
        f"({_cell('; '.join(t.adjustments))})",
    ]
    if decision.model:
        lines.append(f"**Cost at list price:** ${decision.cost_usd:,.2f}")
        lines.append(f"**Paid by:** {format_payment(decision.payment)}")
    if decision.passed_over:
        lines += ["", "**Passed over:**"]
        lines += [f"- `{p.model}`: {p.reason}" for p in decision.passed_over]
    if config_problem:
        lines += [
            "",
            f"> [!WARNING]\n> This repository's model-assigner settings were not used: "
            f"{_cell(config_problem)}. The defaults applied.",
        ]
    lines += [
        "",
        "<sub>model-assigner · change the priority label, milestone or estimates and the "
        "choice follows; set a `model:<name>` label yourself to override.</sub>",
    ]
    return "\n".join(lines) + "\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
