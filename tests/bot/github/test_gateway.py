"""The dry-run gateway: what a server without App credentials would write."""

from __future__ import annotations

import logging

import pytest

from model_assigner.bot.comment import MARKER
from model_assigner.bot.github.gateway import DryRunGateway


def test_dry_run_logs_every_write_and_the_comment_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = DryRunGateway()
    body = f"{MARKER}\n### Model: `glm-4.7`\n\nthe whole comment"
    with caplog.at_level(logging.INFO, logger="model_assigner.github"):
        first = gateway.create_comment("o/r", 7, body)
        gateway.edit_comment("o/r", first, body + " again")
        gateway.add_label("o/r", 7, "model:glm-4.7")
        gateway.remove_label("o/r", 7, "model:qwen2.5-coder")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        f"dry-run: would create comment {{'repo': 'o/r', 'issue': 7}}:\n{body}"
    )
    assert lines[1].endswith(f"{{'repo': 'o/r', 'comment': {first}}}:\n{body} again")
    assert lines[2] == (
        "dry-run: would add label {'repo': 'o/r', 'issue': 7, 'label': 'model:glm-4.7'}"
    )
    assert lines[3].startswith("dry-run: would remove label")
    assert gateway.create_comment("o/r", 8, body) == first + 1  # ids as GitHub would give


def test_dry_run_keeps_only_its_last_writes() -> None:
    gateway = DryRunGateway()
    for number in range(250):
        gateway.add_label("o/r", number, "model:glm-4.7")
    assert len(gateway.writes) == 100
    assert gateway.writes[-1]["issue"] == 249
