"""Webhook deliveries -> decisions -> store + GitHub write-back.

The order of work for an issue event, and why:
1. Serialize on the issue (a file lock shared by all workers): a new issue with
   labels and a milestone arrives as several deliveries at once, and they must
   end as one label, one comment and one reservation.
2. Decide from the issue's latest state: the delivery's payload when it is
   newer than the state the issue was last decided (or closed) from, else the
   issue read from GitHub (the payload of an early delivery may already be
   stale when a later one was handled first).
3. Reserve quota in the store (replacing the issue's previous reservation), so
   two issues can never both spend the same last tokens.
4. Write the comment, then the labels (stale `model:*` labels off first, the
   new one on last). If GitHub fails, undo exactly what step 3 changed and
   answer 5xx: the store is as before the delivery, and GitHub's redelivery
   starts clean. The order matters: a `model:*` label that is on the issue but
   not in the store reads as a person's override, so the bot's own label must
   never be left behind by a failed delivery.
5. Only then record the delivery id as handled: a crash before this point makes
   a redelivery redo the work, which replaces (never adds to) the reservation.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from model_assigner.bot.comment import MARKER, Override, _code, digest, render_comment
from model_assigner.bot.deadline import delivery_budget
from model_assigner.bot.github.gateway import (
    CommentGone,
    GitHubUnavailable,
    IssueGateway,
    IssueGone,
)
from model_assigner.bot.github.repo_config import EffectiveConfig, LabelsConfig, effective_config
from model_assigner.bot.issue_task import (
    MAX_BODY_CHARS,
    issue_key,
    issue_to_task,
    label_names,
    parse_blocks,
)
from model_assigner.bot.locks import FileIssueLocks, IssueLocks
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import (
    DELIVERY_ID,
    IssueRecord,
    Reservation,
    ReservationStep,
    State,
    issue_time,
)
from model_assigner.bot.usage_comment import with_usage
from model_assigner.bot.usage_store import calibrated, note_decision
from model_assigner.core.assessment import Assessment, assess
from model_assigner.core.batch import plan_assessed
from model_assigner.core.catalog import find_model
from model_assigner.core.config import EngineConfig
from model_assigner.core.idle import idle_reasons
from model_assigner.core.online_history import history_start, observation_of
from model_assigner.core.quota import Ledger, calculate_cost, payment_for
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.selection import band_for, make_decision
from model_assigner.core.types import Decision, Observation, Payment, Task
from model_assigner.core.usage import estimate_class
from model_assigner.core.wording import text

log = logging.getLogger("model_assigner.decisions")

ASSIGN_ACTIONS = frozenset(
    {"opened", "reopened", "edited", "labeled", "unlabeled", "milestoned", "demilestoned"}
)
RELEASE_REASONS = frozenset({"not_planned", "duplicate"})
# The issue is no longer this repository's: deleted, or moved to another one
# (where, if the App is installed there, it arrives as a new issue). Its
# reservation is released, or the quota would stay held for ever.
GONE_ACTIONS = frozenset({"deleted", "transferred"})
# Owner and repository names as GitHub (and GitHub Enterprise Server) allow them.
REPO_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
# GitHub's repository roles, lowest first (override_min_permission).
ROLE_RANK = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}
# Scoring runs outside the store's lock; when another delivery changes, in
# between, whether this issue blocks another, it is scored again, this many
# times at most (then the last score stands: the next delivery corrects it).
SCORING_ATTEMPTS = 3


@dataclass
class Outcome:
    """What the webhook answers: an HTTP status and a small JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


class BadPayload(ValueError):
    """A signed, well-formed JSON body that is not the shape GitHub sends."""


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


def _known_time(value: object) -> str | None:
    """A payload's ``updated_at`` as the store keeps it: only a real time."""
    return value if isinstance(value, str) and issue_time(value) is not None else None


def _get(mapping: Mapping[str, Any], *path: str) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class IssueEvent:
    action: str
    repo: str
    number: int
    installation_id: int | None
    sender: str | None
    label: str | None
    issue: Mapping[str, Any]
    default_branch: str
    state_reason: str | None

    @property
    def key(self) -> str:
        return issue_key(self.repo, self.number)

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> IssueEvent:
        action, repo = payload.get("action"), _get(payload, "repository", "full_name")
        issue, number = payload.get("issue"), _get(payload, "issue", "number")
        if not isinstance(action, str):
            raise BadPayload("action: missing")
        if not isinstance(repo, str) or repo.count("/") != 1:
            raise BadPayload("repository.full_name: missing")
        if not REPO_NAME.fullmatch(repo) or set(repo.split("/")) & {".", ".."}:
            # It goes into API paths: nothing GitHub would not name a repository.
            raise BadPayload("repository.full_name: not a repository name")
        # type(), not isinstance(): JSON's true is a Python int too.
        if not isinstance(issue, Mapping) or type(number) is not int or number < 1:
            raise BadPayload("issue.number: missing")
        installation = _get(payload, "installation", "id")
        branch = _get(payload, "repository", "default_branch")
        label = _get(payload, "label", "name")
        reason = _get(payload, "issue", "state_reason")
        sender = _get(payload, "sender", "login")
        return cls(
            action=action,
            repo=repo,
            number=number,
            installation_id=(
                installation if type(installation) is int and installation > 0 else None
            ),
            sender=sender if isinstance(sender, str) else None,
            label=label if isinstance(label, str) else None,
            issue=issue,
            default_branch=branch if isinstance(branch, str) and branch else "main",
            state_reason=reason if isinstance(reason, str) else None,
        )


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

    # -- entry point -------------------------------------------------------

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
        if check_store and delivery and self.store.seen_delivery(delivery):
            return Outcome(200, {"status": "duplicate", "delivery": delivery})
        if bot_login is not None and parsed.sender is not None and parsed.sender == bot_login:
            return Outcome(202, {"status": "ignored", "reason": "our own event"})
        return parsed

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
                return self._close(parsed, delivery)
            try:
                return self._assign(parsed, delivery)
            except BadPayload as exc:
                return Outcome(400, {"error": f"not an issues event payload: {exc}"})

    # -- closing -----------------------------------------------------------

    def _close(self, event: IssueEvent, delivery: str | None) -> Outcome:
        gone = event.action in GONE_ACTIONS
        reason = event.state_reason
        updated_at = event.issue.get("updated_at")
        if not gone:
            # The same freshness rule as for assignments: a `closed` that is
            # not newer than what the issue was last decided from (one that
            # arrives after the `reopened`, or a signed close replayed under a
            # new delivery id) is checked against the issue on GitHub, and an
            # issue that is open there keeps its reservation.
            trace = self.store.view(
                lambda state: (state.record(event.key), event.key in state.reservations)
            )
            if not self._payload_is_latest(event, trace):
                gateway = self.gateway_for(event.installation_id)
                try:
                    latest = gateway.get_issue(event.repo, event.number, event.issue)
                except IssueGone:
                    return self._close(
                        IssueEvent(**{**event.__dict__, "action": "deleted"}), delivery
                    )
                if latest.get("state") != "closed":
                    self._remember_only(delivery)
                    return Outcome(
                        202, {"status": "ignored", "reason": "stale close: the issue is open"}
                    )
                latest_reason = latest.get("state_reason")
                reason = latest_reason if isinstance(latest_reason, str) else None
                updated_at = latest.get("updated_at")
        now = self.clock()
        released = gone or reason in RELEASE_REASONS

        def close(state: State) -> Reservation | None:
            held = state.release(event.key) if released else state.settle(event.key)
            state.forget_issue(
                event.key,
                deleted=gone,
                updated_at=updated_at if isinstance(updated_at, str) else None,
            )
            if delivery:
                state.remember_delivery(delivery, now)
            return held

        held = self.store.apply(now, close)
        status = "released" if released else "settled"
        log.info(
            json.dumps(
                {"event": status, "delivery": delivery, "issue": event.key,
                 "tokens": held.tokens if held else 0}
            )
        )
        return Outcome(200, {"status": status, "issue": event.key, "had_reservation": bool(held)})

    # -- assigning ---------------------------------------------------------

    def _latest_issue(
        self, gateway: IssueGateway, event: IssueEvent, trace: tuple[IssueRecord | None, bool]
    ) -> dict[str, Any]:
        """The issue's latest state. The payload is that state when it is newer
        than the state the issue was last decided (or closed) from, or when
        the store has no trace of the issue at all (its first delivery).
        Otherwise the issue is read from GitHub: a delivery handled out of
        order, or one of a burst within the same second (GitHub's
        ``updated_at`` has whole seconds), carries a payload that is not
        newer; and after a delivery that did not finish (a crash between the
        reservation and its record), what is on GitHub may differ from every
        payload. Deliveries handled in order, the usual case, cost no read."""
        if self._payload_is_latest(event, trace):
            return dict(event.issue)
        return gateway.get_issue(event.repo, event.number, event.issue)

    @staticmethod
    def _payload_is_latest(event: IssueEvent, trace: tuple[IssueRecord | None, bool]) -> bool:
        """Whether the payload may stand for the issue's latest state (see
        _latest_issue): newer than what the store knows, or no trace at all."""
        record, reserved = trace
        payload_time = issue_time(event.issue.get("updated_at"))
        if payload_time is None:
            return False
        if record is None:
            return not reserved
        seen = issue_time(record.issue_updated_at)
        return seen is not None and payload_time > seen

    def _remember_only(self, delivery: str | None) -> None:
        if delivery:
            self.store.apply(
                self.clock(), lambda state: state.remember_delivery(delivery, self.clock())
            )

    def _assign(self, event: IssueEvent, delivery: str | None) -> Outcome:
        gateway = self.gateway_for(event.installation_id)
        trace = self.store.view(
            lambda state: (state.record(event.key), event.key in state.reservations)
        )
        try:
            issue = self._latest_issue(gateway, event, trace)
        except IssueGone:
            return self._close(
                IssueEvent(**{**event.__dict__, "action": "deleted"}), delivery
            )
        if issue.get("state") == "closed":
            return Outcome(202, {"status": "ignored", "reason": "the issue is closed"})
        workspace = gateway.workspace(event.repo, event.default_branch)
        settings = effective_config(
            gateway.repo_config_text(event.repo, workspace.commit_sha),
            self.engine.scoring,
            self.labels,
            self.engine.catalog,
        )
        now = self.clock()
        labels_now = label_names(issue)
        body = issue.get("body")
        own_blocks = isinstance(body, str) and bool(
            parse_blocks(body[:MAX_BODY_CHARS], event.repo, event.key)
        )
        sender_may = self._sender_may_choose(gateway, event, labels_now, settings.labels)
        reserved: _Reserved | None = None
        for attempt in range(SCORING_ATTEMPTS):
            # Scored here, outside the store's lock (a repository's config and
            # an issue's body decide what scoring costs; no other repository's
            # delivery waits for it), from the issues known to depend on this
            # one; the lock is then held only to charge.
            dependents = self.store.view(lambda state: state.dependents_of(event.key))
            task = issue_to_task(
                issue, event.repo, settings.labels, workspace.file_count, dependents
            )
            # Token estimates corrected by what finished issues reported.
            scoring = self.store.view(lambda state: calibrated(state, settings.scoring))
            assessment = assess(task, scoring, now)
            check = None if attempt == SCORING_ATTEMPTS - 1 else own_blocks
            reserved = self.store.apply(
                now,
                functools.partial(
                    self._reserve, event=event, task=task, assessment=assessment,
                    labels_now=labels_now, settings=settings, now=now, own_blocks=check,
                    sender_may=sender_may,
                ),
            )
            if reserved is not None:
                break
        assert reserved is not None  # the last attempt always reserves
        decision, override, record, step, refusal = reserved

        if override is not None:  # kept as the person set it, in the catalog or not
            label = settings.labels.model_label(override.model)
        elif decision.model:
            label = settings.labels.model_label(decision.model)
        else:
            label = settings.labels.deferred_label
        usage = self.store.view(lambda state: state.usage.get(event.key))
        body = with_usage(
            render_comment(
                decision, label, override, settings.problem, settings.refused, refusal
            ),
            usage,
        )
        sent: list[IssueRecord] = []
        try:
            # No trace in the store and no comment at all on the issue: the
            # comment is written without listing the issue's comments first.
            fresh = record is None and issue.get("comments") == 0
            written = self.write_back(
                gateway, event, record, body, labels_now, label, settings.labels, override,
                record.label if record is not None else None, sent, fresh,
            )
        except GitHubUnavailable:
            self.store.apply(self.clock(), functools.partial(step.undo, written=sent))
            raise

        written = written.model_copy(
            update={
                "label": None if override is not None else label,
                "issue_updated_at": _known_time(issue.get("updated_at")),
            }
        )

        def remember(state: State) -> None:
            state.put_record(event.key, written)
            note_decision(state, event.key, decision, self.engine.models, now)
            if delivery:
                state.remember_delivery(delivery, now)

        self.store.apply(self.clock(), remember)

        self._log(delivery, event.key, decision, override)
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
        if settings.problem:
            result["config_problem"] = settings.problem
        if settings.refused:
            result["config_refused"] = settings.refused
        if refusal:
            result["override_refused"] = text(refusal)
        if gateway.dry_run:
            result["comment"] = body
        return Outcome(200, result)

    def _reserve(
        self,
        state: State,
        event: IssueEvent,
        task: Task,
        assessment: Assessment,
        labels_now: list[str],
        settings: EffectiveConfig,
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
        override, refusal = self._override(event, labels_now, state, settings.labels, sender_may)
        step = ReservationStep.begin(state, event.key)  # releases the old reservation
        # The online strategy's history: the issues seen but this one.
        history = _history(state, event.key, settings.scoring.quota_strategy, now)
        decision = self._decide(
            assessment, state, settings, override, now, history, event.repo
        )
        if override is None:
            # the quota before this decision's charge: which subscription sat idle
            decision = decision.model_copy(update={"idle": idle_reasons(
                decision, state.ledger(), self.engine.models, settings.scoring)})
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

    def _sender_may_choose(
        self, gateway: IssueGateway, event: IssueEvent, labels_now: list[str],
        labels: LabelsConfig,
    ) -> bool | None:
        """Whether this delivery's sender has the role the operator asks of
        whoever chooses a model (``override_min_permission``, labels.yaml):
        asked of GitHub (cached), outside the store's lock, only when the
        sender would be the one choosing (a model label added, or on a new
        issue). None: not asked, or not known (dry-run)."""
        if event.action == "labeled":
            asks = bool(event.label and labels.model_from_label(event.label))
        else:  # a label on the issue as it was opened: its author's
            asks = event.action == "opened" and any(
                labels.model_from_label(n) for n in labels_now
            )
        if not event.sender or not asks:
            return None
        role = gateway.permission(event.repo, event.sender)
        if role is None:
            return None
        needed = self.labels.override_min_permission
        return ROLE_RANK.get(role, 0) >= ROLE_RANK[needed]

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
        comment = self._write_comment(gateway, event, record, body, sent, fresh)
        self._write_label(gateway, event, labels_now, label, labels, override, own)
        return comment

    def _override(
        self,
        event: IssueEvent,
        labels_now: list[str],
        state: State,
        labels: LabelsConfig,
        sender_may: bool | None = None,
    ) -> tuple[Override | None, Reason | None]:
        """A `model:<name>` label that we did not set is a person's choice,
        when that person may choose: the label's setter is this delivery's
        sender (a `labeled` event), or the issue's author when it was on the
        issue as it was opened (an issue template may put it there), or the
        person it was honoured for before. Returns the override, or None and
        why a label was not honoured."""
        held = state.reservations.get(event.key)
        record = state.record(event.key)
        ours = {
            held.model if held is not None and held.override_by is None else None,
            labels.model_from_label(record.label) if record and record.label else None,
        }
        chosen = [
            m for m in (labels.model_from_label(n) for n in labels_now) if m and m not in ours
        ]
        if not chosen:
            return None, None
        from_event = (
            labels.model_from_label(event.label)
            if event.action == "labeled" and event.label
            else None
        )
        model = from_event if from_event in chosen else chosen[0]
        via = "label"
        if from_event == model:
            by = event.sender
        elif held is not None and held.model == model and held.override_by:
            by, sender_may = held.override_by, True  # checked when it was set
        elif event.action == "opened":
            by, via = event.sender, "opened"
        else:
            by = None
        if by is not None and by == event.sender and sender_may is False:
            return None, reason(
                ReasonCode.OVERRIDE_REFUSED, label=_code(labels.model_label(model)), via=via,
                by=by, needed=self.labels.override_min_permission,
            )
        known = find_model(self.engine.models, model) is not None
        return Override(model=model, by=by, known=known, via=via), None

    def _decide(
        self,
        assessment: Assessment,
        state: State,
        settings: EffectiveConfig,
        override: Override | None,
        now: datetime,
        history: Sequence[Observation] = (),
        repo: str | None = None,
    ) -> Decision:
        scoring, models = settings.scoring, self.engine.models
        ledger = self._repository_ledger(state, repo)
        if override is None:
            plan = plan_assessed(
                [assessment], ledger, models, scoring, now, scoring.quota_strategy, history,
            )
            return plan.decisions[0]
        # What model-assigner itself would choose, for the comment (nothing charged).
        own = plan_assessed(
            [assessment], ledger, models, scoring, now, scoring.quota_strategy, history
        ).decisions[0]
        instead = (
            reason(ReasonCode.INSTEAD_CHOSEN, model=own.model, payment=own.payment)
            if own.model is not None
            else reason(ReasonCode.INSTEAD_DEFERRED, because=own.reason)
        )
        band = (band_for(assessment.value, scoring) or scoring.low_value_band).name
        model = find_model(models, override.model)
        if model is None:
            return make_decision(
                assessment, None, None, band, "override",
                reason(ReasonCode.OVERRIDE_UNKNOWN_MODEL, model=override.model),
            ).model_copy(update={"instead": instead})
        t = assessment.tokens
        payment = payment_for(model, state.ledger(), t.input_tokens, t.output_tokens)
        if payment is None:
            # A person's choice is kept even when it overruns: charge the API
            # budget and say so, rather than fight the label.
            payment = Payment(
                kind="api",
                family=model.family,
                tokens=t.total,
                cost_usd=calculate_cost(model, t.input_tokens, t.output_tokens),
                remaining_budget_usd=state.api_budget.monthly_limit_usd
                - state.api_budget.spent_usd
                - calculate_cost(model, t.input_tokens, t.output_tokens),
            )
        return make_decision(
            assessment, model, payment, band, "override",
            reason(ReasonCode.OVERRIDE_SET, by=override.by or "hand"),
        ).model_copy(update={"instead": instead})

    def _repository_ledger(self, state: State, repo: str | None) -> Ledger:
        """The quota as one repository's decision may see it: with
        ``repository_share`` below 1, each subscription's monthly tokens and
        the API budget are cut to that share of their limit, less what this
        repository's live reservations already hold (the issue being decided
        has released its own). The store's counters are not changed: a copy.
        A person's override label is not capped (it is kept, as ever, and
        charged), only model-assigner's own choice."""
        share = self.engine.quotas.repository_share
        if repo is None or share >= 1:
            return state.ledger()
        tokens: dict[str, int] = {}
        spent = 0.0
        for held in state.reservations_of(repo):
            if held.payment.kind == "subscription" and held.payment.family:
                family = held.payment.family
                tokens[family] = tokens.get(family, 0) + held.payment.tokens
            else:
                spent += held.payment.cost_usd
        ledger = state.ledger().copy()
        for sub in ledger.subscriptions:
            limit = sub.token_limit_monthly
            if limit is not None:
                room = max(0.0, share * limit - tokens.get(sub.model_family, 0))
                sub.tokens_used_month = max(sub.tokens_used_month, int(limit - room))
        budget = ledger.budget
        room_usd = max(0.0, share * budget.monthly_limit_usd - spent)
        budget.spent_usd = max(budget.spent_usd, budget.monthly_limit_usd - room_usd)
        return ledger

    def _write_label(
        self,
        gateway: IssueGateway,
        event: IssueEvent,
        labels_now: list[str],
        wanted: str,
        labels: LabelsConfig,
        override: Override | None,
        own: str | None,
    ) -> None:
        """``own``: the model label the bot itself last put on the issue."""
        if override is not None:
            wanted = labels.model_label(override.model)
        # Stale labels off before the new one goes on: if GitHub fails in
        # between, the issue is left with no model label rather than with one
        # the store does not know (which would read as a person's override).
        for name in labels_now:
            if name.lower() != wanted.lower() and self._bots_label(name, labels, own):
                gateway.remove_label(event.repo, event.number, name)
        present = {name.lower() for name in labels_now}
        if wanted.lower() not in present:
            deferred = wanted == labels.deferred_label
            gateway.ensure_label(
                event.repo,
                wanted,
                labels.deferred_label_color if deferred else labels.model_label_color,
                "model-assigner: deferred" if deferred else "model-assigner: model for this issue",
            )
            gateway.add_label(event.repo, event.number, wanted)

    def _bots_label(self, name: str, labels: LabelsConfig, own: str | None) -> bool:
        """A label the bot may take off: its deferred label, its own last label,
        or a model label naming a model of the catalog. Never another label
        that merely shares the prefix (a person's, or the repository's own)."""
        if not labels.is_model_label(name):
            return own is not None and name.lower() == own.lower()
        if name.lower() in (labels.deferred_label.lower(), (own or "").lower()):
            return True
        model = labels.model_from_label(name)
        return model is not None and find_model(self.engine.models, model) is not None

    @staticmethod
    def _write_comment(
        gateway: IssueGateway, event: IssueEvent, record: IssueRecord | None, body: str,
        sent: list[IssueRecord] | None = None, fresh: bool = False,
    ) -> IssueRecord:
        """Create or edit the bot's comment. ``fresh``: the store has no trace
        of the issue (a write is always preceded by a mark in the store, and
        a failed one keeps what it may have created, see
        ReservationStep.undo) and the issue's latest state counts no
        comment: the comment is created without listing the issue's
        comments first. ``sent`` receives the comment created (or a mark
        when its answer was lost)."""
        text_digest = digest(body)
        if fresh and record is None:
            return _create_comment(gateway, event, body, text_digest, sent)
        if record is not None and record.id is not None:
            if record.digest == text_digest:
                return record
            try:
                gateway.edit_comment(event.repo, record.id, body)
                return IssueRecord(id=record.id, digest=text_digest)
            except CommentGone:
                pass  # someone deleted it: find another one or write a new one
        found = gateway.find_comment(event.repo, event.number, MARKER)
        if found is None:
            return _create_comment(gateway, event, body, text_digest, sent)
        comment_id, old_body = found
        if digest(old_body) != text_digest:
            try:
                gateway.edit_comment(event.repo, comment_id, body)
            except CommentGone:  # deleted since we listed it
                comment_id = gateway.create_comment(event.repo, event.number, body)
        return IssueRecord(id=comment_id, digest=text_digest)

    @staticmethod
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


def _create_comment(
    gateway: IssueGateway, event: IssueEvent, body: str, text_digest: str,
    sent: list[IssueRecord] | None,
) -> IssueRecord:
    if sent is not None:
        sent.append(IssueRecord())  # sent, answer not yet known
    created = IssueRecord(
        id=gateway.create_comment(event.repo, event.number, body), digest=text_digest
    )
    if sent is not None:
        sent[-1] = created
    return created
