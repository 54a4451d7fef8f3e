"""The bot's one comment per issue, rendered from a Decision.

The text is a pure function of the decision (no timestamps), so re-assigning
an issue to the same answer produces the same text and costs no edit. This
module lays the comment out in Markdown and keeps text from people inert;
the sentences that explain the decision come from core/wording.py, as for
the command line and the logs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from model_assigner.core.reasons import Reason
from model_assigner.core.types import Decision
from model_assigner.core.wording import adjustments, formula, payment_sentence, score_rows, text

MARKER = "<!-- model-assigner:decision -->"


@dataclass(frozen=True)
class Override:
    """A person's `model:<name>` label."""

    model: str
    by: str | None
    known: bool
    # "label": `by` added the label; "opened": it was on the issue when `by`
    # opened it (an issue template may have put it there).
    via: str = "label"


def _code(text: str) -> str:
    """Text from a person's label, safe inside a Markdown code span."""
    return text.replace("`", "'").replace("\n", " ").replace(MARKER, "")[:100]


# What could make text from a repository's config or an issue more than text
# in the bot's comment: mentions (@everyone, @org/team), links and images,
# HTML (the bot's own marker included), autolinked URLs, line breaks. Each is
# broken so that it shows, but does nothing; the rest of Markdown (the bot's
# own code spans, "<=") is left as it reads.
_NEUTRAL = str.maketrans({"@": "@\u200b", "[": "\\[", "]": "\\]", "\n": " ", "\r": " "})
_TAG = re.compile(r"<(?=[A-Za-z!/?])")
_AUTOLINK = re.compile(r"(?i)(://|www\.)")


def untrusted(text: str, limit: int = 1000) -> str:
    """``text`` (a key, a name, a problem from a repository's config, or an
    engine reason quoting them) as inert Markdown: never a mention, link,
    image, HTML or marker."""
    cut = _TAG.sub("&lt;", text[:limit].translate(_NEUTRAL))
    return _AUTOLINK.sub(lambda m: m.group(1)[0] + "\u200b" + m.group(1)[1:], cut)


def _cell(text: str) -> str:
    return untrusted(text).replace("|", "\\|")


def _value_details(decision: Decision, passed_over: bool = True) -> list[str]:
    """The score table, the token estimate and the models passed over, in a
    collapsed section: there for whoever wants the arithmetic."""
    t = decision.tokens
    lines = [
        "",
        "<details>",
        f"<summary>How the value of {decision.value_score:.1f} was worked out</summary>",
        "",
        f"**Value score: {decision.value_score:.1f}/100** ({untrusted(decision.band)} band) = "
        f"`{formula(decision)}`",
        "",
        "| term | value | signal |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {term} | {value} | {_cell(why)} |" for term, value, why in score_rows(decision)]
    lines += [
        "",
        f"Estimated tokens: {t.input_tokens:,} in + {t.output_tokens:,} out = {t.total:,} "
        f"({_cell(adjustments(decision))}).",
    ]
    if passed_over and decision.passed_over:
        lines += ["", "Models passed over:"]
        lines += [f"- `{_code(p.model)}`: {untrusted(text(p.reason))}"
                  for p in decision.passed_over]
    lines += ["", "</details>"]
    return lines


def render_comment(
    decision: Decision,
    label: str,
    override: Override | None = None,
    config_problem: str | None = None,
    config_refused: str | None = None,
    override_refused: Reason | None = None,
) -> str:
    lines = [MARKER]
    if override_refused:
        lines += [f"> [!NOTE]\n> {untrusted(text(override_refused))}.", ""]
    footer = (
        "<sub>model-assigner · change the priority label, milestone or estimates and the "
        "choice follows; set a `model:<name>` label yourself to override.</sub>"
    )
    if override is not None:
        # No @-mention: a label is not worth a notification.
        who = f"{_code(override.by)} with a label" if override.by else "a label"
        how = f"set by {who}"
        if override.via == "opened" and override.by:
            how = f"on the issue when {_code(override.by)} opened it"
        lines.append(f"### Model: `{_code(override.model)}` ({how})")
        lines.append("")
        if not override.known:
            lines.append(
                f"`{_code(override.model)}` is not in the model catalog, so no quota is reserved "
                "for it."
            )
        else:
            lines.append(
                f"The `{_code(label)}` label was set by hand, so model-assigner keeps it. "
                f"{payment_sentence(decision)}"
            )
        if decision.instead:
            lines += ["", f"{untrusted(text(decision.instead))}."]
        lines += [
            "",
            "While the label stays, model-assigner does not choose for this issue; remove it "
            "to hand the choice back.",
        ]
        footer = "<sub>model-assigner · a `model:<name>` label set by hand overrides it.</sub>"
    elif decision.model is None:
        lines.append("### Model: deferred")
        lines.append("")
        lines.append(f"**Not assigned for now.** {_sentence(untrusted(text(decision.reason)))}")
        if decision.unblock_hint:
            lines.append("")
            hint = _sentence(untrusted(text(decision.unblock_hint)))
            lines.append(f"**What would change it:** {hint}")
    else:
        lines.append(f"### Model: `{_code(decision.model)}`")
        lines.append("")
        lines.append(
            f"**{untrusted(decision.model)}** will work on this issue. {payment_sentence(decision)}"
        )
        lines.append("")
        lines.append(f"**Why this model:** {_sentence(untrusted(text(decision.reason)))}")
    for note in decision.idle:
        lines += ["", f"**Why not a subscription:** {untrusted(text(note))}"]
    lines += _value_details(decision)
    if config_problem:
        lines += [
            "",
            f"> [!WARNING]\n> This repository's model-assigner settings were not used: "
            f"{_cell(config_problem)}. The defaults applied.",
        ]
    if config_refused:
        lines += [
            "",
            f"> [!NOTE]\n> Some of this repository's model-assigner settings were refused or "
            f"limited: {_cell(config_refused)}. The rest applied.",
        ]
    lines += ["", footer]
    return "\n".join(lines) + "\n"


def _sentence(text: str) -> str:
    """The text as a sentence: capitalized, ending with a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
