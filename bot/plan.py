"""``model-assigner plan OWNER/REPO [--apply]``: re-plan every open issue.

Reads the repository's open issues through the App's installation, plans them
as one batch with the configured strategy (core.batch); the command that
prints the plan is bot/cli/plan.py.
With ``--apply`` it writes what webhook handling writes: the reservations in
one store update (planned against the store's state inside its lock, so the
plan can never overrun what other deliveries spent meanwhile; GitHub is read
before, never under the lock), then each issue's label and comment, written
by the delivery queue's workers (bot/plan_queue.py) under that issue's lock,
unless a delivery has re-decided the issue in between.

Issues that carry a person's ``model:<name>`` label are left as they are: a
person's choice is never re-planned.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from github import GithubException
from github.GithubObject import GithubObject

from model_assigner.bot.comment import Override
from model_assigner.bot.github.gateway import GitHubUnavailable, IssueGateway
from model_assigner.bot.github.repo_config import EffectiveConfig, effective_config
from model_assigner.bot.handling.event import IssueEvent
from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.handling.override import model_override
from model_assigner.bot.handling.repository_share import repository_ledger
from model_assigner.bot.issue_task import issue_key, issue_to_task, label_names, parse_dependencies
from model_assigner.bot.store.state import IssueRecord, Reservation, State
from model_assigner.bot.usage_store import calibrated, note_decision
from model_assigner.core.batch import BatchPlan, optimize_task_assignments
from model_assigner.core.online import due_for_redecision
from model_assigner.core.online_history import observation_of
from model_assigner.core.quota import Ledger
from model_assigner.core.types import Decision, Task
from model_assigner.core.usage import IssueUsage, estimate_class


@dataclass
class RepoPlan:
    repo: str
    strategy: str
    tasks: list[Task]
    issues: dict[str, dict[str, Any]]
    overrides: dict[str, Override]
    plan: BatchPlan
    repo_config: EffectiveConfig
    # Left alone: a delivery was handling them, or handled them after GitHub
    # was read, so what the plan read of them is not their latest state.
    busy: list[str] = field(default_factory=list)
    # Left alone too: a model label that is not model-assigner's and whose
    # setter the plan cannot know (no `labeled` event); not a person's choice
    # until one is checked, so neither kept as one nor replaced. The issue's
    # next delivery decides it (and says why the label is not applied).
    unchecked: list[str] = field(default_factory=list)


def list_open_issues(github: Any, repo: str) -> list[dict[str, Any]]:
    """GET /repos/{owner}/{repo}/issues?state=open, every page; pull requests
    (which the endpoint also returns) dropped. The list answer already holds
    each issue whole, so the items are read as they came (GithubObject's
    raw_data) instead of being fetched again one by one."""
    items = github.get_repo(repo).get_issues(state="open")
    issues = []
    for item in items:
        data: dict[str, Any] = GithubObject.raw_data.fget(item)  # type: ignore[attr-defined]
        if "pull_request" not in data:
            issues.append(data)
    return issues


def default_branch(github: Any, repo: str) -> str:
    branch = github.get_repo(repo).default_branch
    return str(branch or "main")


def _ledger_without(state: State, keys: set[str], repo: str, share: float) -> Ledger:
    """The store's ledger with the re-planned issues' reservations given back
    (re-planning replaces a reservation, never adds to it), cut to what the
    repository may hold of it (``repository_share``), as a delivery's is."""
    copy = state.model_copy(deep=True)
    for key in keys:
        copy.release(key)
    return repository_ledger(copy, repo, share)


@dataclass
class RepoSnapshot:
    """What GitHub says of the repository, read before any lock is taken: a
    slow GitHub must never hold up webhook deliveries waiting on the store."""

    repo: str
    issues: dict[str, dict[str, Any]]
    file_count: int | None
    repo_config: EffectiveConfig


def read_repo(handler: Handler, gateway: IssueGateway, github: Any, repo: str) -> RepoSnapshot:
    try:
        issues = list_open_issues(github, repo)
        branch = default_branch(github, repo)
    except GithubException as exc:
        raise GitHubUnavailable(f"GET open issues of {repo}: HTTP {exc.status}") from None
    except requests.RequestException as exc:  # no answer at all: timeout, refused
        raise GitHubUnavailable(f"GET open issues of {repo}: {type(exc).__name__}") from None
    workspace = gateway.workspace(repo, branch)
    repo_config = effective_config(
        gateway.repo_config_text(repo, workspace.commit_sha),
        handler.engine.scoring,
        handler.labels,
        handler.engine.catalog,
    )
    by_key = {issue_key(repo, i["number"]): i for i in issues if isinstance(i.get("number"), int)}
    return RepoSnapshot(repo, by_key, workspace.file_count, repo_config)


def plan_repo(
    handler: Handler,
    snap: RepoSnapshot,
    state: State,
    now: datetime,
    strategy: str | None,
    skip: frozenset[str] = frozenset(),
    due_only: bool = False,
) -> RepoPlan:
    """The batch plan of the snapshot's open issues against the store
    ``state``; the issues in ``skip`` are left out, and keep what they hold.
    ``due_only``: only the issues the online strategy deferred and that are
    due to be decided again now (core.online.due_for_redecision)."""
    repo, repo_config = snap.repo, snap.repo_config
    if due_only:
        waiting = {key: seen for key, seen in state.deferred.items()
                   if key in snap.issues and key not in skip}
        due = set(due_for_redecision(waiting, list(state.seen.values()), state.ledger(),
                                     handler.engine.models, repo_config.scoring, now))
        skip_plan = skip | {key for key in snap.issues if key not in due}
    else:
        skip_plan = skip
    dependents: dict[str, list[str]] = {}
    for key, issue in snap.issues.items():
        for dep in parse_dependencies(str(issue.get("body") or ""), repo):
            dependents.setdefault(dep, []).append(key)

    tasks: list[Task] = []
    overrides: dict[str, Override] = {}
    unchecked: list[str] = []
    for key, issue in snap.issues.items():
        if key in skip_plan:
            continue
        event = IssueEvent.parse(
            {"action": "edited", "repository": {"full_name": repo}, "issue": issue}
        )
        # "edited": the plan attributes no label to anyone (no role is asked):
        # only one honoured before, for someone checked then, is kept.
        override, refused = model_override(
            event, label_names(issue), state, repo_config.labels, handler.engine.models,
            handler.labels.override_min_permission,
        )
        if override is not None:
            overrides[key] = override
            continue
        if refused is not None:
            unchecked.append(key)
            continue
        tasks.append(
            issue_to_task(issue, repo, repo_config.labels, snap.file_count, dependents.get(key, []))
        )
    chosen = strategy or repo_config.scoring.quota_strategy
    ledger = _ledger_without(state, {t.id for t in tasks}, repo,
                             handler.engine.quotas.repository_share)
    # The online strategy's history: the issues seen, but those re-planned
    # here (each joins it as the plan decides it).
    planned = {t.id for t in tasks}
    history = [seen for key, seen in state.seen.items() if key not in planned]
    # Token estimates corrected by what finished issues reported, as a delivery's.
    plan = optimize_task_assignments(
        tasks, ledger, handler.engine.models, calibrated(state, repo_config.scoring), now, chosen,
        history,
    )
    return RepoPlan(repo, chosen, tasks, snap.issues, overrides, plan, repo_config, sorted(skip),
                    unchecked)


def build_plan(
    handler: Handler,
    gateway: IssueGateway,
    github: Any,
    repo: str,
    now: datetime,
    strategy: str | None = None,
    due_only: bool = False,
) -> RepoPlan:
    snap = read_repo(handler, gateway, github, repo)
    return plan_repo(handler, snap, handler.store.read(), now, strategy, due_only=due_only)


@dataclass(frozen=True)
class PlanLeft:
    """What the plan left in the store for one issue. A webhook that
    re-decides the issue afterwards changes it; its write-back then wins.
    ``held``: the reservation the plan replaced, put back if the issue's
    entry never reaches the queue (release_unqueued)."""

    reservation: Reservation | None
    mark: IssueRecord
    previous: IssueRecord | None
    held: Reservation | None = None


def usage_of(key: str, state: State) -> IssueUsage | None:
    return state.usage.get(key)


def still_ours(key: str, ours: PlanLeft, state: State) -> bool:
    """Whether no delivery has re-decided the issue since the plan reserved
    it: the plan's reservation stands and the record still has no issue time
    and the plan's label. Only what a re-decision changes is compared: a
    usage comment's write-back (bot/usage_writeback.py) rewrites the record's
    comment id and digest, and must not make the plan skip the issue."""
    record = state.records.get(key)
    return (state.reservations.get(key) == ours.reservation and record is not None
            and record.issue_updated_at is None and record.label == ours.mark.label)


def release_plan_reservation(key: str, ours: PlanLeft, state: State) -> bool:
    """Undo what the plan left for an issue whose label will never be
    written by the plan (its entry was never queued, or cannot be written):
    the plan's reservation released, the one it replaced put back, the record
    as it was. Nothing changes if a delivery re-decided the issue since.
    Returns whether it undid anything."""
    if not still_ours(key, ours, state):
        return False
    state.release(key)
    if ours.held is not None:
        state.reserve(key, ours.held)
    if ours.previous is not None:
        state.records[key] = ours.previous
    else:
        state.records.pop(key, None)
    return True


def release_unqueued(handler: Handler, left: Mapping[str, PlanLeft],
                     queued: Collection[str]) -> int:
    """One store update: every planned issue whose entry is not in the queue
    gets back what it held before the plan; returns how many were undone."""
    def undo(state: State) -> int:
        return sum(release_plan_reservation(key, ours, state)
                   for key, ours in left.items() if key not in queued)

    return handler.store.apply(handler.clock(), undo)


def reserve_plan(handler: Handler, gateway: IssueGateway, github: Any, repo: str,
                 now: datetime, strategy: str | None = None, due_only: bool = False,
                 ) -> tuple[RepoPlan, dict[str, PlanLeft]]:
    """Read GitHub, then reserve in one store update (planned against the
    store's state inside its lock, so the plan never overruns what deliveries
    spent meanwhile); returns the plan and what it left in the store for
    each issue (the write-back checks it is still there)."""
    def entries(state: State) -> tuple[dict[str, Reservation], dict[str, IssueRecord]]:
        return dict(state.reservations), dict(state.records)

    held_before, records_before = handler.store.view(entries)
    snap = read_repo(handler, gateway, github, repo)

    def busy(state: State) -> frozenset[str]:
        """Issues a delivery changed since GitHub was read (what was read
        is older than what it decided from), or is handling right now (it
        holds the issue's lock, and may have reserved and be writing to
        GitHub). Under the store's lock, a delivery that takes an issue's
        lock after this check reserves after this transaction: it replaces
        the plan's reservation as re-assignment does."""
        changed = {
            key for key in snap.issues
            if state.reservations.get(key) != held_before.get(key)
            or state.records.get(key) != records_before.get(key)
        }
        return frozenset(changed | {key for key in snap.issues
                                    if key not in changed and handler.issue_locks.busy(key)})

    def reserve(state: State) -> tuple[RepoPlan, dict[str, PlanLeft]]:
        repo_plan = plan_repo(handler, snap, state, now, strategy, busy(state), due_only)
        tasks = {task.id: task for task in repo_plan.tasks}
        left: dict[str, PlanLeft] = {}
        for decision in repo_plan.plan.decisions:
            key = decision.task_id
            held = state.release(key)
            reservation = None
            if decision.payment is not None and decision.model is not None:
                reservation = Reservation(
                    model=decision.model, payment=decision.payment, charged_at=charged,
                    estimated=estimate_class(decision),
                )
                state.reserve(key, reservation)
            # the online strategy's history, and whether it waits again
            state.observe(key, observation_of(decision, charged), decision.model is None)
            dependencies = tasks[key].dependencies
            if dependencies:
                state.dependencies[key] = dependencies
            else:
                state.dependencies.pop(key, None)
            # As the handler does: until the write-back is recorded, the
            # issue's state on GitHub is not known to match what we read.
            previous = state.records.get(key)
            mark = (previous.model_copy(update={"issue_updated_at": None})
                    if previous is not None else IssueRecord())
            state.records[key] = mark
            left[key] = PlanLeft(reservation, mark, previous, held)
        return repo_plan, left

    # Charged as of now, after the read: a reset that fell while GitHub was
    # read must see these charges in the new period, or never release them.
    charged = handler.clock()
    return handler.store.apply(charged, reserve)


def remember_written(handler: Handler, key: str, record: IssueRecord, label: str,
                     decision: Decision) -> None:
    """Record the plan's write-back of an issue. The issue's time stays
    unknown: what the plan read of it may be minutes old (a label a person
    added since is not in it), so the next delivery reads the issue from
    GitHub instead of trusting its payload, and sees every model label there is."""
    written = record.model_copy(update={"label": label, "issue_updated_at": None})

    def remember(state: State) -> None:
        state.records[key] = written
        note_decision(state, key, decision, handler.engine.models, handler.clock())

    handler.store.apply(handler.clock(), remember)
