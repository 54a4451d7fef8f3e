"""The webhook app with a real store in tmp_path and GitHub answered by
`responses` with exactly the REST calls PyGithub makes, fed with GitHub's
documented webhook payloads: the `Bot` that drives it (its fixtures, `rsps`
and `bot`, are in tests/bot/conftest.py) and the issues and helpers the
handler's tests share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from model_assigner.bot.settings import Settings
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.state import Reservation, State
from model_assigner.core.types import Payment
from tests.bot.rest_mock import COMMIT_SHA, TREE_SHA, Call, RestMock
from tests.bot.support import (
    APP_ID,
    BIG_HOTFIX,
    REPO,
    SECRET,
    SMALL_BACKEND,
    IssueFields,
    app_key,
    delivery_headers,
    encode,
    issue_fields,
    webhook,
)
from tests.helpers import seed_strategy_config, store_files

# Inside the current quota month of config/subscriptions.yaml (reset 2026-12-01):
# a charge from before that month's start would count as already reset and
# would not be given back on release (core.quota.release_charge).
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


KEY = f"{REPO}#1"


MODEL_COLOR, DEFERRED_COLOR = "6f42c1", "d4c5f9"


MODEL_DESCRIPTION = "model-assigner: model for this issue"


DEFERRED_DESCRIPTION = "model-assigner: deferred"


ISSUE = f"/repos/{REPO}/issues/1"


# What the real config/ decides for these issues (see tests/bot/support.py).
P0_SMALL = issue_fields(["P0", "backend"], SMALL_BACKEND)  # glm-4.7, API


P1_HOTFIX = issue_fields(["P1", "security", "hotfix"], BIG_HOTFIX)  # deepseek-v3, API


P0_HOTFIX = issue_fields(["P0", "security", "hotfix"], BIG_HOTFIX)  # sonnet-4.5, subscription


def reads(number: int = 1, first: bool = True, issue_read: bool = True) -> list[tuple[str, str]]:
    """The GETs of one delivery: the App's slug and a token on the first one
    only, the issue's latest state (not when the payload is newer than what
    the store knows of the issue: a first delivery for it, say), then the
    default branch's tree and the repository's config (cached after the
    first delivery)."""
    head = [("GET", "/app"), ("POST", "/app/installations/1/access_tokens")] if first else []
    issue = [("GET", f"/repos/{REPO}/issues/{number}")] if issue_read else []
    workspace = [
        ("GET", f"/repos/{REPO}/branches/master"),
        ("GET", f"/repos/{REPO}/git/trees/{TREE_SHA}?recursive=1"),
        ("GET", f"/repos/{REPO}/contents/.github/model-assigner.yml?ref={COMMIT_SHA}"),
    ]
    return head + issue + (workspace if first else [])


@dataclass
class Bot:
    client: FlaskClient
    gh: RestMock
    store: Store
    state_path: Path
    clock: list[datetime] = field(default_factory=lambda: [NOW])

    def deliver(
        self,
        payload: dict[str, Any],
        event: str = "issues",
        delivery: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        body = encode(payload)
        response = self.client.post(
            "/webhook", data=body, headers=headers or delivery_headers(body, event, delivery)
        )
        return response.status_code, response.get_json()

    def state(self) -> State:
        return self.store.read()

    def raw(self) -> bytes | None:
        """The store's files (document and journal), byte for byte."""
        return store_files(self.state_path)

    def calls_since(self, mark: int) -> list[Call]:
        return self.gh.calls()[mark:]

    def mark(self) -> int:
        return len(self.gh.rsps.calls)


def make_settings(tmp_path: Path) -> Settings:
    return Settings(
        app_id=APP_ID,
        private_key=app_key().private_pem,
        webhook_secret=SECRET,
        api_url="https://api.github.com",
        state_path=tmp_path / "data" / "state.json",
        config_dir=seed_strategy_config(),
        bot_login=None,
        inline_delivery=True,  # decided inside the request (unit tests)
    )


def expect_new_assignment(gh: RestMock, model: str, comment_id: int = 501) -> None:
    gh.comments(1, [])
    gh.create_comment(1, comment_id)
    gh.create_label(f"model:{model}", MODEL_COLOR, MODEL_DESCRIPTION)
    gh.add_labels(1, [f"model:{model}"])


def assign(bot: Bot, issue: IssueFields, model: str, delivery: str = "d-1") -> dict[str, Any]:
    """Deliver `opened` for a new issue and check it was assigned ``model``."""
    bot.gh.issue(webhook("issues.opened", **issue)["issue"])
    expect_new_assignment(bot.gh, model)
    status, answer = bot.deliver(webhook("issues.opened", **issue), delivery=delivery)
    assert status == 200, answer
    assert answer["model"] == model
    return answer


def relabelled(issue: IssueFields, labels: list[str]) -> dict[str, Any]:
    """The issue's JSON with these labels instead."""
    changed: IssueFields = {**issue, "labels": labels}
    payload_issue: dict[str, Any] = webhook("issues.opened", **changed)["issue"]
    return payload_issue


def labelled(issue: IssueFields, *extra: str) -> dict[str, Any]:
    """The issue as GitHub shows it after labels were added."""
    return relabelled(issue, [*issue["labels"], *extra])


def seed_reservation(
    bot: Bot, key: str, model: str, payment: Payment, by: str | None = None
) -> None:
    with bot.store.transaction(bot.clock[0]) as state:
        state.reserve(key, Reservation(model=model, payment=payment, charged_at=bot.clock[0],
                                       override_by=by))


# A close changes the issue: its `updated_at` is later than the opening's (a
# close that is not newer than what the issue was decided from is checked
# against GitHub, issue 12).
CLOSED_AT = "2019-05-15T16:00:00Z"


def closed_small(reason: str) -> dict[str, Any]:
    payload = webhook("issues.opened", action="closed", state="closed", state_reason=reason,
                      **P0_SMALL)
    payload["issue"]["updated_at"] = CLOSED_AT
    return payload


def with_comments(payload: dict[str, Any], count: int) -> dict[str, Any]:
    """The payload of an issue that has ``count`` comments (GitHub's count)."""
    payload["issue"]["comments"] = count
    return payload
