"""The two ways in over HTTP: POST /usage with a GitHub Actions OIDC token
(verified against keys served on loopback), and the usage marker in an
issue_comment delivery. GitHub's REST calls are answered by `responses`."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa

from model_assigner.bot.comment import MARKER
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.pg import Database
from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.jobs import JobQueue, SqliteJobQueue
from model_assigner.bot.queue.pg import PgJobQueue
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.web.app import create_app
from model_assigner.bot.web.usage import _queued
from tests.bot.handler_support import NOW, P0_HOTFIX, Bot, assign, make_settings
from tests.bot.oidc_support import AUDIENCE, Issuer, oidc_issuer
from tests.bot.rest_mock import API, RestMock
from tests.bot.support import BOT, REPO, delivery_headers, encode, rest_example, webhook
from tests.helpers import CONFIG_DIR

KEY = f"{REPO}#1"
REPORTER = "github-actions[bot]"


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with oidc_issuer() as running:
        yield running


@pytest.fixture
def bot(tmp_path: Path, issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bot]:
    monkeypatch.setenv("MODEL_ASSIGNER_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("MODEL_ASSIGNER_OIDC_JWKS_URL", issuer.url)
    monkeypatch.setenv("MODEL_ASSIGNER_USAGE_COMMENT_LOGINS", f"{REPORTER}, claude[bot]")
    settings = make_settings(tmp_path)
    clock = [NOW]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        app = create_app(settings, clock=lambda: clock[0])
        gh = RestMock(rsps)
        gh.app()
        gh.token()
        gh.workspace()
        store = Store(settings.state_path, load_engine_config(CONFIG_DIR).quotas)
        yield Bot(app.test_client(), gh, store, settings.state_path, clock)


def installed(gh: RestMock, repo: str = REPO, status: int = 200) -> None:
    data = rest_example("apps/get-repo-installation")
    data["id"] = 1
    gh.rsps.get(f"{API}/repos/{repo}/installation",
                json=data if status == 200 else {"message": "Not Found"}, status=status)


def post(bot: Bot, token: str | None, body: Any) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = bot.client.post("/usage", data=data, headers=headers)
    return response.status_code, response.get_json()


def usage_body(tokens_in: int = 60_000, tokens_out: int = 4_000, **extra: Any) -> dict[str, Any]:
    return {"issue": 1, "lines": [{"model": "claude-sonnet-4-5-20250929",
                                   "input_tokens": tokens_in, "output_tokens": tokens_out,
                                   "reported_cost_usd": 0.25}], **extra}


def assigned(bot: Bot) -> int:
    """Issue #1 assigned sonnet-4.5 on the claude subscription; its comment
    on GitHub is 501. Returns the tokens reserved."""
    assign(bot, P0_HOTFIX, "sonnet-4.5")
    state = bot.state()
    reserved = state.reservations[KEY].tokens
    assert state.subscriptions["claude"].tokens_used_month == reserved
    bot.gh.rsps.replace(responses.GET, f"{API}/repos/{REPO}/issues/1/comments",
                        json=[])  # replaced below with our comment
    comments = rest_example("issues/list-comments")[:1]
    comments[0].update(id=501, body=f"{MARKER}\n### Model: `sonnet-4.5`\n",
                       user={**comments[0]["user"], "login": BOT, "type": "Bot"})
    bot.gh.rsps.replace(responses.GET, f"{API}/repos/{REPO}/issues/1/comments", json=comments)
    bot.gh.edit_comment(501)
    return reserved


def claude_month(bot: Bot) -> int:
    return bot.state().subscriptions["claude"].tokens_used_month


def test_a_workflow_report_replaces_the_estimate_and_updates_the_comment(
    bot: Bot, issuer: Issuer
) -> None:
    reserved = assigned(bot)
    installed(bot.gh)
    status, answer = post(bot, issuer.token(REPO), usage_body())
    assert status == 200, answer
    assert answer["status"] == "charged" and answer["run"] == "gha:8101:1"
    assert answer["charged"][0]["paid_by"] == "subscription:claude"
    assert claude_month(bot) == 64_000 != reserved
    edits = [c for c in bot.gh.calls() if c.method == "PATCH"]
    text = edits[-1].body["body"]
    assert f"Estimated {reserved:,} tokens; used 64,000" in text
    assert "(the agents reported $0.25)" in text
    assert answer["comment_updated"] is True
    metrics = bot.client.get("/metrics").get_data(as_text=True)
    series = 'model_assigner_usage_tokens{kind="actual",payer="subscription:claude"}'
    assert f"{series} 64000.0" in metrics
    assert (f'model_assigner_usage_tokens{{kind="estimated",payer="subscription:claude"}} '
            f"{float(reserved)}") in metrics


def test_the_same_token_or_run_twice_counts_once(bot: Bot, issuer: Issuer) -> None:
    assigned(bot)
    installed(bot.gh)
    token = issuer.token(REPO)
    assert post(bot, token, usage_body())[0] == 200
    status, answer = post(bot, token, usage_body())  # the very same request replayed
    assert (status, answer["status"]) == (200, "duplicate")
    status, answer = post(bot, issuer.token(REPO), usage_body())  # a new token, same run
    assert (status, answer["status"]) == (200, "duplicate")
    assert claude_month(bot) == 64_000
    # Another attempt of the run is another run.
    assert post(bot, issuer.token(REPO, attempt="2"), usage_body(1000, 0))[0] == 200
    assert claude_month(bot) == 65_000


@pytest.mark.parametrize(
    ("token_args", "status", "error"),
    [
        ({"audience": "someone-else"}, 401, "audience"),
        ({"expires_in": -3600}, 401, "expired"),
        ({"iss": "https://evil.example"}, 401, "issuer"),
    ],
)
def test_tokens_that_are_not_ours_are_refused(
    bot: Bot, issuer: Issuer, token_args: dict[str, Any], status: int, error: str
) -> None:
    assigned(bot)
    installed(bot.gh)
    before = bot.raw()
    got, answer = post(bot, issuer.token(REPO, **token_args), usage_body())
    assert got == status and error in answer["error"]
    assert bot.raw() == before


def test_a_token_signed_by_another_key_is_refused(bot: Bot, issuer: Issuer) -> None:
    assigned(bot)
    installed(bot.gh)
    before = bot.raw()
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    status, answer = post(bot, issuer.token(REPO, key=forger), usage_body())
    assert status == 401 and "invalid token" in answer["error"]
    status, answer = post(bot, None, usage_body())
    assert status == 401 and "Bearer" in answer["error"]
    assert bot.raw() == before


def test_the_tokens_repository_must_be_the_issues_and_installed(
    bot: Bot, issuer: Issuer
) -> None:
    assigned(bot)
    before = bot.raw()
    status, answer = post(bot, issuer.token("octo-org/other"), usage_body(issue=f"{REPO}#1"))
    assert status == 403 and "the token is for octo-org/other" in answer["error"]
    installed(bot.gh, "octo-org/other", status=404)
    status, answer = post(bot, issuer.token("octo-org/other"), usage_body())
    assert status == 403 and "not installed" in answer["error"]
    assert bot.raw() == before


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "not JSON"),
        ({"issue": 1}, "lines: missing"),
        ({"issue": 1, "lines": [{"input_tokens": -1}]}, "not a token count"),
        ({"issue": "nope", "lines": [{"input_tokens": 1}]}, "issue:"),
        ({"issue": 10**30, "lines": [{"input_tokens": 1}]}, "issue:"),
        ({"issue": f"{REPO}#99999999999", "lines": [{"input_tokens": 1}]}, "issue:"),
        ({"issue": 1, "lines": [{"input_tokens": 1, "transcript": "..."}]}, "unknown field"),
    ],
)
def test_malformed_reports_are_400_and_change_nothing(
    bot: Bot, issuer: Issuer, body: Any, error: str
) -> None:
    assigned(bot)
    installed(bot.gh)
    before = bot.raw()
    status, answer = post(bot, issuer.token(REPO), body)
    assert status == 400 and error in answer["error"]
    assert bot.raw() == before


def test_the_signing_keys_are_fetched_once(bot: Bot, issuer: Issuer) -> None:
    assigned(bot)
    installed(bot.gh)
    fetched = len(issuer.fetches)
    for attempt in range(3):
        post(bot, issuer.token(REPO, attempt=str(attempt + 1)), usage_body(10, 0))
    assert len(issuer.fetches) - fetched <= 1


def test_a_report_for_an_undecided_issue_waits(bot: Bot, issuer: Issuer) -> None:
    assigned(bot)  # the repository is known; issue #2 is not decided yet
    installed(bot.gh)
    status, answer = post(bot, issuer.token(REPO), usage_body(issue=2))
    assert (status, answer["status"]) == (202, "pending")
    assert bot.state().usage[f"{REPO}#2"].pending_runs


# -- the comment marker ----------------------------------------------------------------


def comment_payload(login: str, body: str) -> dict[str, Any]:
    payload = webhook("issue_comment.created")
    payload["comment"]["user"] = {**payload["comment"]["user"], "login": login, "type": "Bot"}
    payload["comment"]["body"] = body
    return payload


def deliver_comment(bot: Bot, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = encode(payload)
    response = bot.client.post("/webhook", data=body,
                               headers=delivery_headers(body, "issue_comment"))
    return response.status_code, response.get_json()


MARKED = ("Agent finished.\n<!-- model-assigner:usage-report "
          '{"run_id": "session-1", "lines": [{"input_tokens": 20000, "output_tokens": 2000}]} -->')


def test_a_listed_login_reports_usage_in_a_comment(bot: Bot) -> None:
    assigned(bot)
    status, answer = deliver_comment(bot, comment_payload(REPORTER, MARKED))
    assert status == 200 and answer["status"] == "charged", answer
    assert claude_month(bot) == 22_000
    # The same comment delivered again (an edit, a redelivery): counted once.
    status, answer = deliver_comment(bot, comment_payload(REPORTER, MARKED))
    assert answer["status"] == "duplicate" and claude_month(bot) == 22_000


def test_a_marker_from_anyone_else_changes_nothing(bot: Bot) -> None:
    reserved = assigned(bot)
    before = bot.raw()
    status, answer = deliver_comment(bot, comment_payload("mallory", MARKED))
    assert status == 202 and "not listed" in answer["reason"]
    status, answer = deliver_comment(bot, comment_payload(REPORTER, "no marker here"))
    assert status == 202 and answer["status"] == "ignored"
    assert bot.raw() == before and claude_month(bot) == reserved


def test_a_broken_marker_is_400(bot: Bot) -> None:
    assigned(bot)
    before = bot.raw()
    bad = "<!-- model-assigner:usage-report {\"lines\": [ -->"
    status, answer = deliver_comment(bot, comment_payload(REPORTER, bad))
    assert status == 400 and "usage marker" in answer["error"]
    assert bot.raw() == before


def test_too_many_waiting_reports_are_429_and_change_nothing(
    bot: Bot, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model_assigner.bot.usage_store as usage_store

    assigned(bot)
    installed(bot.gh)
    monkeypatch.setattr(usage_store, "MAX_WAITING_ISSUES", 0)
    before = bot.raw()
    status, answer = post(bot, issuer.token(REPO), usage_body(issue=2))
    assert status == 429 and "wait for a decision" in answer["error"]
    assert bot.raw() == before


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_queue_that_fails_after_the_report_is_saved_answers_as_recorded(
    backend: str, tmp_path: Path
) -> None:
    # The report is saved and charged before the comment update is queued:
    # a queue failure must read "failed" (200, the next report queues it) on
    # both back ends, never a 503 whose retry is then taken as a duplicate.
    queue: JobQueue
    if backend == "sqlite":
        (tmp_path / "queue.sqlite3").mkdir()  # a queue file that cannot be opened
        queue = SqliteJobQueue(QueueDb(tmp_path / "queue.sqlite3"))
        database = None
    else:
        with socket.socket() as probe:  # a port nothing listens on: the database is gone
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        database = Database(f"postgresql://nobody@127.0.0.1:{port}/gone", pool_size=1)
        queue = PgJobQueue(database)
    try:
        assert _queued(queue)(REPO, 1, 42) == "failed"
    finally:
        if database is not None:
            database.release()
