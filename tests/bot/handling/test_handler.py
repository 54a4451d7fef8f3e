"""What the handler does to an issue, told through an in-memory GitHub
(tests/bot/fake_gateway.py, like bedevere's FakeGH): the label and comment
an issue ends with, the reservation in the store, overrides, closing,
dependencies, redeliveries and deferrals. No HTTP: which REST calls carry
these writes is tested with ``responses`` in tests/bot/handling/test_write_back.py."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from model_assigner.bot.comment import MARKER
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.github.gateway import GitHubUnavailable, IssueGateway
from model_assigner.bot.github.repo_config import load_labels_config
from model_assigner.bot.handling.event import Outcome
from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.state import State
from tests.bot.fake_gateway import FakeGitHub
from tests.bot.support import BIG_HOTFIX, SMALL_BACKEND
from tests.helpers import seed_strategy_config

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
REPO = "octo/repo"
KEY = f"{REPO}#1"
BOT = "model-assigner[bot]"


class World:
    """A handler, its store, and the fake GitHub it writes to."""

    def __init__(self, tmp_path: Path, **github: object) -> None:
        config = seed_strategy_config()
        engine = load_engine_config(config)
        self.gh = FakeGitHub(REPO, bot=BOT, **github)  # type: ignore[arg-type]
        self.store = Store(tmp_path / "state.json", engine.quotas, lambda: NOW)
        self.deliveries = 0

        def gateway_for(installation: int | None) -> IssueGateway:
            return self.gh

        self.handler = Handler(
            engine, load_labels_config(config), self.store, gateway_for,
            lambda: BOT, lambda: NOW, tmp_path / "locks",
        )

    def deliver(self, action: str, number: int = 1, sender: str = "monalisa",
                label: str | None = None, delivery: str | None = None,
                as_of: str | None = None) -> Outcome:
        """``as_of``: the payload's ``updated_at`` (a delivery late to arrive)."""
        self.deliveries += 1
        payload = self.gh.payload(action, number, sender=sender, label=label)
        if as_of is not None:
            payload["issue"]["updated_at"] = as_of
        return self.handler.decide("issues", delivery or f"d-{self.deliveries}", payload)

    def state(self) -> State:
        return self.store.read()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def opened(world: World, number: int = 1, labels: tuple[str, ...] = ("P0", "backend"),
           body: str = SMALL_BACKEND) -> Outcome:
    world.gh.issue(number, labels=list(labels), body=body)
    return world.deliver("opened", number)


# -- a new issue ------------------------------------------------------------------


def test_a_new_issue_gets_one_model_label_one_comment_and_a_reservation(world: World) -> None:
    outcome = opened(world)
    assert outcome.status == 200, outcome.body
    assert outcome.body["status"] == "assigned" and outcome.body["model"] == "glm-4.7"
    assert world.gh.labels_of(1) == ["P0", "backend", "model:glm-4.7"]
    (comment,) = world.gh.bot_comments(1)
    assert comment.body.startswith(MARKER) and "### Model: `glm-4.7`" in comment.body
    held = world.state().reservations[KEY]
    assert held.model == "glm-4.7" and held.override_by is None
    # a new issue with no comment: written without listing the comments first
    assert ("find_comment", 1) not in world.gh.reads


def test_the_same_decision_again_writes_nothing(world: World) -> None:
    opened(world)
    written = list(world.gh.writes)
    world.gh.issue(1, title="A better title")  # an edit that changes no signal
    outcome = world.deliver("edited")
    assert outcome.status == 200 and outcome.body["model"] == "glm-4.7"
    assert world.gh.writes == written
    assert len(world.gh.bot_comments(1)) == 1


def test_a_changed_decision_edits_the_one_comment_and_swaps_the_label(world: World) -> None:
    opened(world)
    (first,) = world.gh.bot_comments(1)
    world.gh.issue(1, labels=["P0", "security", "hotfix", "model:glm-4.7"], body=BIG_HOTFIX)
    outcome = world.deliver("edited")
    assert outcome.body["model"] == "sonnet-4.5"
    (comment,) = world.gh.bot_comments(1)
    assert comment.id == first.id and "### Model: `sonnet-4.5`" in comment.body
    assert "model:glm-4.7" not in world.gh.labels_of(1)
    assert world.gh.labels_of(1)[-1] == "model:sonnet-4.5"
    assert world.state().reservations[KEY].model == "sonnet-4.5"  # replaced, not added


def test_a_redelivered_event_is_a_duplicate_and_writes_nothing(world: World) -> None:
    world.gh.issue(1, labels=["P0", "backend"], body=SMALL_BACKEND)
    first = world.deliver("opened", delivery="same-id")
    written, state = list(world.gh.writes), world.state()
    again = world.deliver("opened", delivery="same-id")
    assert first.body["status"] == "assigned"
    assert again.body == {"status": "duplicate", "delivery": "same-id"}
    assert world.gh.writes == written
    assert world.state().reservations == state.reservations


def test_the_apps_own_event_is_ignored(world: World) -> None:
    world.gh.issue(1, labels=["P0", "backend"], body=SMALL_BACKEND)
    outcome = world.deliver("labeled", sender=BOT, label="model:glm-4.7")
    assert outcome.body == {"status": "ignored", "reason": "our own event"}
    assert world.gh.writes == []


# -- deferral -----------------------------------------------------------------------


def test_low_value_work_is_deferred_with_its_label_and_no_reservation(world: World) -> None:
    outcome = opened(world, labels=("P4", "documentation"), body="Fix a typo in README.md")
    assert outcome.body["status"] == "deferred" and outcome.body["model"] is None
    assert world.gh.labels_of(1)[-1] == "model:deferred"
    (comment,) = world.gh.bot_comments(1)
    assert "### Model: deferred" in comment.body
    assert "**What would change it:**" in comment.body
    assert KEY not in world.state().reservations


def test_a_deferred_issue_lifted_by_a_priority_label_is_assigned(world: World) -> None:
    opened(world, labels=("P4", "documentation"), body="Fix a typo in README.md")
    world.gh.issue(1, labels=["P0", "backend", "model:deferred"], body=SMALL_BACKEND)
    outcome = world.deliver("labeled", label="P0")
    assert outcome.body["status"] == "assigned"
    assert "model:deferred" not in world.gh.labels_of(1)
    assert len(world.gh.bot_comments(1)) == 1


# -- a person's choice --------------------------------------------------------------


def test_a_persons_model_label_overrides_and_is_charged(world: World) -> None:
    opened(world)
    world.gh.person_labels(1, "model:opus-4.6")
    outcome = world.deliver("labeled", label="model:opus-4.6")
    assert outcome.body["status"] == "override" and outcome.body["model"] == "opus-4.6"
    assert "model:glm-4.7" not in world.gh.labels_of(1)
    assert "model:opus-4.6" in world.gh.labels_of(1)
    held = world.state().reservations[KEY]
    assert (held.model, held.override_by) == ("opus-4.6", "monalisa")
    (comment,) = world.gh.bot_comments(1)
    assert "set by monalisa with a label" in comment.body
    assert "model-assigner would have chosen `glm-4.7`" in comment.body


def test_a_model_label_from_someone_without_the_role_is_refused(tmp_path: Path) -> None:
    world = World(tmp_path, role="read")
    opened(world)
    world.gh.person_labels(1, "model:opus-4.6")
    outcome = world.deliver("labeled", label="model:opus-4.6")
    assert outcome.body["status"] == "assigned" and outcome.body["model"] == "glm-4.7"
    assert "choosing a model needs the" in outcome.body["override_refused"]
    assert world.state().reservations[KEY].override_by is None


# -- closing ------------------------------------------------------------------------


@pytest.mark.parametrize("why", ["not_planned", "duplicate"])
def test_closing_as_not_planned_releases_the_reservation(world: World, why: str) -> None:
    opened(world)
    spent = world.state().api_budget.spent_usd
    assert spent > 0
    world.gh.issue(1, state="closed", state_reason=why)
    outcome = world.deliver("closed")
    assert outcome.body == {"status": "released", "issue": KEY, "had_reservation": True}
    assert KEY not in world.state().reservations
    assert world.state().api_budget.spent_usd == pytest.approx(0.0)


def test_closing_as_completed_keeps_the_charge(world: World) -> None:
    opened(world)
    spent = world.state().api_budget.spent_usd
    world.gh.issue(1, state="closed", state_reason="completed")
    outcome = world.deliver("closed")
    assert outcome.body["status"] == "settled"
    assert world.state().api_budget.spent_usd == pytest.approx(spent)


def test_an_issue_gone_from_github_is_released(world: World) -> None:
    world.gh.issue(1, labels=["P0", "backend"], body=SMALL_BACKEND)
    decided_from = world.gh.issue_json(1)["updated_at"]  # before the bot's own writes
    assert world.deliver("opened").body["status"] == "assigned"
    world.gh.issue(1, gone=True)
    # a delivery no newer than what the issue was decided from: GitHub is asked
    outcome = world.deliver("edited", as_of=decided_from)
    assert outcome.body["status"] == "released"
    assert KEY not in world.state().reservations


# -- dependencies -------------------------------------------------------------------


def test_an_issue_others_depend_on_gets_the_blocking_bonus(world: World) -> None:
    alone = opened(world, labels=("P1", "frontend"), body="Estimated files: 3")
    world.gh.issue(2, labels=["P2"], body="Depends on #1")
    world.deliver("opened", number=2)
    assert world.state().dependencies[f"{REPO}#2"] == [KEY]
    world.gh.issue(1, title="touched")  # the next delivery for #1
    blocking = world.deliver("edited")
    assert blocking.body["value_score"] > alone.body["value_score"]


# -- a failed write-back ------------------------------------------------------------


def test_a_failed_write_back_leaves_the_store_as_it_was(world: World) -> None:
    world.gh.issue(1, labels=["P0", "backend"], body=SMALL_BACKEND)
    before = world.state()
    world.gh.fail = {"add_label"}
    with pytest.raises(GitHubUnavailable):
        world.deliver("opened", delivery="d-fail")
    after = world.state()
    assert after.reservations == before.reservations
    assert after.api_budget.spent_usd == before.api_budget.spent_usd
    # the comment it wrote is remembered, so the retry edits it instead of adding one
    world.gh.fail = set()
    outcome = world.deliver("opened", delivery="d-fail")
    assert outcome.body["status"] == "assigned"
    assert len(world.gh.bot_comments(1)) == 1
    assert world.gh.labels_of(1)[-1] == "model:glm-4.7"


def test_the_decision_log_names_the_reason_code(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Logs carry the code (a stable name), never a sentence."""
    with caplog.at_level(logging.INFO, logger="model_assigner.decisions"):
        opened(world)
    (line,) = [json.loads(r.getMessage()) for r in caplog.records
               if '"event": "decision"' in r.getMessage()]
    assert line["reason"] == "chosen_in_band" and line["model"] == "glm-4.7"
