"""When the delivery's payload is the issue's latest state, and when GitHub
must be asked (bot/handling/freshness.py, latest_issue): the payload is used
when it is newer than the state the issue was last decided or closed from,
or for an issue the store has no trace of; an older or equal payload, or an
issue whose last delivery did not finish, is read from GitHub."""

from __future__ import annotations

from typing import Any

import responses

from model_assigner.bot.store.state import IssueRecord
from model_assigner.core.types import Payment
from tests.bot.handler_support import (
    ISSUE,
    KEY,
    P0_HOTFIX,
    P0_SMALL,
    Bot,
    assign,
    labelled,
    seed_reservation,
)
from tests.bot.support import BIG_HOTFIX, SMALL_BACKEND, issue_fields, webhook
from tests.helpers import store_text

GET_ISSUE = ("GET", ISSUE)


def edited(updated_at: str, labels: list[str], body: str = SMALL_BACKEND) -> dict[str, Any]:
    payload = webhook("issues.edited", **issue_fields(labels, body))
    payload["issue"]["updated_at"] = updated_at
    return payload


def reads_issue(bot: Bot, mark: int) -> bool:
    return GET_ISSUE in [(c.method, c.url) for c in bot.calls_since(mark)]


def test_a_newer_payload_is_decided_without_reading_the_issue(bot: Bot) -> None:
    assign(bot, P0_SMALL, "glm-4.7")  # decided at the fixture's updated_at (15:20:18)
    assert bot.state().records[KEY].issue_updated_at == "2019-05-15T15:20:18Z"
    # GitHub would say something else; the newer payload is what counts.
    bot.gh.rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                        json=labelled(P0_SMALL, "model:glm-4.7"))
    bot.gh.edit_comment(501)
    bot.gh.remove_label(1, "model%3Aglm-4.7")
    bot.gh.create_label("model:sonnet-4.5", "6f42c1", "model-assigner: model for this issue")
    bot.gh.add_labels(1, ["model:sonnet-4.5"])
    mark = bot.mark()
    status, answer = bot.deliver(
        edited("2019-05-15T15:21:00Z", ["P0", "security", "hotfix", "model:glm-4.7"], BIG_HOTFIX)
    )
    assert (status, answer["model"]) == (200, "sonnet-4.5")
    assert not reads_issue(bot, mark)
    assert bot.state().records[KEY].issue_updated_at == "2019-05-15T15:21:00Z"


def test_an_older_or_equal_payload_reads_the_issue(bot: Bot) -> None:
    assign(bot, P0_SMALL, "glm-4.7")
    bot.gh.rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                        json=labelled(P0_SMALL, "model:glm-4.7"))
    for stamp in ("2019-05-15T15:20:18Z", "2019-05-15T15:00:00Z", "not a time", None):
        mark = bot.mark()
        payload = edited("x", ["P2"])  # stale: a priority GitHub no longer has
        payload["issue"]["updated_at"] = stamp
        status, answer = bot.deliver(payload)
        assert (status, answer["model"]) == (200, "glm-4.7"), stamp  # GitHub's state
        assert reads_issue(bot, mark), stamp


def test_an_issue_whose_last_delivery_did_not_finish_is_read(bot: Bot) -> None:
    """A crash between the reservation and its record leaves the record
    without a time (the reservation step clears it): the next delivery,
    however new, reads the issue, which may hold what the crashed one wrote."""
    assign(bot, P0_SMALL, "glm-4.7")
    with bot.store.transaction(bot.clock[0]) as state:
        state.records[KEY] = state.records[KEY].model_copy(update={"issue_updated_at": None})
    bot.gh.rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                        json=labelled(P0_SMALL, "model:glm-4.7"))
    mark = bot.mark()
    assert bot.deliver(edited("2030-01-01T00:00:00Z", ["P0", "backend"]))[0] == 200
    assert reads_issue(bot, mark)


def test_a_reservation_without_a_record_is_a_trace(bot: Bot) -> None:
    seed_reservation(bot, KEY, "glm-4.7",
                     Payment(kind="api", family="zhipu", tokens=31000, cost_usd=0.0242))
    bot.gh.issue(labelled(P0_SMALL, "model:glm-4.7"))
    bot.gh.comments(1, [])
    bot.gh.create_comment(1)
    mark = bot.mark()
    status, answer = bot.deliver(webhook("issues.opened", **P0_SMALL))
    assert (status, answer["status"]) == (200, "assigned")  # not taken for a person's label
    assert reads_issue(bot, mark)


def test_the_reservation_step_marks_the_record_until_the_delivery_is_recorded(
    bot: Bot,
) -> None:
    """A failed write-back puts the record back as it was (byte for byte);
    a finished delivery stores the time it decided from."""
    assign(bot, P0_HOTFIX, "sonnet-4.5")
    before = store_text(bot.state_path)  # the store as one document (the journal grows)
    record = bot.state().records[KEY]
    bot.gh.rsps.replace(responses.GET, f"https://api.github.com:443{ISSUE}",
                        json=labelled(P0_SMALL, "model:sonnet-4.5"))
    bot.gh.edit_comment(501, status=500)
    payload = edited("2019-05-15T15:25:00Z", ["P0", "backend", "model:sonnet-4.5"])
    assert bot.deliver(payload)[0] == 503
    assert store_text(bot.state_path) == before
    assert bot.state().records[KEY] == record
    assert isinstance(record, IssueRecord) and record.issue_updated_at is not None
