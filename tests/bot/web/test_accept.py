"""The acknowledging webhook (queue mode, as gunicorn runs it), through the
Flask test client with a real store and queue file: bad input gets the same
answers as before and queues nothing; an issue event is queued once and
answered 202 without any GitHub call; hostile JSON never reaches a 5xx."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import responses
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_assigner.bot.queue.db import QueueDb, QueueDbError
from model_assigner.bot.queue.jobs import SqliteJobQueue
from model_assigner.bot.settings import QueueSettings, Settings
from model_assigner.bot.web.app import create_app
from tests.bot.support import APP_ID, BOT, REPO, SECRET, app_key, delivery_headers, encode, webhook
from tests.helpers import CONFIG_DIR


def make_app(tmp_path: Path) -> tuple[FlaskClient, SqliteJobQueue]:
    settings = Settings(
        app_id=APP_ID, private_key=app_key().private_pem, webhook_secret=SECRET,
        api_url="https://api.github.com", state_path=tmp_path / "data" / "state.json",
        config_dir=CONFIG_DIR, bot_login=BOT,
    )
    # No worker threads here: what the webhook itself does is under test.
    settings = replace(settings, queue=QueueSettings(workers=0, catchup_seconds=0))
    client = create_app(settings).test_client()
    return client, SqliteJobQueue(QueueDb(settings.queue_path))


def post(client: FlaskClient, body: bytes, event: str = "issues",
         delivery: str | None = None) -> tuple[int, dict[str, object]]:
    response = client.post("/webhook", data=body, headers=delivery_headers(body, event, delivery))
    return response.status_code, json.loads(response.get_data(as_text=True))


@responses.activate  # any GitHub call would fail the test: none is registered
def test_an_issue_event_is_queued_once_without_calling_github(tmp_path: Path) -> None:
    client, queue = make_app(tmp_path)
    body = encode(webhook("issues.opened"))
    assert post(client, body, delivery="d-1") == (
        202, {"status": "queued", "delivery": "d-1", "issue": f"{REPO}#1"})
    assert post(client, body, delivery="d-1") == (200, {"status": "duplicate", "delivery": "d-1"})
    [job] = queue.jobs()
    assert (job.key, job.state, job.deliveries) == (f"{REPO}#1", "waiting", 1)
    assert len(responses.calls) == 0


def test_bad_input_gets_the_answers_it_always_got_and_queues_nothing(tmp_path: Path) -> None:
    client, queue = make_app(tmp_path)
    body = encode(webhook("issues.opened"))
    headers = delivery_headers(body)
    headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    assert client.post("/webhook", data=body, headers=headers).status_code == 401
    assert post(client, b'{"action": ')[0] == 400
    assert post(client, b"[1]")[0] == 400
    assert post(client, encode({"action": "opened"}))[0] == 400
    assert post(client, encode(webhook("issues.opened", installation=None)))[0] == 400
    assert post(client, encode({"zen": "Keep it simple.", "hook_id": 1}), event="ping") == (
        200, {"status": "pong"})
    assert post(client, body, event="push")[1]["status"] == "ignored"
    own = webhook("issues.labeled", sender=BOT, sender_type="Bot", label="model:x")
    assert post(client, encode(own))[1] == {"status": "ignored", "reason": "our own event"}
    assert post(client, body, delivery="not/a delivery id")[0] == 400
    assert queue.jobs() == []


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(extra=st.dictionaries(
    st.sampled_from(["action", "issue", "repository", "installation", "sender"]),
    st.none() | st.integers() | st.text(max_size=20) | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.none() | st.integers(), max_size=3),
    max_size=3))
def test_hostile_issue_payloads_never_fail(tmp_path: Path, extra: dict[str, object]) -> None:
    client, queue = make_app(tmp_path / str(abs(hash(json.dumps(extra, default=str)))))
    status, answer = post(client, encode({**webhook("issues.opened"), **extra}))
    assert status < 500, answer
    if answer.get("status") == "queued":
        assert status == 202 and len(queue.jobs()) == 1
    else:
        assert queue.jobs() == []


def test_a_sqlite_too_old_for_the_queue_refuses_to_start_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The queue's INSERT ... ON CONFLICT DO NOTHING RETURNING needs SQLite
    # 3.35: with an older library the server must not start and then answer
    # 503 to every delivery.
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(SystemExit) as exited:
        make_app(tmp_path)
    assert exited.value.code == 4
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "SQLite 3.35.0 or newer" in line and "SQLite 3.31.1" in line
    with pytest.raises(QueueDbError, match=r"3\.31\.1"):
        QueueDb(tmp_path / "other.sqlite3")
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.35.0")
    QueueDb(tmp_path / "other.sqlite3")  # the oldest that works is accepted

