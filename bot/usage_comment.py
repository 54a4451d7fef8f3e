"""The usage part of the bot's comment: estimated vs actual, run by run.

It is appended to the decision comment between two markers, so that a usage
report can replace it in the comment already on GitHub without re-deciding,
and a re-decision renders it again from the store. Like the decision text,
it is a pure function of what the store holds (no clock).
"""

from __future__ import annotations

import re

from model_assigner.core.usage import IssueUsage

START = "<!-- model-assigner:usage -->"
END = "<!-- /model-assigner:usage -->"
_SECTION = re.compile(re.escape("\n" + START) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def render_usage(record: IssueUsage | None) -> str:
    """The section's Markdown, or '' when nothing was reported."""
    if record is None or not record.runs:
        return ""
    lines = [START, "", "**Usage reported by the agent runs:**", ""]
    charged = record.charged_runs
    if charged:
        actual = record.actual_tokens
        estimate = record.estimate
        if estimate is not None and estimate.tokens:
            ratio = f" (x{actual / estimate.tokens:.2f})"
            lines.append(
                f"Estimated {estimate.tokens:,} tokens; used {actual:,}{ratio} in "
                f"{len(charged)} run{'' if len(charged) == 1 else 's'}. "
                "The estimate's reservation is replaced by what was used."
            )
        else:
            lines.append(f"Used {actual:,} tokens in {len(charged)} runs.")
        lines.append(
            f"API budget charged: {_money(record.actual_cost_usd)}; at list price "
            f"{_money(record.list_cost_usd)} (the agents reported "
            f"{_money(record.reported_cost_usd)})."
        )
        lines += ["", "| run | model | tokens | paid by | list price | reported |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for run_id, run in record.runs.items():
            for charge in run.charges:
                lines.append(
                    f"| `{run_id[:40]}` | {charge.model} | {charge.payment.tokens:,} | "
                    f"{charge.payment.label} | {_money(charge.list_cost_usd)} | "
                    f"{_money(charge.reported_cost_usd)} |"
                )
        notes = [c.note for run in charged for c in run.charges if c.note]
        lines += [""] + [f"- {note.replace('|', '/')}" for note in dict.fromkeys(notes)] if notes \
            else []
    waiting = record.pending_runs
    if waiting:
        tokens = sum(run.tokens for run in waiting.values())
        lines += [
            "",
            f"{len(waiting)} run{'' if len(waiting) == 1 else 's'} ({tokens:,} tokens) reported "
            "before a model was assigned: charged once one is.",
        ]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def with_usage(body: str, record: IssueUsage | None) -> str:
    """``body`` with its usage section replaced by ``record``'s."""
    bare = _SECTION.sub("", body)
    section = render_usage(record)
    if not section:
        return bare
    return bare.rstrip("\n") + "\n\n" + section
