"""A person's model label (bot/handling/override.py), through the webhook
app with GitHub answered by `responses` (tests/bot/handler_support.py)."""

from __future__ import annotations

import responses

from tests.bot.handler_support import (
    ISSUE,
    KEY,
    P0_SMALL,
    Bot,
    assign,
    closed_small,
    labelled,
    reads,
)
from tests.bot.support import (
    PERSON,
    SMALL_BACKEND,
    issue_fields,
    webhook,
)


def test_a_persons_model_label_is_an_override(bot: Bot) -> None:
    issue = issue_fields(["P2", "backend", "model:opus-4.6"], SMALL_BACKEND)
    bot.gh.issue(webhook("issues.opened", **issue)["issue"])
    bot.gh.comments(1, [])
    bot.gh.create_comment(1)

    status, answer = bot.deliver(
        webhook("issues.labeled", sender=PERSON, label="model:opus-4.6", **issue)
    )

    assert (status, answer["status"], answer["model"]) == (200, "override", "opus-4.6")
    writes = [c for c in bot.gh.calls() if c.method in ("POST", "DELETE", "PATCH")][1:]
    assert [(c.method, c.url) for c in writes] == [("POST", f"{ISSUE}/comments")]
    body = writes[0].body["body"]
    assert f"(set by {PERSON} with a label)" in body and f"@{PERSON}" not in body
    held = bot.state().reservations[KEY]
    assert (held.model, held.override_by, held.payment.kind) == ("opus-4.6", PERSON,
                                                                  "subscription")
    assert bot.state().subscriptions["claude"].tokens_used_month == held.tokens

    # Someone else edits the issue later: the override and who chose it stay.
    mark = bot.mark()
    status, answer = bot.deliver(webhook("issues.edited", sender="hubot", **issue))
    assert (status, answer["status"]) == (200, "override")
    assert bot.state().reservations[KEY].override_by == PERSON
    assert [(c.method, c.url) for c in bot.calls_since(mark)] == reads(first=False)


def test_a_persons_label_for_a_model_outside_the_catalog_is_kept_unreserved(bot: Bot) -> None:
    issue = issue_fields(["P0", "backend", "model:my-local-llm"], SMALL_BACKEND)
    bot.gh.issue(webhook("issues.opened", **issue)["issue"])
    bot.gh.comments(1, [])
    bot.gh.create_comment(1)

    status, answer = bot.deliver(
        webhook("issues.labeled", sender=PERSON, label="model:my-local-llm", **issue)
    )

    assert (status, answer["status"], answer["label"]) == (200, "override", "model:my-local-llm")
    assert answer["model"] is None and answer["paid_by"] is None
    writes = [c for c in bot.gh.calls() if c.method in ("POST", "DELETE", "PATCH")][1:]
    assert [(c.method, c.url) for c in writes] == [("POST", f"{ISSUE}/comments")]
    assert "is not in the model catalog" in writes[0].body["body"]
    assert not bot.state().reservations


def test_a_reopened_issue_is_reassigned_not_taken_for_an_override(bot: Bot) -> None:
    assign(bot, P0_SMALL, "glm-4.7")
    assert bot.deliver(closed_small("not_planned"))[1]["status"] == "released"
    bot.gh.rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                        json=labelled(P0_SMALL, "model:glm-4.7"))
    bot.gh.edit_comment(501)
    status, answer = bot.deliver(webhook("issues.reopened", **P0_SMALL))
    assert (status, answer["status"]) == (200, "assigned")
