"""Closing (bot/handling/close.py) through the webhook app: a reservation
settled or released, a late event for a closed issue. GitHub answered by
`responses` (tests/bot/handler_support.py)."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from tests.bot.handler_support import (
    CLOSED_AT,
    ISSUE,
    KEY,
    P0_HOTFIX,
    P0_SMALL,
    P1_HOTFIX,
    Bot,
    assign,
)
from tests.bot.support import (
    webhook,
)


def closed(reason: str | None) -> dict[str, Any]:
    # There is no documented `closed` example: the `opened` one, closed.
    payload = webhook("issues.opened", action="closed", state="closed", state_reason=reason,
                      **P0_HOTFIX)
    payload["issue"]["updated_at"] = CLOSED_AT
    return payload


def test_closed_as_completed_keeps_the_usage(bot: Bot) -> None:
    assign(bot, P0_HOTFIX, "sonnet-4.5")
    mark = bot.mark()
    status, answer = bot.deliver(closed("completed"))
    assert (status, answer["status"], answer["had_reservation"]) == (200, "settled", True)
    state = bot.state()
    assert KEY not in state.reservations
    # The issue record stays: a reopen edits the same comment and knows the
    # model label on the issue is the bot's own, not a person's override.
    assert state.records[KEY].label == "model:sonnet-4.5"
    assert state.subscriptions["claude"].tokens_used_month == 80000
    assert bot.calls_since(mark) == []


@pytest.mark.parametrize("reason", ["not_planned", "duplicate"])
def test_closed_as_not_planned_releases_the_reservation(bot: Bot, reason: str) -> None:
    assign(bot, P0_HOTFIX, "sonnet-4.5")
    status, answer = bot.deliver(closed(reason))
    assert (status, answer["status"]) == (200, "released")
    state = bot.state()
    assert KEY not in state.reservations
    assert state.subscriptions["claude"].tokens_used_month == 0
    assert state.subscriptions["claude"].tokens_used_today == 0


def test_a_deleted_issue_releases_the_reservation(bot: Bot) -> None:
    assign(bot, P1_HOTFIX, "deepseek-v3")
    payload = webhook("issues.deleted")  # documented payload, installation.id 1
    status, answer = bot.deliver(payload)
    assert (status, answer["status"]) == (200, "released")
    assert bot.state().api_budget.spent_usd == 0.0 and not bot.state().reservations


def test_a_transferred_issue_releases_the_reservation(bot: Bot) -> None:
    """Moved to another repository, the issue is no longer this one's: its
    quota must not stay held for ever (the new repository sees it opened)."""
    assign(bot, P1_HOTFIX, "deepseek-v3")
    payload = webhook("issues.transferred")
    payload["repository"] = webhook("issues.opened")["repository"]  # our issue #1 moves
    status, answer = bot.deliver(payload)
    assert (status, answer["status"]) == (200, "released")
    state = bot.state()
    assert not state.reservations and state.api_budget.spent_usd == 0.0
    assert state.records[KEY].id is None  # only the time, against late deliveries


def test_an_issue_gone_from_github_is_released(bot: Bot) -> None:
    assign(bot, P1_HOTFIX, "deepseek-v3")
    bot.gh.rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                        json={"message": "This issue was deleted"}, status=410)
    status, answer = bot.deliver(webhook("issues.labeled", label="P0", **P0_HOTFIX))
    assert (status, answer["status"]) == (200, "released")
    assert not bot.state().reservations


def test_a_late_event_for_a_closed_issue_writes_nothing(bot: Bot) -> None:
    """The issue was closed, and that delivery handled, before the delivery of
    an older event: its payload (open) is not trusted, GitHub is asked."""
    closing = webhook("issues.opened", action="closed", state="closed",
                      state_reason="completed", **P0_SMALL)
    closing["issue"]["updated_at"] = "2019-05-15T15:30:00Z"
    assert bot.deliver(closing)[1]["status"] == "settled"
    bot.gh.issue(closing["issue"])
    mark = bot.mark()
    status, answer = bot.deliver(webhook("issues.labeled", label="P0", **P0_SMALL))
    assert (status, answer["status"]) == (202, "ignored")
    assert ("GET", ISSUE) in bot.gh.summary()[mark:]
    assert all(c.method == "GET" or "access_tokens" in c.url for c in bot.gh.calls())
    assert KEY not in bot.state().reservations
