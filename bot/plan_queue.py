"""``plan OWNER/REPO --apply`` through the delivery queue (issue 10, point 5).

The plan is read and reserved as before (bot/plan.py: GitHub read first, then
every reservation in one store update); then each planned issue becomes an
entry of its issue's job in the durable queue (event ``plan_write``), the
same job a webhook delivery for the issue joins: they coalesce, and the
newest state decides (a delivery newer than what the plan read replaces the
plan's entry and decides the issue again). A queue worker writes the entry
back through ``Handler.write_back`` and the installation's rate policy, as
it writes every decision, unless a delivery has re-decided the issue since
the plan reserved it. Rate limits are waited out in the queue, failures are
retried with back-off and end as dead letters after the usual attempts.

The command then reports progress (queued, decided, waiting on a rate limit,
dead) until every entry is decided or dead, running queue workers of its own
meanwhile (so it finishes with no server running); with ``--no-wait`` it
returns once the entries are queued, for the server's workers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from model_assigner.bot.comment import render_comment
from model_assigner.bot.github.repo_config import LabelsConfig
from model_assigner.bot.handling.event import IssueEvent, Outcome
from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.issue_task import issue_key, label_names
from model_assigner.bot.plan import (
    PlanLeft,
    RepoPlan,
    release_plan_reservation,
    release_unqueued,
    remember_written,
    still_ours,
    usage_of,
)
from model_assigner.bot.queue.jobs import JobQueue
from model_assigner.bot.queue.ratelimit import RateLimits
from model_assigner.bot.store.state import IssueRecord, Reservation
from model_assigner.bot.usage_comment import with_usage
from model_assigner.core.types import Decision

PLAN_EVENT = "plan_write"


def _dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json")


class PlanNotQueued(RuntimeError):
    """Queueing the plan's entries stopped part-way (the queue's database
    failing, SQLite's or PostgreSQL's, or Ctrl-C): the reservations of the
    entries not queued were given back, so no issue is left reserved with no
    label coming."""

    def __init__(self, queued: int, released: int, cause: BaseException) -> None:
        reason = str(cause) or type(cause).__name__
        super().__init__(
            f"plan --apply stopped while queueing ({reason}): {queued} issue(s) queued, "
            f"{released} reservation(s) released; run `plan --apply` again to finish")
        self.queued = queued
        self.released = released


def enqueue_plan(handler: Handler, queue: JobQueue, repo_plan: RepoPlan,
                 left: Mapping[str, PlanLeft], installation: int | None) -> dict[str, str]:
    """One ``plan_write`` entry per planned issue, in its issue's job;
    returns the delivery id of each issue's entry. If queueing stops
    part-way (any error, Ctrl-C included), the issues not queued get back
    what they held before the plan (release_unqueued), then PlanNotQueued
    says how many were queued and released.
    Should the process die before that, the catch-up sweep decides them
    (bot/queue/catchup.py: a record with no issue time and no model label
    on GitHub is undecided)."""
    queued: dict[str, str] = {}
    try:
        _enqueue(handler, queue, repo_plan, left, installation, queued)
    except (Exception, KeyboardInterrupt) as exc:
        released = release_unqueued(handler, left, queued)
        raise PlanNotQueued(len(queued), released, exc) from None
    return queued


def _enqueue(handler: Handler, queue: JobQueue, repo_plan: RepoPlan,
             left: Mapping[str, PlanLeft], installation: int | None,
             queued: dict[str, str]) -> None:
    labels = repo_plan.repo_config.labels
    for decision in repo_plan.plan.decisions:
        key = decision.task_id
        issue = repo_plan.issues[key]
        ours = left[key]
        label = labels.model_label(decision.model) if decision.model else labels.deferred_label
        body = with_usage(
            render_comment(decision, label, None, repo_plan.repo_config.problem,
                           repo_plan.repo_config.refused),
            handler.store.view(partial(usage_of, key)),
        )
        stamp = f"{key}@{issue.get('updated_at')}@{time.time()}".encode()
        delivery = "plan-" + hashlib.sha1(stamp).hexdigest()
        number = issue.get("number")
        payload = {
            "action": "plan",
            "repository": {"full_name": repo_plan.repo},
            "issue": issue,
            "installation": {"id": installation} if installation is not None else None,
            "plan": {
                "label": label, "body": body, "labels": _dump(labels),
                "decision": _dump(decision), "reservation": _dump(ours.reservation),
                "mark": _dump(ours.mark), "previous": _dump(ours.previous),
                "held": _dump(ours.held),
            },
        }
        queue.accept(delivery, PLAN_EVENT, payload,
                     issue_key(repo_plan.repo, int(number)) if isinstance(number, int) else key,
                     installation)
        queued[key] = delivery


def plan_write_task(handler: Handler) -> Callable[[str, dict[str, Any]], Outcome]:
    """The queue worker's task for ``plan_write`` entries: the plan's
    decision written back, under the issue's lock, unless a delivery
    re-decided the issue since the plan reserved it."""

    def run(delivery: str, payload: dict[str, Any]) -> Outcome:
        plan = payload["plan"]
        repo = str(payload["repository"]["full_name"])
        issue = dict(payload["issue"])
        key = issue_key(repo, int(issue["number"]))
        installation = (payload.get("installation") or {}).get("id")
        previous = (IssueRecord.model_validate(plan["previous"])
                    if plan.get("previous") is not None else None)
        ours = PlanLeft(
            Reservation.model_validate(plan["reservation"])
            if plan.get("reservation") is not None else None,
            IssueRecord.model_validate(plan["mark"]), previous,
            Reservation.model_validate(plan["held"])
            if plan.get("held") is not None else None,
        )
        label = str(plan["label"])
        labels = LabelsConfig.model_validate(plan["labels"])
        decision = Decision.model_validate(plan["decision"])
        if not isinstance(installation, int):
            # Not a GitHub App's entry: no gateway can write it, and retrying
            # cannot help. What the plan reserved for it goes back.
            handler.store.apply(handler.clock(), partial(release_plan_reservation, key, ours))
            return Outcome(400, {"error": "plan entry without an installation: not written, "
                                 "its reservation released", "issue": key, "via": "plan"})
        gateway = handler.gateway_for(installation)
        event = IssueEvent.parse(
            {"action": "edited", "repository": {"full_name": repo}, "issue": issue}
        )
        with handler.issue_locks.hold(key):
            if not handler.store.view(partial(still_ours, key, ours)):
                # The delivery that re-decided it holds the reservation now
                # (still_ours compares it): nothing of the plan's is left.
                return Outcome(200, {"status": "left alone", "issue": key, "via": "plan",
                                     "reason": "a delivery re-decided it since the plan"})
            record = handler.write_back(
                gateway, event, previous, str(plan["body"]), label_names(issue), label, labels,
                None, previous.label if previous is not None else None,
            )
            remember_written(handler, key, record, label, decision)
        status = "deferred" if decision.model is None else "assigned"
        return Outcome(200, {"status": status, "issue": key, "model": decision.model,
                             "label": label, "via": "plan"})

    return run


@dataclass(frozen=True)
class Progress:
    total: int
    decided: int
    waiting: int
    rate_limited: int
    dead: int
    limited_until: float = 0.0

    @property
    def done(self) -> bool:
        return self.decided + self.dead >= self.total

    def line(self) -> str:
        text = (f"{self.total} queued: {self.decided} decided, {self.waiting} waiting, "
                f"{self.rate_limited} waiting on a rate limit")
        if self.limited_until:
            text += f" (until {time.strftime('%H:%M:%S', time.gmtime(self.limited_until))} UTC)"
        return text + f", {self.dead} dead"


def progress_of(queue: JobQueue, limiter: RateLimits, queued: Mapping[str, str],
                installation: int | None, decided_keys: set[str] | None = None) -> Progress:
    """Where the plan's entries are: decided (an outcome is recorded for
    the entry, or for the delivery that replaced it), dead, waiting for the
    installation's rate limit (GitHub's, or the policy's next slot), waiting.
    ``decided_keys`` (kept by the caller between calls) spares reading the
    outcome of an entry again once it is decided."""
    known = decided_keys if decided_keys is not None else set()
    jobs = {info.key: info for info in queue.jobs()}
    until = limiter.blocked_until(installation) if installation is not None else 0.0
    now = time.time()
    decided = dead = limited = waiting = 0
    for key, delivery in queued.items():
        if key in known or queue.outcome(delivery) is not None:
            known.add(key)
            decided += 1
            continue
        info = jobs.get(key)
        if info is None:  # its job finished between the two reads
            if queue.outcome(delivery) is not None:
                decided += 1
            else:
                waiting += 1
        elif info.state == "dead":
            dead += 1
        elif until or (info.not_before > now and "rate" in (info.last_error or "")):
            limited += 1
        else:
            waiting += 1
    return Progress(len(queued), decided, waiting, limited, dead, until)


def wait_for_plan(queue: JobQueue, limiter: RateLimits, queued: Mapping[str, str],
                  installation: int | None, report: Callable[[str], None],
                  poll: float = 0.5, heartbeat: float = 15.0) -> Progress:
    """Report progress until every entry is decided or dead: a line when
    the counts change, and every ``heartbeat`` seconds while they do not."""
    last_line, last_time = "", 0.0
    decided: set[str] = set()
    while True:
        progress = progress_of(queue, limiter, queued, installation, decided)
        line = progress.line()
        if line != last_line or time.monotonic() - last_time >= heartbeat:
            report(line)
            last_line, last_time = line, time.monotonic()
        if progress.done:
            return progress
        time.sleep(poll)
