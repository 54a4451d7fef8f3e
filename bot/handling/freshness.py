"""Whether a delivery's payload is the issue's latest state, or the issue
must be read from GitHub (both for deciding and for closing)."""

from __future__ import annotations

from typing import Any

from model_assigner.bot.github.gateway import IssueGateway
from model_assigner.bot.handling.event import IssueEvent
from model_assigner.bot.store.state import IssueRecord, issue_time

# What the store knows of an issue: its record, and whether it holds a reservation.
Trace = tuple[IssueRecord | None, bool]


def payload_is_latest(event: IssueEvent, trace: Trace) -> bool:
    """Whether the payload may stand for the issue's latest state (see
    latest_issue): newer than what the store knows, or no trace at all."""
    record, reserved = trace
    payload_time = issue_time(event.issue.get("updated_at"))
    if payload_time is None:
        return False
    if record is None:
        return not reserved
    seen = issue_time(record.issue_updated_at)
    return seen is not None and payload_time > seen


def latest_issue(gateway: IssueGateway, event: IssueEvent, trace: Trace) -> dict[str, Any]:
    """The issue's latest state. The payload is that state when it is newer
    than the state the issue was last decided (or closed) from, or when
    the store has no trace of the issue at all (its first delivery).
    Otherwise the issue is read from GitHub: a delivery handled out of
    order, or one of a burst within the same second (GitHub's
    ``updated_at`` has whole seconds), carries a payload that is not
    newer; and after a delivery that did not finish (a crash between the
    reservation and its record), what is on GitHub may differ from every
    payload. Deliveries handled in order, the usual case, cost no read."""
    if payload_is_latest(event, trace):
        return dict(event.issue)
    return gateway.get_issue(event.repo, event.number, event.issue)


def known_time(value: object) -> str | None:
    """A payload's ``updated_at`` as the store keeps it: only a real time."""
    return value if isinstance(value, str) and issue_time(value) is not None else None
