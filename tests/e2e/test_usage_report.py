"""The walkthrough, end to end: an issue decided by the real gunicorn server,
an agent run's output, the shipped GitHub Actions step (its own bash, with a
runner's OIDC token endpoint on loopback) posting the usage, and the store's
quota then holding what the run used instead of the estimate."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.bot.oidc_support import AUDIENCE, Issuer, oidc_issuer
from tests.e2e.support import ROOT, Server, start_server, stop_server

ACTION = ROOT / "deploy" / "github-actions" / "usage-report"
EXECUTION_FILE = [
    {"type": "system", "subtype": "init", "session_id": "9d1c-session"},
    {"type": "user", "message": {"content": "SECRET PROMPT: fix the login bug"}},
    {"type": "assistant", "message": {"content": [{"type": "text", "text": "PRIVATE ANSWER"}]}},
    {"type": "result", "subtype": "success", "session_id": "9d1c-session",
     "result": "PRIVATE ANSWER", "total_cost_usd": 0.31, "num_turns": 9,
     "usage": {"input_tokens": 40, "output_tokens": 5000, "cache_creation_input_tokens": 8000,
               "cache_read_input_tokens": 150000},
     "modelUsage": {"claude-sonnet-4-5-20250929": {
         "inputTokens": 40, "outputTokens": 5000, "cacheCreationInputTokens": 8000,
         "cacheReadInputTokens": 150000, "costUSD": 0.31}}},
]


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with oidc_issuer() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, issuer: Issuer) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("usage")
    running = start_server(tmp, {
        "MODEL_ASSIGNER_OIDC_AUDIENCE": AUDIENCE,
        "MODEL_ASSIGNER_OIDC_JWKS_URL": issuer.url,
    }, "usage")
    try:
        yield running
    finally:
        stop_server(running)


def run_action(
    tmp: Path, server: Server, issuer: Issuer, file: Path
) -> subprocess.CompletedProcess[str]:
    """The composite action's steps, as a runner runs them: each step's bash
    with its env, the inputs filled in."""
    action = yaml.safe_load((ACTION / "action.yml").read_text())
    inputs = {"url": server.url, "audience": AUDIENCE, "issue": "1", "file": str(file),
              "model": ""}
    output = tmp / "github_output"
    runner = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GITHUB_ACTION_PATH": str(ACTION),
        "RUNNER_TEMP": str(tmp),
        "GITHUB_OUTPUT": str(output),
        "ACTIONS_ID_TOKEN_REQUEST_URL": issuer.token_url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-request-token",
    }
    result = None
    for step in action["runs"]["steps"]:
        env = {name: value.replace("${{ inputs.", "").replace(" }}", "")
               for name, value in step.get("env", {}).items()}
        env = {name: inputs[key] for name, key in env.items()}
        result = subprocess.run(["bash", "-c", step["run"]], env={**runner, **env},
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            return result
    assert result is not None
    return result


def test_an_agent_runs_usage_goes_back_through_the_shipped_step(
    server: Server, issuer: Issuer, tmp_path: Path
) -> None:
    # 1. The issue is triaged: decided and reserved (dry-run: the repository
    #    is then one the App knows).
    sample = (ROOT / "examples" / "issues.opened.json").read_bytes()
    answer = server.deliver(json.loads(sample)).json()  # decided by the queue
    key = "Codertocat/Hello-World#1"
    reserved = server.store()["reservations"][key]["payment"]["tokens"]
    assert answer["tokens"] == reserved

    # 2. The agent ran; its execution file holds the transcript and the usage.
    file = tmp_path / "execution.json"
    file.write_text(json.dumps(EXECUTION_FILE))

    # 3. The shipped step extracts the usage and posts it with an OIDC token.
    result = run_action(tmp_path, server, issuer, file)
    assert result.returncode == 0, result.stdout + result.stderr
    sent = json.loads((tmp_path / "model-assigner-usage.json").read_text())
    assert "PRIVATE" not in json.dumps(sent) and "SECRET" not in json.dumps(sent)
    assert "answered 200" in result.stdout
    assert '"status": "charged"' in (tmp_path / "github_output").read_text()

    # 4. The store charged what was used, not the estimate.
    store = server.store()
    usage = store["usage"][key]
    [run] = usage["runs"].values()
    assert run["charges"][0]["payment"]["tokens"] == 163_040
    assert store["reservations"][key]["payment"]["tokens"] == 0
    # The issue was assigned an API model; the run used sonnet-4.5, so the
    # claude subscription pays it and the API estimate is given back.
    assert answer["paid_by"] == "api" and answer["model"] != "sonnet-4.5"
    assert "not the assigned" in run["charges"][0]["note"]
    assert store["subscriptions"]["claude"]["tokens_used_month"] == 163_040
    assert store["api_budget"]["spent_usd"] == 0

    # The same run posted again counts once.
    again = run_action(tmp_path, server, issuer, file)
    assert again.returncode == 0 and '"duplicate"' in again.stdout
    assert len(server.store()["usage"][key]["runs"]) == 1


def test_the_step_refuses_without_id_token_permission(
    server: Server, issuer: Issuer, tmp_path: Path
) -> None:
    file = tmp_path / "execution.json"
    file.write_text(json.dumps(EXECUTION_FILE))
    no_token = Issuer(issuer.url, issuer.key, token_url="")
    result = run_action(tmp_path, server, no_token, file)
    assert result.returncode != 0 and "id-token: write" in result.stdout
