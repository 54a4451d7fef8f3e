"""Deciding an issue event: the order of work, and why.

1. Serialize on the issue (a file lock shared by all workers, held by
   Handler.decide): a new issue with labels and a milestone arrives as
   several deliveries at once, and they must end as one label, one comment
   and one reservation.
2. Decide from the issue's latest state: the delivery's payload when it is
   newer than the state the issue was last decided (or closed) from, else the
   issue read from GitHub (the payload of an early delivery may already be
   stale when a later one was handled first); see freshness.py.
3. Reserve quota in the store (replacing the issue's previous reservation), so
   two issues can never both spend the same last tokens. The issues known to
   depend on this one (its dependents) count in its score, and its own
   dependencies are kept with the reservation.
4. Write the comment, then the labels (write_back.py). If GitHub fails, undo
   exactly what step 3 changed and answer 5xx: the store is as before the
   delivery, and GitHub's redelivery starts clean. The order matters: a
   `model:*` label that is on the issue but not in the store reads as a
   person's override, so the bot's own label must never be left behind by a
   failed delivery.
5. Only then record the delivery id as handled: a crash before this point makes
   a redelivery redo the work, which replaces (never adds to) the reservation.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from model_assigner.bot.comment import Override, render_comment
from model_assigner.bot.github.gateway import GitHubUnavailable, IssueGone
from model_assigner.bot.github.repo_config import EffectiveConfig, effective_config
from model_assigner.bot.handling.close import close
from model_assigner.bot.handling.event import IssueEvent, Outcome
from model_assigner.bot.handling.freshness import known_time, latest_issue
from model_assigner.bot.handling.override import (
    model_override,
    override_decision,
    sender_may_choose,
)
from model_assigner.bot.handling.parts import Parts
from model_assigner.bot.handling.repository_share import repository_ledger
from model_assigner.bot.handling.write_back import write_back
from model_assigner.bot.issue_task import MAX_BODY_CHARS, issue_to_task, label_names, parse_blocks
from model_assigner.bot.store.state import IssueRecord, Reservation, ReservationStep, State
from model_assigner.bot.usage_comment import with_usage
from model_assigner.bot.usage_store import calibrated, note_decision
from model_assigner.core.assessment import Assessment, assess
from model_assigner.core.batch import plan_assessed
from model_assigner.core.idle import idle_reasons
from model_assigner.core.online_history import history_start, observation_of
from model_assigner.core.reasons import Reason
from model_assigner.core.types import Decision, Observation, Task
from model_assigner.core.usage import estimate_class
from model_assigner.core.wording import text

log = logging.getLogger("model_assigner.decisions")

# Scoring runs outside the store's lock; when another delivery changes, in
# between, whether this issue blocks another, it is scored again, this many
# times at most (then the last score stands: the next delivery corrects it).
SCORING_ATTEMPTS = 3


class _Reserved(NamedTuple):
    """What the reservation step decided, and how to undo it."""

    decision: Decision
    override: Override | None
    record: IssueRecord | None
    step: ReservationStep
    refusal: Reason | None  # a person's model label not honoured, and why


def _history(state: State, key: str, strategy: str, now: datetime) -> list[Observation]:
    """The online strategy's history for a decision on ``key``: the issues
    seen this period and the last but this one. Only ``online`` reads it, so
    no other strategy reads it at all (on PostgreSQL, a decision's cost does
    not grow with how many issues were seen)."""
    if strategy != "online":
        return []
    return state.history_since(history_start(state.ledger(), now), key)


def assign(parts: Parts, event: IssueEvent, delivery: str | None) -> Outcome:
    gateway = parts.gateway_for(event.installation_id)
    trace = parts.store.view(
        lambda state: (state.record(event.key), event.key in state.reservations)
    )
    try:
        issue = latest_issue(gateway, event, trace)
    except IssueGone:
        return close(parts, event.as_deleted(), delivery)
    if issue.get("state") == "closed":
        return Outcome(202, {"status": "ignored", "reason": "the issue is closed"})
    workspace = gateway.workspace(event.repo, event.default_branch)
    repo_config = effective_config(
        gateway.repo_config_text(event.repo, workspace.commit_sha),
        parts.engine.scoring,
        parts.labels,
        parts.engine.catalog,
    )
    now = parts.clock()
    labels_now = label_names(issue)
    body = issue.get("body")
    own_blocks = isinstance(body, str) and bool(
        parse_blocks(body[:MAX_BODY_CHARS], event.repo, event.key)
    )
    sender_may = sender_may_choose(
        gateway, event, labels_now, repo_config.labels, parts.labels.override_min_permission
    )
    reserved: _Reserved | None = None
    for attempt in range(SCORING_ATTEMPTS):
        # Scored here, outside the store's lock (a repository's config and
        # an issue's body decide what scoring costs; no other repository's
        # delivery waits for it), from the issues known to depend on this
        # one; the lock is then held only to charge.
        dependents = parts.store.view(lambda state: state.dependents_of(event.key))
        task = issue_to_task(
            issue, event.repo, repo_config.labels, workspace.file_count, dependents
        )
        # Token estimates corrected by what finished issues reported.
        scoring = parts.store.view(lambda state: calibrated(state, repo_config.scoring))
        assessment = assess(task, scoring, now)
        check = None if attempt == SCORING_ATTEMPTS - 1 else own_blocks
        reserved = parts.store.apply(
            now,
            functools.partial(
                _reserve, parts=parts, event=event, task=task, assessment=assessment,
                labels_now=labels_now, repo_config=repo_config, now=now, own_blocks=check,
                sender_may=sender_may,
            ),
        )
        if reserved is not None:
            break
    assert reserved is not None  # the last attempt always reserves
    decision, override, record, step, refusal = reserved

    if override is not None:  # kept as the person set it, in the catalog or not
        label = repo_config.labels.model_label(override.model)
    elif decision.model:
        label = repo_config.labels.model_label(decision.model)
    else:
        label = repo_config.labels.deferred_label
    usage = parts.store.view(lambda state: state.usage.get(event.key))
    body = with_usage(
        render_comment(
            decision, label, override, repo_config.problem, repo_config.refused, refusal
        ),
        usage,
    )
    sent: list[IssueRecord] = []
    try:
        # No trace in the store and no comment at all on the issue: the
        # comment is written without listing the issue's comments first.
        fresh = record is None and issue.get("comments") == 0
        written = write_back(
            gateway, event, record, body, labels_now, label, repo_config.labels,
            parts.engine.models, override, record.label if record is not None else None,
            sent, fresh,
        )
    except GitHubUnavailable:
        parts.store.apply(parts.clock(), functools.partial(step.undo, written=sent))
        raise

    written = written.model_copy(
        update={
            "label": None if override is not None else label,
            "issue_updated_at": known_time(issue.get("updated_at")),
        }
    )

    def remember(state: State) -> None:
        state.put_record(event.key, written)
        note_decision(state, event.key, decision, parts.engine.models, now)
        if delivery:
            state.remember_delivery(delivery, now)

    parts.store.apply(parts.clock(), remember)

    _log(delivery, event.key, decision, override)
    result: dict[str, Any] = {
        "status": "override" if override else ("assigned" if decision.model else "deferred"),
        "issue": event.key,
        "model": decision.model,
        "label": label,
        "value_score": round(decision.value_score, 2),
        "tokens": decision.tokens.total,
        "paid_by": decision.paid_by,
        "dry_run": gateway.dry_run,
    }
    if repo_config.problem:
        result["config_problem"] = repo_config.problem
    if repo_config.refused:
        result["config_refused"] = repo_config.refused
    if refusal:
        result["override_refused"] = text(refusal)
    if gateway.dry_run:
        result["comment"] = body
    return Outcome(200, result)


def _reserve(
    state: State,
    parts: Parts,
    event: IssueEvent,
    task: Task,
    assessment: Assessment,
    labels_now: list[str],
    repo_config: EffectiveConfig,
    now: datetime,
    own_blocks: bool | None,
    sender_may: bool | None = None,
) -> _Reserved | None:
    """Reserve (replacing the previous reservation) before writing to
    GitHub; under the store's lock, on the document the decision charges.
    None, changing nothing, when the issue's blocking status is no longer
    the one it was scored with, unless ``own_blocks`` (whether its body
    says it blocks others) is None: the last attempt."""
    if own_blocks is not None and bool(task.blocks) != (
        own_blocks or bool(state.dependents_of(event.key))
    ):
        return None
    override, refusal = model_override(
        event, labels_now, state, repo_config.labels, parts.engine.models,
        parts.labels.override_min_permission, sender_may,
    )
    step = ReservationStep.begin(state, event.key)  # releases the old reservation
    # The online strategy's history: the issues seen but this one.
    history = _history(state, event.key, repo_config.scoring.quota_strategy, now)
    decision = _decide(parts, assessment, state, repo_config, override, now, history, event.repo)
    if override is None:
        # the quota before this decision's charge: which subscription sat idle
        decision = decision.model_copy(update={"idle": idle_reasons(
            decision, state.ledger(), parts.engine.models, repo_config.scoring)})
        state.observe(event.key, observation_of(decision, now), decision.model is None)
    else:  # a person's choice: not the strategy's to re-decide
        state.deferred.pop(event.key, None)
    step.charge(
        state,
        None if decision.payment is None else Reservation(
            model=decision.model or "",
            payment=decision.payment,
            charged_at=now,
            override_by=(override.by or "") if override else None,
            estimated=estimate_class(decision),
        ),
        task.dependencies,
    )
    return _Reserved(decision, override, step.record, step, refusal)


def _decide(
    parts: Parts,
    assessment: Assessment,
    state: State,
    repo_config: EffectiveConfig,
    override: Override | None,
    now: datetime,
    history: Sequence[Observation] = (),
    repo: str | None = None,
) -> Decision:
    """model-assigner's own choice within the repository's share of the
    quota; with an override, the person's (and ours said instead)."""
    scoring, models = repo_config.scoring, parts.engine.models
    ledger = repository_ledger(state, repo, parts.engine.quotas.repository_share)
    own = plan_assessed(
        [assessment], ledger, models, scoring, now, scoring.quota_strategy, history,
    ).decisions[0]
    if override is None:
        return own
    return override_decision(assessment, state, own, models, scoring, override)


def _log(delivery: str | None, key: str, decision: Decision, override: Override | None) -> None:
    log.info(
        json.dumps(
            {
                "event": "decision",
                "delivery": delivery,
                "issue": key,
                "model": decision.model,
                "reason": decision.reason.code.value,
                "value_score": round(decision.value_score, 2),
                "tokens": decision.tokens.total,
                "cost_usd": round(decision.cost_usd, 4),
                "paid_by": decision.paid_by,
                "override_by": override.by if override else None,
            }
        )
    )
