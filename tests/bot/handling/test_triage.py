"""What is answered without deciding (bot/handling/triage.py, and the
webhook's refusals before it): the App's own events, pings and other
events, a body without a valid signature or not JSON."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bot.handler_support import (
    Bot,
)
from tests.bot.support import (
    BOT,
    delivery_headers,
    encode,
    webhook,
)


def test_the_apps_own_events_are_ignored(bot: Bot) -> None:
    before = bot.raw()  # the store the server wrote at start-up
    own = webhook("issues.labeled", sender=BOT, sender_type="Bot", label="model:glm-4.7")
    assert bot.deliver(own)[0] == 202
    assert bot.deliver(webhook("issues.unlabeled", sender=BOT, sender_type="Bot"))[0] == 202
    assert bot.gh.summary() == [("GET", "/app")]  # the slug, once; nothing else
    assert bot.raw() == before


def test_ping_and_installation_events_answer_2xx(bot: Bot) -> None:
    assert bot.deliver(webhook_raw("ping"), event="ping")[0] == 200
    assert bot.deliver(webhook_raw("installation.created"), event="installation")[0] == 202
    assert bot.deliver(webhook_raw("issue_comment.created"), event="issue_comment")[0] == 202
    assert bot.gh.calls() == []


def webhook_raw(name: str) -> dict[str, Any]:
    import json

    from tests.bot.support import WEBHOOKS

    data: dict[str, Any] = json.loads((WEBHOOKS / f"{name}.json").read_text())
    return data


@pytest.mark.parametrize(
    "signature", [None, "sha256=" + "0" * 64, "sha1=0123456789abcdef0123456789abcdef01234567"]
)
def test_a_missing_or_wrong_signature_is_401(bot: Bot, signature: str | None) -> None:
    body = encode(webhook("issues.opened"))
    headers = delivery_headers(body, secret=None)
    if signature:
        headers["X-Hub-Signature-256"] = signature
    response = bot.client.post("/webhook", data=body, headers=headers)
    assert response.status_code == 401
    assert bot.gh.calls() == []


def test_a_signed_body_that_is_not_json_is_400(bot: Bot) -> None:
    body = b"{not json"
    response = bot.client.post("/webhook", data=body, headers=delivery_headers(body))
    assert response.status_code == 400
