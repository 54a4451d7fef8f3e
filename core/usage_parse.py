"""The usage shapes agents and our own reporters write, read into TokenUsage.

Pure functions over parsed JSON: no file, no network. Each takes only the
usage fields and ignores the rest (a Claude Code result also carries the
final answer; an execution file, the whole transcript).

- Claude Code ``--output-format json`` (one ``{"type": "result"}`` object),
  ``stream-json`` (JSON lines) and the Claude Code Action's
  ``execution_file`` (an array whose last ``result`` element counts):
  ``modelUsage`` per model when present, else ``usage``.
- Codex ``exec --json`` (JSON lines): every ``turn.completed`` event's
  ``usage``; Codex counts cached tokens inside ``input_tokens``.
- Our report: ``{"run_id", "issue", "lines": [TokenUsage...]}``, what the
  shipped GitHub Actions step posts (see docs/usage-reports.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from model_assigner.core.loader import describe_validation_error
from model_assigner.core.usage import TokenUsage, UsageReport


class UsageParseError(ValueError):
    """The text is none of the known usage shapes; ``str()`` says why."""


@dataclass(frozen=True)
class ParsedUsage:
    """A report read from a document: the issue it names, if any (``OWNER/REPO#N``
    or a bare number), its run id, if the shape carries one, and its lines."""

    lines: list[TokenUsage]
    run_id: str | None = None
    issue: str | int | None = None
    ended_at: datetime | None = None

    def report(self, run_id: str | None = None, source: str = "operator") -> UsageReport:
        run = run_id or self.run_id
        if not run:
            raise UsageParseError("no run id: the document has none; pass one (--run)")
        try:
            return UsageReport(run_id=run, lines=self.lines, ended_at=self.ended_at, source=source)
        except ValidationError as exc:
            raise UsageParseError(describe_validation_error("report", exc)) from None


def _count(value: Any, where: str) -> int:
    if value is None:
        return 0
    # type(), not isinstance(): JSON's true is an int to Python.
    if type(value) is not int or value < 0:
        raise UsageParseError(f"{where}: not a token count: {value!r}")
    return value


def _cost(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or value < 0 or value != value:
        raise UsageParseError(f"{where}: not a cost in USD: {value!r}")
    return float(value)


def _usage(**fields: Any) -> TokenUsage:
    try:
        return TokenUsage(**fields)
    except ValidationError as exc:
        raise UsageParseError(describe_validation_error("usage", exc)) from None


def claude_result(result: Mapping[str, Any]) -> ParsedUsage:
    """A Claude Code result object: per-model lines from ``modelUsage``, or
    one line without a model from ``usage``."""
    per_model = result.get("modelUsage")
    lines: list[TokenUsage] = []
    if isinstance(per_model, Mapping) and per_model:
        for name, counts in per_model.items():
            if not isinstance(counts, Mapping):
                raise UsageParseError(f"modelUsage.{name}: not an object")
            where = f"modelUsage.{name}"
            lines.append(
                _usage(
                    model=str(name),
                    input_tokens=_count(counts.get("inputTokens"), f"{where}.inputTokens"),
                    output_tokens=_count(counts.get("outputTokens"), f"{where}.outputTokens"),
                    cache_creation_input_tokens=_count(
                        counts.get("cacheCreationInputTokens"), f"{where}.cacheCreationInputTokens"
                    ),
                    cache_read_input_tokens=_count(
                        counts.get("cacheReadInputTokens"), f"{where}.cacheReadInputTokens"
                    ),
                    reported_cost_usd=_cost(counts.get("costUSD"), f"{where}.costUSD"),
                )
            )
    else:
        usage = result.get("usage")
        if not isinstance(usage, Mapping):
            raise UsageParseError("result: neither modelUsage nor usage")
        lines.append(
            _usage(
                input_tokens=_count(usage.get("input_tokens"), "usage.input_tokens"),
                output_tokens=_count(usage.get("output_tokens"), "usage.output_tokens"),
                cache_creation_input_tokens=_count(
                    usage.get("cache_creation_input_tokens"), "usage.cache_creation_input_tokens"
                ),
                cache_read_input_tokens=_count(
                    usage.get("cache_read_input_tokens"), "usage.cache_read_input_tokens"
                ),
                reported_cost_usd=_cost(result.get("total_cost_usd"), "total_cost_usd"),
            )
        )
    session = result.get("session_id")
    return ParsedUsage(lines=lines, run_id=session if isinstance(session, str) else None)


def claude_messages(messages: Sequence[Any]) -> ParsedUsage:
    """An execution file or stream-json: the last ``result`` message counts
    (it holds the session's totals)."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("type") == "result":
            return claude_result(message)
    raise UsageParseError("no message with type 'result' (did the agent finish?)")


def codex_events(events: Iterable[Any]) -> ParsedUsage:
    """Codex ``exec --json``: the sum of every ``turn.completed`` usage; the
    thread id is the run id. Codex's input_tokens include the cached ones."""
    uncached = cached = output = turns = 0
    thread: str | None = None
    for event in events:
        if not isinstance(event, Mapping):
            continue
        if event.get("type") == "thread.started" and isinstance(event.get("thread_id"), str):
            thread = event["thread_id"]
        if event.get("type") != "turn.completed":
            continue
        usage = event.get("usage")
        if not isinstance(usage, Mapping):
            raise UsageParseError("turn.completed: no usage")
        total_in = _count(usage.get("input_tokens"), "turn.completed.usage.input_tokens")
        hit = _count(usage.get("cached_input_tokens"), "turn.completed.usage.cached_input_tokens")
        if hit > total_in:
            raise UsageParseError("turn.completed.usage: more cached than input tokens")
        uncached += total_in - hit
        cached += hit
        output += _count(usage.get("output_tokens"), "turn.completed.usage.output_tokens")
        turns += 1
    if not turns:
        raise UsageParseError("no turn.completed event (did the agent finish a turn?)")
    line = _usage(input_tokens=uncached, cache_read_input_tokens=cached, output_tokens=output)
    return ParsedUsage(lines=[line], run_id=thread)


def our_report(body: Mapping[str, Any]) -> ParsedUsage:
    """The shape the shipped workflow step posts (and the comment marker holds)."""
    lines = body.get("lines")
    if not isinstance(lines, list) or not lines:
        raise UsageParseError("lines: missing (a list of token counts per model)")
    parsed: list[TokenUsage] = []
    for index, line in enumerate(lines):
        if not isinstance(line, Mapping):
            raise UsageParseError(f"lines[{index}]: not an object")
        where = f"lines[{index}]"
        unknown = set(line) - set(TokenUsage.model_fields)
        if unknown:
            raise UsageParseError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        model = line.get("model")
        if model is not None and not isinstance(model, str):
            raise UsageParseError(f"{where}.model: not a string")
        parsed.append(
            _usage(
                model=model,
                **{
                    name: _count(line.get(name), f"{where}.{name}")
                    for name in (
                        "input_tokens",
                        "output_tokens",
                        "cache_creation_input_tokens",
                        "cache_read_input_tokens",
                    )
                },
                reported_cost_usd=_cost(
                    line.get("reported_cost_usd"), f"{where}.reported_cost_usd"
                ),
            )
        )
    run = body.get("run_id")
    if run is not None and not isinstance(run, str):
        raise UsageParseError("run_id: not a string")
    issue = body.get("issue")
    if issue is not None and not isinstance(issue, str) and type(issue) is not int:
        raise UsageParseError("issue: not OWNER/REPO#N or a number")
    ended = body.get("ended_at")
    ended_at = None
    if ended is not None:
        try:
            ended_at = datetime.fromisoformat(str(ended).replace("Z", "+00:00"))
        except ValueError:
            raise UsageParseError(f"ended_at: not an ISO 8601 time: {ended!r}") from None
    return ParsedUsage(lines=parsed, run_id=run, issue=issue, ended_at=ended_at)


def parse_object(document: Any) -> ParsedUsage:
    """One parsed JSON value in any of the known shapes."""
    if isinstance(document, list):
        if any(isinstance(m, Mapping) and m.get("type") == "turn.completed" for m in document):
            return codex_events(document)
        return claude_messages(document)
    if not isinstance(document, Mapping):
        raise UsageParseError("not a JSON object or array")
    if "lines" in document:
        return our_report(document)
    if document.get("type") == "result" or "modelUsage" in document:
        return claude_result(document)
    if document.get("type") == "turn.completed":
        return codex_events([document])
    raise UsageParseError(
        "not a usage report: expected a Claude Code result, an execution file, "
        "Codex exec --json events or {\"lines\": [...]}"
    )


def parse_text(text: str) -> list[ParsedUsage]:
    """A file's text: one JSON value (a report, a list of our reports, a Claude
    result or execution file), or JSON lines (stream-json, Codex events)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        events = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                try:
                    events.append(json.loads(raw))
                except json.JSONDecodeError as exc:
                    raise UsageParseError(
                        f"line {number}: not JSON ({exc.msg}); expected JSON or JSON lines"
                    ) from None
        if not events:
            raise UsageParseError("empty: no usage in it") from None
        return [parse_object(events)]
    if isinstance(document, list) and document and all(
        isinstance(item, Mapping) and "lines" in item for item in document
    ):
        return [our_report(item) for item in document]
    return [parse_object(document)]
