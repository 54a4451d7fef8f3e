"""Credentials GitHub rejects: one line at start-up, and /healthz failing.

GitHub's answers are its own (``responses`` for the exact ``GET /app`` call
PyGithub makes with the App's JWT). The start-up test calls ``create_app()``
as gunicorn does, from the environment; the /healthz tests build the app from
the same settings with inline delivery (no queue workers, which would be
started in every process this one forks later) and the check asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import responses
from flask import Flask

from model_assigner.bot.github import credentials
from tests.bot.rest_mock import API, RestMock
from tests.bot.support import APP_ID, SECRET, app_key

REJECTED = {"message": "A JSON web token could not be decoded",
            "documentation_url": "https://docs.github.com/rest"}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def served() -> Flask:
    from model_assigner.bot.settings import load_settings
    from model_assigner.bot.web.app import create_app

    settings = replace(load_settings(), inline_delivery=True)
    return create_app(settings, check_credentials=True)


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_PRIVATE_KEY": app_key().private_pem,
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": API,
        "MODEL_ASSIGNER_STATE": str(tmp_path / "state.json"),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("GITHUB_PRIVATE_KEY_PATH", "MODEL_ASSIGNER_CONFIG", "MODEL_ASSIGNER_BOT_LOGIN"):
        monkeypatch.delenv(name, raising=False)


def test_rejected_credentials_stop_the_server_with_one_line(
    app_env: None, rsps: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    from model_assigner.bot.web.app import create_app

    rsps.get(f"{API}/app", status=401, json=REJECTED)
    with pytest.raises(SystemExit) as exited:
        create_app()
    assert exited.value.code == 4
    err = capsys.readouterr().err
    assert err == (
        f"model-assigner: cannot start: GITHUB_APP_ID {APP_ID}: GitHub rejects the App's "
        "credentials (GET /app: HTTP 401: A JSON web token could not be decoded); is the "
        "private key this App's?\n"
    )
    (call,) = rsps.calls
    assert (call.request.headers.get("Authorization") or "").startswith("Bearer ")


def test_healthz_fails_while_github_rejects_the_credentials(
    app_env: None, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    RestMock(rsps).app()  # accepted at start-up
    client = served().test_client()
    assert client.get("/healthz").status_code == 200

    rsps.replace(responses.GET, f"{API}/app", status=401, json=REJECTED)
    # Asked at start-up a moment ago: not asked again within the minute.
    assert client.get("/healthz").status_code == 200
    monkeypatch.setattr(credentials, "RECHECK_SECONDS", 0.0)
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.get_json()["status"] == "GitHub rejects the App's credentials"
    assert f"GITHUB_APP_ID {APP_ID}" in answer.get_json()["problem"]

    rsps.replace(responses.GET, f"{API}/app", json={"id": APP_ID, "slug": "model-assigner"})
    assert client.get("/healthz").status_code == 200


def test_an_unanswered_check_is_not_a_rejection(
    app_env: None, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GitHub outage at start-up or at a probe must not stop the server or
    mark every replica unhealthy (no answer registered: connection refused)."""
    client = served().test_client()
    monkeypatch.setattr(credentials, "RECHECK_SECONDS", 0.0)
    assert client.get("/healthz").status_code == 200
    assert any(call.request.url == f"{API}/app" for call in rsps.calls)
