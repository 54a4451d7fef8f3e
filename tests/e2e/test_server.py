"""End to end: the real gunicorn server, started from the Procfile's `web:`
line, on loopback, talking to the GitHub stand-in (a thread of this process).

Network: 127.0.0.1 only. The Procfile binds 0.0.0.0; gunicorn's --bind is an
*append* setting (a second --bind adds a listener, it does not replace the
first), so the tests run the Procfile's command with its bind host changed to
127.0.0.1, and check that the rest of the line is what operators rely on.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from bench.github_standin import GitHubStandIn, StandInServer
from model_assigner.bot.comment import MARKER
from tests.bot.support import (
    BIG_HOTFIX,
    BOT,
    PERSON,
    REPO,
    SECRET,
    SMALL_BACKEND,
    app_key,
    delivery_headers,
    encode,
)
from tests.e2e.support import (
    ROOT,
    VENV_BIN,
    Outcome,
    Server,
    app_env,
    bot_comments,
    event,
    metric_values,
    model_labels,
    new_issue,
    procfile_web,
    start_server,
    stop_server,
)
from tests.helpers import store_files

# -- fixtures (module-scoped: one stand-in and one server for the whole file) ----------


@pytest.fixture(scope="module")
def server(
    github: tuple[GitHubStandIn, StandInServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("e2e")
    running = start_server(
        tmp,
        app_env(github),
        "app",
    )
    try:
        yield running
    finally:
        stop_server(running)


# -- the tests --------------------------------------------------------------------------


def test_procfile_runs_gunicorn_with_the_app_factory_on_all_interfaces() -> None:
    args = shlex.split(procfile_web())
    assert args[0] == "gunicorn" and args[-1] == "model_assigner.bot.web.app:create_app()"
    assert args[args.index("--workers") + 1] == "${WEB_CONCURRENCY:-2}"
    assert args[args.index("--bind") + 1] == "0.0.0.0:${PORT:-8000}"


def test_the_server_runs_two_workers(server: Server) -> None:
    assert requests.get(f"{server.url}/healthz", timeout=5).json() == {
        "status": "ok", "dry_run": False
    }
    workers = [c for c in server.group_members() if "gunicorn" in c]
    assert len(workers) >= 3, workers  # the master and two workers


def test_an_opened_issue_gets_a_label_one_comment_and_a_reservation(
    server: Server, standin: GitHubStandIn
) -> None:
    new_issue(standin, 1, ["P0", "backend"], SMALL_BACKEND)
    acknowledged = server.post(event(standin, "opened", 1), delivery="e2e-1")
    assert acknowledged.status_code == 202, acknowledged.text
    assert acknowledged.json() == {"status": "queued", "delivery": "e2e-1", "issue": f"{REPO}#1"}
    response = server.outcome("e2e-1")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["status"], answer["model"]) == ("assigned", "glm-4.7")
    assert model_labels(standin, 1) == ["model:glm-4.7"]
    [comment] = standin.comments_of(REPO, 1)
    assert comment.login == BOT and MARKER in comment.body
    assert "### Model: `glm-4.7`" in comment.body
    store = server.store()
    held = store["reservations"][f"{REPO}#1"]
    assert (held["model"], held["payment"]["tokens"], held["payment"]["kind"]) == (
        "glm-4.7", answer["tokens"], "api"
    )
    assert store["api_budget"]["spent_usd"] == pytest.approx(held["payment"]["cost_usd"])
    assert "e2e-1" in store["deliveries"]


def test_a_redelivery_changes_nothing(server: Server, standin: GitHubStandIn) -> None:
    before = store_files(server.state)
    standin.clear_calls()
    response = server.post(event(standin, "opened", 1), delivery="e2e-1")
    assert (response.status_code, response.json()["status"]) == (200, "duplicate")
    # Only the App's slug, if the other worker did not know it yet.
    assert [c.path for c in standin.calls()] in ([], ["/app"])
    assert store_files(server.state) == before
    assert len(standin.comments_of(REPO, 1)) == 1


def test_a_bad_signature_is_401_and_a_malformed_body_400(
    server: Server, standin: GitHubStandIn
) -> None:
    body = encode(event(standin, "opened", 1))
    headers = delivery_headers(body)
    headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    assert server.post(None, body=body, headers=headers).status_code == 401
    del headers["X-Hub-Signature-256"]
    assert server.post(None, body=body, headers=headers).status_code == 401
    assert server.post(None, body=b'{"action": "opened", ').status_code == 400
    assert server.post(None, body=b"[1, 2]").status_code == 400


def test_the_apps_own_event_is_ignored(server: Server, standin: GitHubStandIn) -> None:
    before = store_files(server.state)
    standin.clear_calls()
    for _ in range(2):  # both workers may see one
        payload = event(standin, "labeled", 1, sender=BOT, sender_type="Bot",
                        label="model:glm-4.7")
        response = server.post(payload)
        assert (response.status_code, response.json()["reason"]) == (202, "our own event")
    assert [c for c in standin.calls() if c.path != "/app"] == []
    assert store_files(server.state) == before


def test_a_persons_model_label_is_kept_as_an_override(
    server: Server, standin: GitHubStandIn
) -> None:
    new_issue(standin, 2, ["P2", "backend"], SMALL_BACKEND)
    assert server.deliver(event(standin, "opened", 2)).json()["status"] == "deferred"
    standin.label_issue(REPO, 2, "model:opus-4.6")
    response = server.deliver(event(standin, "labeled", 2, sender=PERSON, label="model:opus-4.6"))
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["model"]) == ("override", "opus-4.6")
    assert model_labels(standin, 2) == ["model:opus-4.6"]  # model:deferred went
    [comment] = bot_comments(standin, 2)
    assert f"(set by {PERSON} with a label)" in comment and f"@{PERSON}" not in comment
    held = server.store()["reservations"][f"{REPO}#2"]
    assert (held["model"], held["override_by"]) == ("opus-4.6", PERSON)


def test_a_priority_change_reassigns(server: Server, standin: GitHubStandIn) -> None:
    new_issue(standin, 3, ["P1", "security", "hotfix"], BIG_HOTFIX)
    first = server.deliver(event(standin, "opened", 3)).json()
    assert first["model"] == "deepseek-v3"
    store = server.store()
    spent_before = store["api_budget"]["spent_usd"]
    deepseek_cost = store["reservations"][f"{REPO}#3"]["payment"]["cost_usd"]
    [comment_id] = [c.id for c in standin.comments_of(REPO, 3)]

    standin.unlabel_issue(REPO, 3, "P1")
    # No priority label: the default weight (P2's): a budget model.
    assert server.deliver(event(standin, "unlabeled", 3, label="P1")).json()["model"] == "glm-4.7"
    standin.label_issue(REPO, 3, "P0")
    response = server.deliver(event(standin, "labeled", 3, label="P0"))

    assert (response.json()["status"], response.json()["model"]) == ("assigned", "sonnet-4.5")
    assert model_labels(standin, 3) == ["model:sonnet-4.5"]
    comments = standin.comments_of(REPO, 3)
    assert [c.id for c in comments] == [comment_id]  # edited in place
    assert "### Model: `sonnet-4.5`" in comments[0].body
    assert len(standin.calls("PATCH", f"/repos/{REPO}/issues/comments/{comment_id}")) == 2
    store = server.store()
    assert store["reservations"][f"{REPO}#3"]["model"] == "sonnet-4.5"
    # deepseek's and glm's API charges were given back; the subscription pays sonnet.
    assert store["api_budget"]["spent_usd"] == pytest.approx(spent_before - deepseek_cost)


def test_the_opened_labeled_milestoned_burst_ends_in_one_of_each(
    server: Server, standin: GitHubStandIn
) -> None:
    """GitHub sends an issue created with three labels and a milestone as five
    deliveries within a second; two workers handle them at once."""
    new_issue(standin, 4, ["P0", "security", "hotfix"], BIG_HOTFIX,
              milestone_due_on="2026-12-24T00:00:00Z")
    payloads = [event(standin, "opened", 4)]
    payloads += [event(standin, "labeled", 4, label=n) for n in ("P0", "security", "hotfix")]
    payloads += [event(standin, "milestoned", 4)]
    standin.clear_calls()
    barrier = threading.Barrier(len(payloads))

    def send(payload: dict[str, Any]) -> Outcome:
        barrier.wait()
        return server.deliver(payload)

    with ThreadPoolExecutor(len(payloads)) as pool:
        answers = list(pool.map(send, payloads))

    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    [model] = {a.json()["model"] for a in answers}  # all decided from the latest state
    assert model is not None
    assert model_labels(standin, 4) == [f"model:{model}"]
    assert len(standin.comments_of(REPO, 4)) == 1
    assert len(standin.calls("POST", f"/repos/{REPO}/issues/4/comments")) == 1
    assert len(standin.calls("POST", f"/repos/{REPO}/issues/4/labels")) == 1
    reservations = [k for k in server.store()["reservations"] if k == f"{REPO}#4"]
    assert reservations == [f"{REPO}#4"]


def test_16_concurrent_deliveries_lose_no_quota_update(
    server: Server, standin: GitHubStandIn
) -> None:
    kinds = [
        (["P0", "security", "hotfix"], BIG_HOTFIX),  # sonnet-4.5, claude subscription
        (["P1", "security", "hotfix"], BIG_HOTFIX),  # deepseek-v3, API budget
        (["P0", "backend"], SMALL_BACKEND),  # glm-4.7, API budget
        (["P2", "security", "hotfix"], BIG_HOTFIX),  # glm-4.7, API budget
    ]
    numbers = list(range(100, 116))
    for i, number in enumerate(numbers):
        labels, body = kinds[i % len(kinds)]
        new_issue(standin, number, labels, body)
    payloads = [event(standin, "opened", n) for n in numbers]
    barrier = threading.Barrier(len(payloads))

    def send(payload: dict[str, Any]) -> Outcome:
        barrier.wait()
        return server.deliver(payload, delivery=str(uuid.uuid4()))

    with ThreadPoolExecutor(len(payloads)) as pool:
        answers = list(pool.map(send, payloads))

    assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers]
    store = server.store()
    for number, answer in zip(numbers, answers, strict=True):
        assert model_labels(standin, number) == [f"model:{answer.json()['model']}"]
        assert len(standin.comments_of(REPO, number)) == 1
        assert store["reservations"][f"{REPO}#{number}"]["payment"]["tokens"] == answer.json()[
            "tokens"
        ]
    # Every reservation in the store (these 16 and the earlier tests') is
    # charged exactly once: the counters are the sums of the reservations.
    by_kind: dict[str, list[dict[str, Any]]] = {"subscription": [], "api": []}
    for held in store["reservations"].values():
        by_kind[held["payment"]["kind"]].append(held["payment"])
    assert len(by_kind["subscription"]) >= 4 and len(by_kind["api"]) >= 12
    claude = store["subscriptions"]["claude"]
    assert claude["tokens_used_month"] == sum(p["tokens"] for p in by_kind["subscription"])
    assert claude["tokens_used_today"] == claude["tokens_used_month"]
    assert store["api_budget"]["spent_usd"] == pytest.approx(
        sum(p["cost_usd"] for p in by_kind["api"]), abs=1e-9
    )


def test_github_5xx_is_retried_and_a_persistent_one_is_a_dead_letter_until_retried(
    server: Server, standin: GitHubStandIn
) -> None:
    new_issue(standin, 5, ["P0", "backend"], SMALL_BACKEND)
    # A new issue with no comment: the first write is the comment.
    comments = f"/repos/{REPO}/issues/5/comments"
    standin.inject_fault(comments, "502", times=2, method="POST")
    response = server.deliver(event(standin, "opened", 5))
    assert response.status_code == 200, response.text
    assert [c.status for c in standin.calls("POST", comments)][-3:] == [502, 502, 201]

    new_issue(standin, 6, ["P0", "backend"], SMALL_BACKEND)
    standin.inject_fault(f"/repos/{REPO}/issues/6/comments", "500", times=None, method="POST")
    try:
        acknowledged = server.post(event(standin, "opened", 6), delivery="e2e-fails")
        assert acknowledged.status_code == 202  # GitHub never sees the failure
        queue = server.queue()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not queue.jobs("dead"):
            time.sleep(0.05)
    finally:
        standin.clear_faults()
    [dead] = queue.jobs("dead")
    assert (dead.key, dead.attempts) == (f"{REPO}#6", 3)
    assert "HTTP 500" in (dead.last_error or "")
    # 3 attempts of 3 tries each (urllib3's 2 retries); nothing reserved, no label.
    assert len(standin.calls("POST", f"/repos/{REPO}/issues/6/comments")) == 9
    assert f"{REPO}#6" not in server.store()["reservations"]
    assert model_labels(standin, 6) == []
    # An operator retries it once GitHub is back: assigned as new, not taken
    # for an override, with one comment (the failed POSTs created none).
    result = subprocess.run(
        [str(VENV_BIN / "model-assigner"), "queue", "retry", f"{REPO}#6"],
        env={**os.environ, "MODEL_ASSIGNER_STATE": str(server.state)},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    response = server.outcome("e2e-fails")
    assert (response.status_code, response.json()["status"]) == (200, "assigned")
    assert len(bot_comments(standin, 6)) == 1


def test_metrics_add_up_across_workers(server: Server, standin: GitHubStandIn) -> None:
    """Runs after the deliveries above: every series the operator watches is
    there, and counts from both workers are summed in one scrape."""
    values = metric_values(server)
    assert requests.get(f"{server.url}/metrics", timeout=10).headers["Content-Type"].startswith(
        "text/plain"
    )
    queued = values['model_assigner_deliveries_total{event="issues",outcome="queued"}']
    store = server.store()
    assert queued >= 16  # the 16 concurrent deliveries, spread over 2 workers
    decided = sum(
        v for k, v in values.items() if k.startswith("model_assigner_decisions_total{")
    )
    assert decided >= 16  # decided by the queue workers of both processes
    assert values['model_assigner_deliveries_total{event="issues",outcome="duplicate"}'] >= 1
    assert values['model_assigner_deliveries_total{event="issues",outcome="unauthorized"}'] >= 1
    assert values["model_assigner_github_errors_total"] >= 1
    assert values["model_assigner_github_retries_total"] >= 2
    assert values['model_assigner_delivery_seconds_count{event="issues"}'] >= queued
    # The queue, from its file: empty now; the dead letter above was retried.
    assert values['model_assigner_queue_jobs{state="waiting"}'] == 0
    assert values['model_assigner_queue_jobs{state="dead"}'] == 0
    assert values["model_assigner_queue_oldest_job_seconds"] == 0
    assert values["model_assigner_queue_retries_total"] >= 3
    assert values["model_assigner_queue_dead_letters_total"] >= 1
    assert "model_assigner_rate_limit_wait_seconds_total" in values
    assert "model_assigner_deliveries_caught_up_total" in values
    claude = store["subscriptions"]["claude"]
    assert values['model_assigner_quota_used_tokens{family="claude",period="month"}'] == (
        claude["tokens_used_month"]
    )
    assert values['model_assigner_quota_left_tokens{family="claude",period="month"}'] == (
        claude["token_limit_monthly"] - claude["tokens_used_month"]
    )
    assert values["model_assigner_api_budget_left_usd"] == pytest.approx(
        store["api_budget"]["monthly_limit_usd"] - store["api_budget"]["spent_usd"]
    )
    assert values["model_assigner_reservations"] == len(store["reservations"])


def test_logs_hold_decisions_and_no_secrets(server: Server, standin: GitHubStandIn) -> None:
    text = server.log_text()
    decisions = [line for line in text.splitlines() if '"event": "decision"' in line]
    assert decisions
    record = json.loads(decisions[0][decisions[0].index("{") :])
    assert {"delivery", "issue", "model", "value_score", "tokens", "paid_by"} <= set(record)
    assert SECRET not in text
    assert "PRIVATE KEY" not in text and app_key().private_pem.splitlines()[1] not in text
    for token in list(standin.tokens):
        assert token not in text


def test_a_dry_run_server_answers_a_signed_sample_with_the_decision(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("dry")
    dry = start_server(tmp, {"GITHUB_WEBHOOK_SECRET": SECRET}, "dry")
    try:
        assert requests.get(f"{dry.url}/healthz", timeout=5).json()["dry_run"] is True
        sample = (ROOT / "examples" / "issues.opened.json").read_bytes()
        unsigned = delivery_headers(sample, secret=None)
        assert dry.post(None, body=sample, headers=unsigned).status_code == 401

        result = subprocess.run(
            [str(VENV_BIN / "model-assigner"), "send-sample", "--url", f"{dry.url}/webhook"],
            env={**os.environ, "GITHUB_WEBHOOK_SECRET": SECRET,
                 "MODEL_ASSIGNER_STATE": str(dry.state)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("HTTP 202")
        assert "decided:" in result.stdout
        assert '"dry_run": true' in result.stdout
        assert "comment it would write" in result.stdout and MARKER in result.stdout

        headers = delivery_headers(sample)
        acknowledged = dry.post(None, body=sample, headers=headers)
        assert acknowledged.status_code == 202, acknowledged.text
        response = dry.outcome(headers["X-GitHub-Delivery"])
        answer = response.json()
        assert response.status_code == 200 and answer["dry_run"] is True
        assert answer["label"].startswith("model:") and answer["comment"].startswith(MARKER)
        assert dry.store()["reservations"] or answer["model"] is None
        assert "dry-run mode" in dry.log_text()
    finally:
        stop_server(dry)
