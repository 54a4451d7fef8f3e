"""An issue closed, deleted or transferred: its reservation released (not
planned, duplicate, gone) or settled (completed), and its record forgotten."""

from __future__ import annotations

import json
import logging

from model_assigner.bot.github.gateway import IssueGone
from model_assigner.bot.handling.event import GONE_ACTIONS, RELEASE_REASONS, IssueEvent, Outcome
from model_assigner.bot.handling.freshness import payload_is_latest
from model_assigner.bot.handling.parts import Parts, remember_only
from model_assigner.bot.store.state import Reservation, State

log = logging.getLogger("model_assigner.decisions")


def close(parts: Parts, event: IssueEvent, delivery: str | None) -> Outcome:
    gone = event.action in GONE_ACTIONS
    reason = event.state_reason
    updated_at = event.issue.get("updated_at")
    if not gone:
        # The same freshness rule as for assignments: a `closed` that is
        # not newer than what the issue was last decided from (one that
        # arrives after the `reopened`, or a signed close replayed under a
        # new delivery id) is checked against the issue on GitHub, and an
        # issue that is open there keeps its reservation.
        trace = parts.store.view(
            lambda state: (state.record(event.key), event.key in state.reservations)
        )
        if not payload_is_latest(event, trace):
            gateway = parts.gateway_for(event.installation_id)
            try:
                latest = gateway.get_issue(event.repo, event.number, event.issue)
            except IssueGone:
                return close(parts, event.as_deleted(), delivery)
            if latest.get("state") != "closed":
                remember_only(parts, delivery)
                return Outcome(
                    202, {"status": "ignored", "reason": "stale close: the issue is open"}
                )
            latest_reason = latest.get("state_reason")
            reason = latest_reason if isinstance(latest_reason, str) else None
            updated_at = latest.get("updated_at")
    now = parts.clock()
    released = gone or reason in RELEASE_REASONS

    def forget(state: State) -> Reservation | None:
        held = state.release(event.key) if released else state.settle(event.key)
        state.forget_issue(
            event.key,
            deleted=gone,
            updated_at=updated_at if isinstance(updated_at, str) else None,
        )
        if delivery:
            state.remember_delivery(delivery, now)
        return held

    held = parts.store.apply(now, forget)
    status = "released" if released else "settled"
    log.info(
        json.dumps(
            {"event": status, "delivery": delivery, "issue": event.key,
             "tokens": held.tokens if held else 0}
        )
    )
    return Outcome(200, {"status": status, "issue": event.key, "had_reservation": bool(held)})
