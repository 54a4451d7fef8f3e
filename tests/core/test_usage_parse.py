"""The agents' usage shapes, read into token counts (and nothing else)."""

from __future__ import annotations

import json

import pytest

from model_assigner.core.usage_parse import UsageParseError, parse_text
from tests.core.usage_samples import CLAUDE_RESULT


def test_claude_code_result_gives_one_line_per_model() -> None:
    [parsed] = parse_text(json.dumps(CLAUDE_RESULT))
    assert parsed.run_id == CLAUDE_RESULT["session_id"]
    sonnet, haiku = parsed.lines
    assert sonnet.model == "claude-sonnet-4-5-20250929"
    assert (sonnet.input_tokens, sonnet.output_tokens) == (30, 6000)
    assert (sonnet.cache_read_input_tokens, sonnet.cache_creation_input_tokens) == (410000, 21000)
    assert sonnet.reported_cost_usd == 0.6
    assert haiku.total == 103


def test_claude_result_without_model_usage_reads_usage() -> None:
    result = {k: v for k, v in CLAUDE_RESULT.items() if k != "modelUsage"}
    [parsed] = parse_text(json.dumps(result))
    [line] = parsed.lines
    assert line.model is None and line.total == 33 + 21000 + 410000 + 6100
    assert line.reported_cost_usd == 0.6123


def test_execution_file_uses_its_last_result() -> None:
    transcript = [
        {"type": "system", "subtype": "init", "session_id": "s"},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "secret"}]}},
        CLAUDE_RESULT,
    ]
    [parsed] = parse_text(json.dumps(transcript))
    assert len(parsed.lines) == 2
    stream = "\n".join(json.dumps(m) for m in transcript)
    [streamed] = parse_text(stream)
    assert streamed.lines == parsed.lines


def test_codex_events_are_summed_and_cached_split_off() -> None:
    events = [
        {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"id": "item_3", "type": "agent_message",
                                             "text": "Repo contains docs"}},
        {"type": "turn.completed", "usage": {"input_tokens": 24763, "cached_input_tokens": 24448,
                                             "output_tokens": 122}},
        {"type": "turn.completed", "usage": {"input_tokens": 1000, "cached_input_tokens": 0,
                                             "output_tokens": 10}},
    ]
    [parsed] = parse_text("\n".join(json.dumps(e) for e in events))
    [line] = parsed.lines
    assert parsed.run_id == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert (line.input_tokens, line.cache_read_input_tokens, line.output_tokens) == (
        315 + 1000, 24448, 132)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("[1, 2", "not JSON"),
        (json.dumps({"lines": [{"input_tokens": -5}]}), "not a token count"),
        (json.dumps({"lines": [{"input_tokens": True}]}), "not a token count"),
        (json.dumps({"lines": [{"input_tokens": 5, "prompt": "x"}]}), "unknown field"),
        (json.dumps({"lines": []}), "lines: missing"),
        (json.dumps({"type": "result"}), "neither modelUsage nor usage"),
        (json.dumps([{"type": "assistant"}]), "no message with type 'result'"),
        (json.dumps({"hello": 1}), "not a usage report"),
        (json.dumps({"lines": [{"input_tokens": 10**11}]}), "less than or equal"),
        (json.dumps([{"type": "turn.completed", "usage": {"input_tokens": 1,
                                                           "cached_input_tokens": 2}}]),
         "more cached than input"),
    ],
)
def test_bad_documents_say_why(text: str, problem: str) -> None:
    with pytest.raises(UsageParseError, match=problem):
        parse_text(text)
