"""Deciding an issue (bot/handling/assign.py) through the webhook app:
redeliveries, GitHub failures and the exact undo of a reservation, a
repository's config problem. GitHub answered by `responses`
(tests/bot/handler_support.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import responses

from model_assigner.bot.github.gateway import GitHubUnavailable
from model_assigner.bot.web.app import create_app
from model_assigner.bot.wiring import build_handler
from tests.bot.handler_support import (
    ISSUE,
    KEY,
    MODEL_COLOR,
    MODEL_DESCRIPTION,
    NOW,
    P0_HOTFIX,
    P0_SMALL,
    P1_HOTFIX,
    Bot,
    assign,
    expect_new_assignment,
    make_settings,
    relabelled,
    with_comments,
)
from tests.bot.rest_mock import RestMock
from tests.bot.support import (
    BIG_HOTFIX,
    REPO,
    delivery_headers,
    encode,
    issue_fields,
    rest_example,
    webhook,
)
from tests.helpers import store_text


def test_a_redelivery_changes_nothing(bot: Bot) -> None:
    assign(bot, P0_SMALL, "glm-4.7", delivery="same-id")
    before, mark = bot.raw(), bot.mark()
    status, answer = bot.deliver(webhook("issues.opened", **P0_SMALL), delivery="same-id")
    assert (status, answer) == (200, {"status": "duplicate", "delivery": "same-id"})
    assert bot.calls_since(mark) == []
    assert bot.raw() == before


def test_500_and_502_are_retried_then_the_delivery_succeeds(bot: Bot) -> None:
    rsps = bot.gh.rsps
    comments = f"https://api.github.com:443{ISSUE}/comments"
    rsps.get(comments, json={"message": "Server Error"}, status=500)
    rsps.get(comments, body="<html>Bad Gateway</html>", status=502)
    bot.gh.comments(1, [])
    bot.gh.create_comment(1, status=502)
    payload = with_comments(webhook("issues.opened", **P0_SMALL), 1)  # a person's comment
    bot.gh.issue(payload["issue"])
    expect_new_assignment(bot.gh, "glm-4.7")
    status, answer = bot.deliver(payload, delivery="d-1")
    assert (status, answer["model"]) == (200, "glm-4.7")
    summary = bot.gh.summary()
    assert summary.count(("GET", f"{ISSUE}/comments")) == 3
    assert summary.count(("POST", f"{ISSUE}/comments")) == 2
    assert bot.state().reservations[KEY].model == "glm-4.7"


def test_persistent_5xx_answers_503_and_leaves_the_store_as_it_was(bot: Bot) -> None:
    assign(bot, P1_HOTFIX, "deepseek-v3")
    before = bot.raw()
    rsps = bot.gh.rsps
    rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                 json={"message": "Server Error"}, status=500)
    mark = bot.mark()
    status, answer = bot.deliver(webhook("issues.labeled", label="P0", **P0_HOTFIX))
    assert status == 503 and "redeliver" in answer["error"]
    assert [(c.method, c.url) for c in bot.calls_since(mark)] == [("GET", ISSUE)] * 3
    assert bot.raw() == before


def labels_after(bot: Bot, mark: int, labels: list[str]) -> list[str]:
    """The issue's labels once GitHub has done the label writes made since ``mark``."""
    out = list(labels)
    for call in bot.calls_since(mark):
        if call.method == "POST" and call.path == f"{ISSUE}/labels":
            out += [n for n in call.body if n not in out]
        elif call.method == "DELETE" and call.path.startswith(f"{ISSUE}/labels/"):
            name = call.path.rsplit("/", 1)[1].replace("%3A", ":")
            out = [n for n in out if n != name]
    return out


def test_a_failed_write_back_is_undone_exactly(bot: Bot) -> None:
    """Re-assignment reserved sonnet before writing; the comment edit fails
    for good: the store is byte for byte as before, no label of the bot's is
    left that the store does not know, and the redelivery (after GitHub
    recovers) re-assigns cleanly instead of mistaking it for a person's."""
    assign(bot, P1_HOTFIX, "deepseek-v3")
    rsps = bot.gh.rsps
    on_issue = [*P1_HOTFIX["labels"], "model:deepseek-v3"]
    on_issue[0] = "P0"
    rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                 json=relabelled(P0_HOTFIX, on_issue))
    bot.gh.edit_comment(501, status=502)
    bot.gh.remove_label(1, "model%3Adeepseek-v3")
    bot.gh.create_label("model:sonnet-4.5", MODEL_COLOR, MODEL_DESCRIPTION)
    bot.gh.add_labels(1, ["model:sonnet-4.5"])
    # The store as one document: the journal holds the reservation and its
    # undo (it only grows), the state they leave is the one before.
    before, mark = store_text(bot.state_path), bot.mark()
    payload = webhook("issues.labeled", label="P0", **P0_HOTFIX)

    status, _ = bot.deliver(payload, delivery="d-fail")

    assert status == 503
    assert store_text(bot.state_path) == before
    assert "d-fail" not in bot.state().deliveries
    on_issue = labels_after(bot, mark, on_issue)
    assert on_issue == ["P0", "security", "hotfix", "model:deepseek-v3"]

    # GitHub recovers; the delivery is redelivered.
    rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                 json=relabelled(P0_HOTFIX, on_issue))
    rsps.replace(responses.PATCH, f"https://api.github.com:443/repos/{REPO}/issues/comments/501",
                 json=rest_example("issues/update-comment"))
    status, answer = bot.deliver(payload, delivery="d-fail")
    assert (status, answer["status"], answer["model"]) == (200, "assigned", "sonnet-4.5")
    state = bot.state()
    assert state.reservations[KEY].model == "sonnet-4.5"
    assert state.reservations[KEY].override_by is None
    assert state.subscriptions["claude"].tokens_used_month == 80000
    assert state.api_budget.spent_usd == 0.0


def test_the_handler_raises_github_unavailable_and_undoes_across_a_day(tmp_path: Path) -> None:
    """The previous reservation was charged yesterday: putting it back must not
    count it in today's usage again."""
    settings = make_settings(tmp_path)
    clock = [NOW]
    handler, store = build_handler(settings, clock=lambda: clock[0])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        gh = RestMock(rsps)
        gh.app()
        gh.token()
        gh.workspace()
        gh.issue(webhook("issues.opened", **P0_HOTFIX)["issue"])
        expect_new_assignment(gh, "sonnet-4.5")
        outcome = handler.handle("issues", "d-1", webhook("issues.opened", **P0_HOTFIX))
        assert outcome.status == 200 and outcome.body["model"] == "sonnet-4.5"

        clock[0] = NOW + timedelta(days=1)
        with store.transaction(clock[0]):
            pass  # today's reset, as the next delivery would apply it
        before = store_text(settings.state_path)  # the journal grows; the state must not
        assert store.read().subscriptions["claude"].tokens_used_today == 0
        body = BIG_HOTFIX + "\nDepends on #7"
        now_on_issue = issue_fields([*P1_HOTFIX["labels"], "model:sonnet-4.5"], body)
        rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                     json=webhook("issues.opened", **now_on_issue)["issue"])
        gh.edit_comment(501, status=500)
        with pytest.raises(GitHubUnavailable):
            handler.handle("issues", "d-2", webhook("issues.labeled", label="P1", **P1_HOTFIX))
    assert store_text(settings.state_path) == before


def test_a_retry_after_too_long_answers_503(bot: Bot) -> None:
    # A new issue with no comment: the first write is its comment.
    bot.gh.rsps.post(
        f"https://api.github.com:443{ISSUE}/comments", status=403,
        headers={"Retry-After": "3600"},
        json={"message": "You have exceeded a secondary rate limit."},
    )
    mark = bot.mark()
    status, _ = bot.deliver(webhook("issues.opened", **P0_SMALL))
    assert status == 503
    assert bot.gh.summary()[mark:][-1:] == [("POST", f"{ISSUE}/comments")]  # asked once
    assert not bot.state().reservations


def test_a_per_repository_config_problem_is_reported_once_in_the_comment(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    app = create_app(make_settings(tmp_path), clock=lambda: NOW)
    gh = RestMock(rsps)
    gh.app()
    gh.token()
    gh.branch()
    gh.tree()
    gh.config("scoring:\n  priority_weights:\n    P0: lots\n")
    gh.issue(webhook("issues.opened", **P0_SMALL)["issue"])
    expect_new_assignment(gh, "glm-4.7")
    body = encode(webhook("issues.opened", **P0_SMALL))
    response = app.test_client().post("/webhook", data=body, headers=delivery_headers(body))
    assert response.status_code == 200
    answer = response.get_json()
    assert "priority_weights" in answer["config_problem"]
    comment = next(c.body["body"] for c in gh.calls() if c.method == "POST"
                   and c.url.endswith("/comments"))
    assert comment.count("settings were not used") == 1
    assert "priority_weights" in comment
