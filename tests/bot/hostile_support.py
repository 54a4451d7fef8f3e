"""Hostile input at the webhook: the app in dry-run or with GitHub answered
generically by `responses` (every call the bot can make, for any repository,
issue, label or comment), and how a test posts to it. The ``endpoint``
fixture (both apps) is in tests/bot/conftest.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import responses
from flask.testing import FlaskClient

from model_assigner.bot.settings import Settings
from tests.bot.rest_mock import RestMock
from tests.bot.support import APP_ID, BOT, SECRET, app_key, delivery_headers, rest_example
from tests.helpers import seed_strategy_config

HOST = "https://api.github.com:443"


def make_settings(tmp_path: Path, dry_run: bool) -> Settings:
    return Settings(
        app_id=None if dry_run else APP_ID,
        private_key=None if dry_run else app_key().private_pem,
        webhook_secret=SECRET,
        api_url="https://api.github.com",
        state_path=tmp_path / "data" / "state.json",
        config_dir=seed_strategy_config(),
        bot_login=None,
        inline_delivery=True,  # decided inside the request (unit tests)
    )


class AnyGitHub:
    """`responses` answers for every call the bot can make, for any
    repository, issue, label or comment: GitHub's documented examples."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.comment_ids = iter(range(10_000, 10_000_000))
        RestMock(rsps).app()
        token = rest_example("apps/create-installation-access-token")
        token.update(token="ghs_" + "t" * 36, expires_at="2099-01-01T00:00:00Z")
        tokens = re.compile(re.escape(HOST) + r"/app/installations/\d+/access_tokens")
        rsps.add(responses.POST, tokens, json=token, status=201)
        any_repo = re.escape(HOST) + r"/repos/[^?]+"
        for method in ("GET", "POST", "PATCH", "DELETE"):
            rsps.add_callback(method, re.compile(any_repo + r"(\?.*)?$"), self.answer)

    def answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        path = request.path_url.split("?", 1)[0]
        method = request.method
        if method == "GET" and re.search(r"/issues/\d+$", path):
            issue = rest_example("issues/get")
            issue.update(number=int(path.rsplit("/", 1)[1]), state="open", labels=[],
                         updated_at="2019-05-15T15:20:18Z")
            return 200, {}, json.dumps(issue)
        if method == "GET" and path.endswith("/comments"):
            return 200, {}, "[]"
        if method == "POST" and path.endswith("/comments"):
            comment = rest_example("issues/create-comment")
            comment.update(id=next(self.comment_ids))
            comment["user"] = {**comment["user"], "login": BOT, "type": "Bot"}
            return 201, {}, json.dumps(comment)
        if method == "PATCH":
            return 200, {}, json.dumps(rest_example("issues/update-comment"))
        if method == "POST" and re.search(r"/repos/[^/]+/[^/]+/labels$", path):
            return 201, {}, json.dumps(rest_example("issues/create-label"))
        if method in ("POST", "DELETE") and "/labels" in path:
            return 200, {}, json.dumps(rest_example("issues/add-labels"))
        if method == "GET" and re.search(r"/collaborators/[^/]+/permission$", path):
            permission = rest_example("repos/get-collaborator-permission-level")
            permission.update(permission="write", role_name="write")
            return 200, {}, json.dumps(permission)
        if "/branches/" in path:
            return 200, {}, json.dumps(rest_example("repos/get-branch"))
        if "/git/trees/" in path:
            return 200, {}, json.dumps(
                rest_example("git/get-tree.response-recursively-retrieving-a-tree"))
        return 404, {}, json.dumps({"message": "Not Found"})


def post(client: FlaskClient, body: bytes, delivery: str | None = None, event: str = "issues"
         ) -> tuple[int, dict[str, object]]:
    response = client.post("/webhook", data=body, headers=delivery_headers(body, event, delivery))
    answer = json.loads(response.get_data(as_text=True))
    return response.status_code, answer
