"""The write-back (bot/handling/write_back.py) through the webhook app: one
comment and one label per decision, edited in place, stale model labels
off. The app runs with a real store in tmp_path and GitHub answered by
`responses` with exactly the REST calls PyGithub makes, fed with GitHub's
documented webhook payloads (tests/bot/handler_support.py)."""

from __future__ import annotations

import pytest
import responses

from model_assigner.bot.comment import MARKER
from model_assigner.core.types import Payment
from tests.bot.handler_support import (
    DEFERRED_COLOR,
    DEFERRED_DESCRIPTION,
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
    labelled,
    reads,
    seed_reservation,
    with_comments,
)
from tests.bot.support import (
    BOT,
    REPO,
    SMALL_BACKEND,
    issue_fields,
    webhook,
)


def test_opened_issue_gets_one_label_and_one_comment(bot: Bot) -> None:
    payload = webhook("issues.opened", **P0_SMALL)
    bot.gh.issue(payload["issue"])
    expect_new_assignment(bot.gh, "glm-4.7")

    status, answer = bot.deliver(payload, delivery="d-1")

    assert status == 200
    assert answer == {
        "status": "assigned",
        "issue": KEY,
        "model": "glm-4.7",
        "label": "model:glm-4.7",
        "value_score": 44.0,
        "tokens": 31000,
        "paid_by": "api",
        "dry_run": False,
    }
    calls = bot.gh.calls()
    # A new issue: its payload is its latest state (no GET of the issue), and
    # it has no comment at all, of which the store has no trace: the comment
    # is written without listing the issue's comments first.
    assert [(c.method, c.url) for c in calls] == [
        *reads(issue_read=False),
        ("POST", f"{ISSUE}/comments"),
        ("POST", f"/repos/{REPO}/labels"),
        ("POST", f"{ISSUE}/labels"),
    ]
    assert calls[-2].body == {
        "name": "model:glm-4.7", "color": MODEL_COLOR, "description": MODEL_DESCRIPTION
    }
    assert calls[-1].body == ["model:glm-4.7"]
    comment = calls[-3].body["body"]
    assert comment.startswith(MARKER)
    assert "### Model: `glm-4.7`" in comment
    assert "**Value score: 44.0/100**" in comment
    assert "| term | value | signal |" in comment
    assert "31,000" in comment and "API budget" in comment

    state = bot.state()
    held = state.reservations[KEY]
    assert (held.model, held.tokens, held.payment.kind, held.override_by) == (
        "glm-4.7", 31000, "api", None
    )
    assert state.api_budget.spent_usd == pytest.approx(held.cost_usd)
    assert state.subscriptions["claude"].tokens_used_month == 0
    assert state.records[KEY].id == 501
    assert "d-1" in state.deliveries


def test_an_unchanged_decision_writes_nothing(bot: Bot) -> None:
    assign(bot, P0_SMALL, "glm-4.7")
    bot.gh.rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                        json=labelled(P0_SMALL, "model:glm-4.7"))
    mark = bot.mark()
    status, answer = bot.deliver(webhook("issues.edited", **P0_SMALL), delivery="d-2")
    assert status == 200 and answer["model"] == "glm-4.7"
    # The token, the tree and the config are cached; the label is there; the
    # comment's text is the same: only the issue's latest state is read.
    assert [(c.method, c.url) for c in bot.calls_since(mark)] == reads(first=False)
    assert bot.state().reservations[KEY].tokens == 31000
    assert bot.state().api_budget.spent_usd == pytest.approx(0.0242)


def test_the_comment_found_by_its_marker_is_edited_in_place(bot: Bot) -> None:
    bot.gh.issue(with_comments(webhook("issues.opened", **P0_SMALL), 2)["issue"])
    bot.gh.comments(1, [(11, "Codertocat", "Me too"), (12, BOT, f"{MARKER}\nan old decision")])
    bot.gh.edit_comment(12)
    bot.gh.create_label("model:glm-4.7", MODEL_COLOR, MODEL_DESCRIPTION, status=422)
    bot.gh.add_labels(1, ["model:glm-4.7"])

    status, _ = bot.deliver(with_comments(webhook("issues.opened", **P0_SMALL), 2))

    assert status == 200
    calls = bot.gh.calls()
    assert [(c.method, c.url) for c in calls[len(reads(issue_read=False)):]] == [
        ("GET", f"{ISSUE}/comments"),
        ("PATCH", f"/repos/{REPO}/issues/comments/12"),
        ("POST", f"/repos/{REPO}/labels"),
        ("POST", f"{ISSUE}/labels"),
    ]
    assert "### Model: `glm-4.7`" in calls[len(reads(issue_read=False)) + 1].body["body"]
    assert bot.state().records[KEY].id == 12


def test_a_marked_comment_with_the_same_text_is_not_edited(bot: Bot) -> None:
    assign(bot, P0_SMALL, "glm-4.7")
    text = next(c.body["body"] for c in bot.gh.calls()
                if c.method == "POST" and c.url.endswith("/comments"))
    with bot.store.transaction(NOW) as state:
        del state.records[KEY]  # the record is lost: the comment is found by its marker
    rsps = bot.gh.rsps
    rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}/comments", json=[
        {"id": 11, "body": "Me too", "user": {"login": "Codertocat", "type": "User"}},
        {"id": 501, "body": text, "user": {"login": BOT, "type": "Bot"}},
    ])
    rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                 json={**labelled(P0_SMALL, "model:glm-4.7"), "comments": 2})
    mark = bot.mark()

    status, _ = bot.deliver(webhook("issues.edited", **P0_SMALL))

    assert status == 200
    assert [(c.method, c.url) for c in bot.calls_since(mark)] == [
        *reads(first=False), ("GET", f"{ISSUE}/comments")
    ]
    assert bot.state().records[KEY].id == 501


def test_a_deleted_comment_is_written_again(bot: Bot) -> None:
    assign(bot, P1_HOTFIX, "deepseek-v3")
    bot.gh.rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                        json=labelled(P0_HOTFIX, "model:deepseek-v3"))
    bot.gh.edit_comment(501, status=404)  # someone deleted the bot's comment
    bot.gh.rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}/comments", json=[])
    bot.gh.create_comment(1, comment_id=502)
    bot.gh.remove_label(1, "model%3Adeepseek-v3")
    bot.gh.create_label("model:sonnet-4.5", MODEL_COLOR, MODEL_DESCRIPTION)
    bot.gh.add_labels(1, ["model:sonnet-4.5"])
    mark = bot.mark()

    status, answer = bot.deliver(webhook("issues.labeled", label="P0", **P0_HOTFIX))

    assert (status, answer["model"]) == (200, "sonnet-4.5")
    assert [(c.method, c.url) for c in bot.calls_since(mark)][1:] == [
        ("PATCH", f"/repos/{REPO}/issues/comments/501"),
        ("GET", f"{ISSUE}/comments"),
        ("POST", f"{ISSUE}/comments"),
        ("DELETE", f"{ISSUE}/labels/model%3Adeepseek-v3"),
        ("POST", f"/repos/{REPO}/labels"),
        ("POST", f"{ISSUE}/labels"),
    ]
    assert bot.state().records[KEY].id == 502


def test_stale_model_labels_are_removed_and_the_old_reservation_replaced(bot: Bot) -> None:
    seed_reservation(bot, KEY, "gpt-4", Payment(kind="api", family="openai", tokens=9000,
                                                 cost_usd=0.5))
    assert bot.state().api_budget.spent_usd == 0.5
    issue = issue_fields(["P0", "backend", "model:gpt-4", "model:deferred"], SMALL_BACKEND)
    bot.gh.issue(webhook("issues.opened", **issue)["issue"])
    bot.gh.comments(1, [])
    bot.gh.create_comment(1)
    bot.gh.remove_label(1, "model%3Agpt-4")
    bot.gh.remove_label(1, "model%3Adeferred")
    bot.gh.create_label("model:glm-4.7", MODEL_COLOR, MODEL_DESCRIPTION, status=422)
    bot.gh.add_labels(1, ["model:glm-4.7"])

    status, answer = bot.deliver(webhook("issues.edited", **issue))

    assert (status, answer["status"], answer["model"]) == (200, "assigned", "glm-4.7")
    assert [(c.method, c.url) for c in bot.gh.calls() if c.method in ("DELETE", "POST")][1:] == [
        ("POST", f"{ISSUE}/comments"),
        ("DELETE", f"{ISSUE}/labels/model%3Agpt-4"),
        ("DELETE", f"{ISSUE}/labels/model%3Adeferred"),
        ("POST", f"/repos/{REPO}/labels"),
        ("POST", f"{ISSUE}/labels"),
    ]
    state = bot.state()
    assert state.reservations[KEY].model == "glm-4.7"
    assert state.api_budget.spent_usd == pytest.approx(state.reservations[KEY].cost_usd)


def test_a_deferred_task_gets_the_deferred_label_and_releases_its_quota(bot: Bot) -> None:
    # The documented payload as it is: label `bug`, a milestone due in 2019,
    # no estimates: low value, deferred.
    seed_reservation(bot, KEY, "glm-4.7", Payment(kind="api", family="zhipu", tokens=31000,
                                                   cost_usd=0.0242))
    payload = webhook("issues.opened")
    issue = dict(payload["issue"])
    issue["labels"] = [*issue["labels"], *webhook("issues.opened", labels=["model:glm-4.7"])[
        "issue"]["labels"]]
    bot.gh.issue(issue)
    bot.gh.comments(1, [])
    bot.gh.create_comment(1)
    bot.gh.remove_label(1, "model%3Aglm-4.7")
    bot.gh.create_label("model:deferred", DEFERRED_COLOR, DEFERRED_DESCRIPTION)
    bot.gh.add_labels(1, ["model:deferred"])

    status, answer = bot.deliver(payload)

    assert (status, answer["status"], answer["model"], answer["label"]) == (
        200, "deferred", None, "model:deferred"
    )
    writes = [c for c in bot.gh.calls() if c.method in ("POST", "DELETE")][1:]
    assert [(c.method, c.url) for c in writes] == [
        ("POST", f"{ISSUE}/comments"),
        ("DELETE", f"{ISSUE}/labels/model%3Aglm-4.7"),
        ("POST", f"/repos/{REPO}/labels"),
        ("POST", f"{ISSUE}/labels"),
    ]
    comment = writes[0].body["body"]
    assert "### Model: deferred" in comment and "**What would change it:**" in comment
    state = bot.state()
    assert KEY not in state.reservations
    assert state.api_budget.spent_usd == 0.0
