"""What a delivery needs no GitHub call for: pong, ignored, refused,
duplicate, our own event; else the issue event to work on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from model_assigner.bot.handling.event import (
    ASSIGN_ACTIONS,
    GONE_ACTIONS,
    BadPayload,
    IssueEvent,
    Outcome,
)
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import DELIVERY_ID


def triage(
    store: StateStore, event: str, delivery: str | None, payload: Mapping[str, Any],
    bot_login: str | None, check_store: bool = True,
) -> Outcome | IssueEvent:
    """An Outcome, or the issue event to work on; ``bot_login`` when known
    finds our own events; ``check_store``: whether the store is asked if the
    delivery was handled already (see Handler.triage)."""
    if event == "ping":
        return Outcome(200, {"status": "pong"})
    if event != "issues":
        return Outcome(202, {"status": "ignored", "reason": f"event {event!r} is not handled"})
    try:
        parsed = IssueEvent.parse(payload)
    except BadPayload as exc:
        return Outcome(400, {"error": f"not an issues event payload: {exc}"})
    if parsed.action not in ASSIGN_ACTIONS | GONE_ACTIONS | {"closed"}:
        return Outcome(202, {"status": "ignored", "reason": f"action {parsed.action!r}"})
    if delivery is not None and not DELIVERY_ID.fullmatch(delivery):
        # Not signed: only GitHub's shape may reach the store.
        return Outcome(400, {"error": "X-GitHub-Delivery: not a delivery id"})
    if check_store and delivery and store.seen_delivery(delivery):
        return Outcome(200, {"status": "duplicate", "delivery": delivery})
    if bot_login is not None and parsed.sender is not None and parsed.sender == bot_login:
        return Outcome(202, {"status": "ignored", "reason": "our own event"})
    return parsed
