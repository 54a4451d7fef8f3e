#!/usr/bin/env python3
"""Print the usage report model-assigner takes, from an agent's output file.

Reads a Claude Code result (``--output-format json``), stream-json or the
Claude Code Action's ``execution_file``, or Codex ``exec --json`` events, and
prints only the token counts per model, the session id and the issue, as
``{"issue": N, "run_id": ..., "lines": [...]}``. Nothing else of the file
(prompts, answers, tool output) is ever copied. Standard library only: it
runs on any runner with python3.

    extract_usage.py FILE --issue N [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

KINDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def cost(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) and value >= 0 else None


def claude(result: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    per_model = result.get("modelUsage")
    if isinstance(per_model, dict) and per_model:
        lines = [
            {
                "model": str(name),
                "input_tokens": count(c.get("inputTokens")),
                "output_tokens": count(c.get("outputTokens")),
                "cache_creation_input_tokens": count(c.get("cacheCreationInputTokens")),
                "cache_read_input_tokens": count(c.get("cacheReadInputTokens")),
                "reported_cost_usd": cost(c.get("costUSD")),
            }
            for name, c in per_model.items()
            if isinstance(c, dict)
        ]
    else:
        usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
        lines = [{kind: count(usage.get(kind)) for kind in KINDS}]
        lines[0]["reported_cost_usd"] = cost(result.get("total_cost_usd"))
    session = result.get("session_id")
    return (session if isinstance(session, str) else None), lines


def codex(events: list[Any]) -> tuple[str | None, list[dict[str, Any]]]:
    thread, uncached, cached, output = None, 0, 0, 0
    for event in events:
        if not isinstance(event, dict):
            continue
        if event.get("type") == "thread.started" and isinstance(event.get("thread_id"), str):
            thread = event["thread_id"]
        if event.get("type") == "turn.completed" and isinstance(event.get("usage"), dict):
            usage = event["usage"]
            total, hit = count(usage.get("input_tokens")), count(usage.get("cached_input_tokens"))
            uncached += max(0, total - hit)
            cached += min(hit, total)
            output += count(usage.get("output_tokens"))
    line = {"input_tokens": uncached, "cache_read_input_tokens": cached, "output_tokens": output}
    return thread, [line]


def extract(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError:
        document = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise ValueError("not an agent output file")
    if any(isinstance(e, dict) and e.get("type") == "turn.completed" for e in document):
        return codex(document)
    for message in reversed(document):
        if isinstance(message, dict) and message.get("type") == "result":
            return claude(message)
    raise ValueError("no Claude Code result and no Codex turn.completed event in the file")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--issue", type=int, required=True)
    parser.add_argument("--model", help="the model, when the file does not say (Codex)")
    args = parser.parse_args()
    try:
        with open(args.file, encoding="utf-8") as handle:
            session, lines = extract(handle.read())
    except (OSError, ValueError) as exc:
        print(f"extract_usage: {args.file}: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        if args.model and "model" not in line:
            line["model"] = args.model
        if line.get("reported_cost_usd") is None:
            line.pop("reported_cost_usd", None)
    report: dict[str, Any] = {"issue": args.issue, "lines": lines}
    if session:
        report["run_id"] = session[:150]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
