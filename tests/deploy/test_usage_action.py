"""The shipped step's extractor reads the agents' files as the App does, and
copies nothing but usage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from model_assigner.core.usage_parse import our_report, parse_text
from tests.core.usage_samples import CLAUDE_RESULT

SCRIPT = Path(__file__).resolve().parents[2] / "deploy/github-actions/usage-report/extract_usage.py"
CODEX = [
    {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"},
    {"type": "item.completed", "item": {"type": "agent_message", "text": "PRIVATE"}},
    {"type": "turn.completed", "usage": {"input_tokens": 24763, "cached_input_tokens": 24448,
                                         "output_tokens": 122}},
]


def extract(tmp_path: Path, text: str, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "agent.out"
    path.write_text(text)
    return subprocess.run([sys.executable, str(SCRIPT), str(path), "--issue", "7", *extra],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(CLAUDE_RESULT),
        json.dumps([{"type": "assistant", "message": {"content": "PRIVATE"}}, CLAUDE_RESULT]),
        "\n".join(json.dumps(e) for e in CODEX),
    ],
)
def test_the_extractor_agrees_with_the_apps_parser(tmp_path: Path, text: str) -> None:
    result = extract(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert "PRIVATE" not in result.stdout and "Done:" not in result.stdout
    sent = our_report(json.loads(result.stdout))
    [direct] = parse_text(text)
    assert sent.lines == direct.lines and sent.run_id == direct.run_id and sent.issue == 7


def test_codex_gets_the_model_it_was_told(tmp_path: Path) -> None:
    result = extract(tmp_path, "\n".join(json.dumps(e) for e in CODEX), "--model", "gpt-4-turbo")
    assert json.loads(result.stdout)["lines"][0]["model"] == "gpt-4-turbo"


def test_a_file_without_usage_is_one_line_and_status_2(tmp_path: Path) -> None:
    result = extract(tmp_path, json.dumps([{"type": "assistant"}]))
    assert result.returncode == 2 and "no Claude Code result" in result.stderr
    assert result.stdout == ""
