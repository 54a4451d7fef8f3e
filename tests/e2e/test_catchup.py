"""Catch-up after downtime, end to end: the real gunicorn server and the
GitHub stand-in, which keeps its webhook deliveries as GitHub does (each
attempt with its GUID and status code) and serves ``GET
/app/hook/deliveries`` and ``POST /app/hook/deliveries/{id}/attempts``.

While the server is down, GitHub's deliveries fail (nothing answers) and
nobody redelivers them; an issue is also opened while the App's webhook was
off altogether. At start, the catch-up redelivers the failed deliveries (and
only those) and sweeps the repositories for open issues with neither a
model label nor a decision: every open issue ends up decided, once.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

from bench.github_standin import GitHubStandIn, StandInServer
from tests.bot.support import REPO, SECRET, SMALL_BACKEND
from tests.e2e.support import (
    app_env,
    assigned_everywhere,
    bot_comments,
    charged_once,
    event,
    free_port,
    metric_values,
    model_labels,
    new_issue,
    start_server,
    stop_server,
)


def env(github: tuple[GitHubStandIn, StandInServer], catchup: str) -> dict[str, str]:
    return app_env(github, MODEL_ASSIGNER_CATCHUP_SECONDS=catchup)


def test_after_downtime_failed_deliveries_are_redelivered_and_undecided_issues_swept(
    github: tuple[GitHubStandIn, StandInServer], tmp_path: Path
) -> None:
    standin = github[0]
    port = free_port()
    standin.webhook_url = f"http://127.0.0.1:{port}/webhook"
    standin.webhook_secret = SECRET

    # Before the downtime: one delivery that succeeded (no catch-up yet).
    first = start_server(tmp_path, env(github, "0"), "app", port=port)
    try:
        new_issue(standin, 1, ["P0", "backend"], SMALL_BACKEND)
        delivered = str(uuid.uuid4())
        assert standin.send_delivery(event(standin, "opened", 1), guid=delivered) == 202
        first.outcome(delivered)
    finally:
        stop_server(first)

    # Down (nothing listens any more: the stopped workers may still be closing).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.1)
    # Three deliveries fail; issue 5 is opened while the webhook is off
    # (no delivery at all); issue 6 carries a person's model label.
    failed = {}
    for number in (2, 3, 4):
        new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
        failed[number] = str(uuid.uuid4())
        assert standin.send_delivery(event(standin, "opened", number), guid=failed[number]) == 0
    new_issue(standin, 5, ["P0", "backend"], SMALL_BACKEND)
    new_issue(standin, 6, ["P0", "backend", "model:opus-4.6"], SMALL_BACKEND)
    standin.clear_calls()

    # Back up, with the catch-up on: it runs at start.
    second = start_server(tmp_path, env(github, "3600"), "app", port=port)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            model_labels(standin, n) for n in (2, 3, 4, 5)
        ):
            time.sleep(0.1)
        second.drained()
        store = second.store()
        values = metric_values(second)
    finally:
        stop_server(second)

    for number in (1, 2, 3, 4, 5):
        assigned_everywhere(standin, store, number)
    charged_once(store)
    assert bot_comments(standin, 6) == []  # a person's label: not the sweep's business
    redelivered = standin.calls("POST", "/app/hook/deliveries/*/attempts")
    by_id = {d.id: d.guid for d in standin.hook_deliveries}
    assert sorted(by_id[int(c.path.split("/")[-2])] for c in redelivered) == sorted(
        failed.values()
    )  # each failed one once, never the delivered one
    for guid in failed.values():  # arrived again, signed, and accepted
        assert any(d.guid == guid and d.redelivery and d.status_code == 202
                   for d in standin.hook_deliveries)
    # 3 redelivered, and issue 5 (and any redelivery not yet in) swept.
    assert values["model_assigner_deliveries_caught_up_total"] >= 4
    assert len(standin.calls("GET", "/app/hook/deliveries")) >= 1
    assert len(standin.calls("GET", f"/repos/{REPO}/issues")) >= 1
