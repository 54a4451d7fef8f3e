"""The entry point of webhook handling: ``Handler`` holds what every
behaviour works with and routes a delivery to one (triage.py, assign.py,
close.py), and is the one write-back path (write_back.py) for ``plan``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from model_assigner.bot.comment import Override
from model_assigner.bot.deadline import delivery_budget
from model_assigner.bot.github.gateway import IssueGateway
from model_assigner.bot.github.repo_config import LabelsConfig
from model_assigner.bot.handling import write_back
from model_assigner.bot.handling.assign import assign
from model_assigner.bot.handling.close import close
from model_assigner.bot.handling.event import GONE_ACTIONS, BadPayload, IssueEvent, Outcome
from model_assigner.bot.handling.triage import triage
from model_assigner.bot.locks import FileIssueLocks, IssueLocks
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import IssueRecord
from model_assigner.core.config import EngineConfig


class Handler:
    def __init__(
        self,
        engine: EngineConfig,
        labels: LabelsConfig,
        store: StateStore,
        gateway_for: Callable[[int | None], IssueGateway],
        bot_login: Callable[[], str],
        clock: Callable[[], datetime],
        lock_dir: Path,
        issue_locks: IssueLocks | None = None,
    ) -> None:
        self.engine = engine
        self.labels = labels
        self.store = store
        self.gateway_for = gateway_for
        self.bot_login = bot_login
        self.clock = clock
        self.lock_dir = lock_dir
        self.issue_locks = issue_locks or FileIssueLocks(lock_dir)

    def triage(
        self, event: str, delivery: str | None, payload: Mapping[str, Any],
        bot_login: str | None, check_store: bool = True,
    ) -> Outcome | IssueEvent:
        """What can be answered without GitHub: an Outcome (pong, ignored,
        refused, duplicate, our own event when ``bot_login`` is known), or
        the issue event to work on. The webhook asks this before queueing
        (without ``check_store``: the queue knows the ids it accepted, and a
        delivery the store already handled is found a duplicate by the
        worker, which asks again before deciding)."""
        return triage(self.store, event, delivery, payload, bot_login, check_store)

    def handle(self, event: str, delivery: str | None, payload: Mapping[str, Any]) -> Outcome:
        """Decide within GitHub's delivery window (the inline mode of unit
        tests: every GitHub call below fits in the budget)."""
        with delivery_budget():
            return self.decide(event, delivery, payload)

    def decide(self, event: str, delivery: str | None, payload: Mapping[str, Any]) -> Outcome:
        """Decide one delivery and write it back: the one path every decision
        takes (the queue's workers, the catch-up, and the inline mode)."""
        found = self.triage(event, delivery, payload, None)
        if isinstance(found, Outcome):
            return found
        parsed = found
        if parsed.sender is not None and parsed.sender == self.bot_login():
            return Outcome(202, {"status": "ignored", "reason": "our own event"})
        with self.issue_locks.hold(parsed.key):
            if delivery and self.store.seen_delivery(delivery):
                return Outcome(200, {"status": "duplicate", "delivery": delivery})
            if parsed.action in GONE_ACTIONS | {"closed"}:
                return close(self, parsed, delivery)
            try:
                return assign(self, parsed, delivery)
            except BadPayload as exc:
                return Outcome(400, {"error": f"not an issues event payload: {exc}"})

    def write_back(
        self,
        gateway: IssueGateway,
        event: IssueEvent,
        record: IssueRecord | None,
        body: str,
        labels_now: list[str],
        label: str,
        labels: LabelsConfig,
        override: Override | None,
        own: str | None,
        sent: list[IssueRecord] | None = None,
        fresh: bool = False,
    ) -> IssueRecord:
        """Write a decision back to its issue: the comment, then the labels
        (stale model labels off, the new one on last). The one function that
        writes decisions to GitHub, for the queue's workers, the catch-up (both
        through ``decide``) and ``plan --apply``; its requests go through the
        installation's gateway, and so through its rate policy."""
        return write_back.write_back(
            gateway, event, record, body, labels_now, label, labels, self.engine.models,
            override, own, sent, fresh,
        )
