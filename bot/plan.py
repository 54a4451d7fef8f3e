"""``model-assigner plan OWNER/REPO [--apply]``: re-plan every open issue.

Reads the repository's open issues through the App's installation, plans them
as one batch with the configured strategy (core.batch), and prints the plan.
With ``--apply`` it writes what webhook handling writes: the reservations in
one store update (planned against the store's state inside its lock, so the
plan can never overrun what other deliveries spent meanwhile), then each
issue's label and comment under that issue's lock.

Issues that carry a person's ``model:<name>`` label are left as they are: a
person's choice is never re-planned.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from github import GithubException
from github.GithubObject import GithubObject

from bot.comment import Override, render_comment
from bot.gateway import GitHubUnavailable, IssueGateway
from bot.handler import Handler, IssueEvent
from bot.issue_task import issue_key, issue_to_task, label_names, parse_dependencies
from bot.repo_config import EffectiveConfig, effective_config
from bot.store import Reservation, State
from core.batch import BatchPlan, optimize_task_assignments
from core.quota import Ledger
from core.types import Decision, Task


@dataclass
class RepoPlan:
    repo: str
    strategy: str
    tasks: list[Task]
    issues: dict[str, dict[str, Any]]
    overrides: dict[str, Override]
    plan: BatchPlan
    settings: EffectiveConfig


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


def _ledger_without(state: State, keys: set[str]) -> Ledger:
    """The store's ledger with the re-planned issues' reservations given back:
    re-planning replaces a reservation, never adds to it."""
    copy = state.model_copy(deep=True)
    for key in keys:
        copy.release(key)
    return copy.ledger()


def build_plan(
    handler: Handler,
    gateway: IssueGateway,
    github: Any,
    repo: str,
    now: datetime,
    strategy: str | None = None,
    state: State | None = None,
) -> RepoPlan:
    try:
        issues = list_open_issues(github, repo)
        branch = default_branch(github, repo)
    except GithubException as exc:
        raise GitHubUnavailable(f"GET open issues of {repo}: HTTP {exc.status}") from None
    workspace = gateway.workspace(repo, branch)
    settings = effective_config(
        gateway.repo_config_text(repo, workspace.commit_sha),
        handler.engine.scoring,
        handler.labels,
        handler.engine.catalog,
    )
    snapshot = state if state is not None else handler.store.read()
    by_key = {issue_key(repo, i["number"]): i for i in issues if isinstance(i.get("number"), int)}
    dependents: dict[str, list[str]] = {}
    for key, issue in by_key.items():
        for dep in parse_dependencies(str(issue.get("body") or ""), repo):
            dependents.setdefault(dep, []).append(key)

    tasks: list[Task] = []
    overrides: dict[str, Override] = {}
    for key, issue in by_key.items():
        event = IssueEvent.parse(
            {"action": "edited", "repository": {"full_name": repo}, "issue": issue}
        )
        override = handler._override(event, label_names(issue), snapshot, settings.labels)
        if override is not None:
            overrides[key] = override
            continue
        tasks.append(
            issue_to_task(issue, repo, settings.labels, workspace.file_count,
                          dependents.get(key, []))
        )
    chosen = strategy or settings.scoring.quota_strategy
    ledger = _ledger_without(snapshot, {t.id for t in tasks})
    plan = optimize_task_assignments(
        tasks, ledger, handler.engine.models, settings.scoring, now, chosen
    )
    return RepoPlan(repo, chosen, tasks, by_key, overrides, plan, settings)


def apply_plan(handler: Handler, gateway: IssueGateway, github: Any, repo: str,
               now: datetime, strategy: str | None = None) -> tuple[RepoPlan, list[str]]:
    """Reserve in one store update, then write each issue; returns the plan and
    the issues whose write-back failed (their reservations stand; re-run to
    finish them)."""
    with handler.store.transaction(now) as state:
        repo_plan = build_plan(handler, gateway, github, repo, now, strategy, state)
        for decision in repo_plan.plan.decisions:
            state.release(decision.task_id)
            if decision.payment is not None and decision.model is not None:
                state.reserve(
                    decision.task_id,
                    Reservation(model=decision.model, payment=decision.payment, charged_at=now),
                )
        records = dict(state.comments)

    failed: list[str] = []
    labels = repo_plan.settings.labels
    written = {}
    for decision in repo_plan.plan.decisions:
        key = decision.task_id
        issue = repo_plan.issues[key]
        event = IssueEvent.parse(
            {"action": "edited", "repository": {"full_name": repo}, "issue": issue}
        )
        label = labels.model_label(decision.model) if decision.model else labels.deferred_label
        body = render_comment(decision, label, None, repo_plan.settings.problem)
        try:
            from bot.locks import issue_lock

            with issue_lock(handler.lock_dir, key):
                record = handler._write_comment(gateway, event, records.get(key), body)
                handler._write_label(gateway, event, label_names(issue), label, labels, None)
            written[key] = record.model_copy(update={"label": label})
        except GitHubUnavailable:
            failed.append(key)
    with handler.store.transaction(datetime.now(UTC)) as state:
        state.comments.update(written)
    return repo_plan, failed


def plan_rows(repo_plan: RepoPlan) -> list[dict[str, Any]]:
    rows = []
    for d in repo_plan.plan.decisions:
        rows.append({
            "issue": d.task_id,
            "value_score": round(d.value_score, 2),
            "model": d.model,
            "tokens": d.tokens.total,
            "cost_usd": round(d.cost_usd, 6),
            "paid_by": d.paid_by,
            "reason": d.reason,
        })
    for key, override in repo_plan.overrides.items():
        rows.append({
            "issue": key, "value_score": None, "model": override.model, "tokens": None,
            "cost_usd": None, "paid_by": "override (kept)", "reason": "a person's label",
        })
    return rows


def print_plan(repo_plan: RepoPlan, as_json: bool) -> None:
    rows = plan_rows(repo_plan)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{repo_plan.repo}: {len(rows)} open issues, strategy {repo_plan.strategy}")
    header = f"{'issue':<32} {'value':>6} {'model':<15} {'tokens':>9} {'cost':>9}  paid by"
    print(header)
    print("-" * len(header))
    for row in rows:
        value = "-" if row["value_score"] is None else f"{row['value_score']:.1f}"
        tokens = "-" if row["tokens"] is None else f"{row['tokens']:,}"
        cost = "-" if row["cost_usd"] is None else f"${row['cost_usd']:,.2f}"
        print(f"{row['issue'][-32:]:<32} {value:>6} {row['model'] or 'deferred':<15} "
              f"{tokens:>9} {cost:>9}  {row['paid_by'] or '-'}")
    summary = _summary(repo_plan.plan.decisions)
    print(f"\nassigned {summary['assigned']}, deferred {summary['deferred']}, "
          f"value {summary['value']:.1f}, API spend ${summary['api']:,.2f}")
    bound = getattr(repo_plan.plan, "bound", None)
    if bound:
        print(f"LP bound {bound:.1f}, gap {(bound - summary['value']) / bound:.2%}")


def _summary(decisions: list[Decision]) -> Mapping[str, float]:
    assigned = [d for d in decisions if d.model]
    return {
        "assigned": len(assigned),
        "deferred": len(decisions) - len(assigned),
        "value": sum(d.value_score for d in assigned),
        "api": sum(d.payment.cost_usd for d in assigned if d.payment and d.payment.kind == "api"),
    }


def cmd_plan(args: argparse.Namespace) -> int:
    from bot.app import build_handler
    from bot.cli import CliError
    from bot.github_api import GitHubApp
    from bot.settings import SettingsError, load_settings
    from bot.store import StoreError
    from core.loader import ConfigError

    if args.repo.count("/") != 1:
        raise CliError(f"{args.repo!r}: expected OWNER/REPO")
    try:
        settings = load_settings()
        if settings.dry_run:
            raise CliError("plan reads the repository through the App: set GITHUB_APP_ID and "
                           "GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH)")
        handler, _store = build_handler(settings)
        app = GitHubApp(settings)
        owner, name = args.repo.split("/")
        installation = app.integration.get_repo_installation(owner, name).id
    except (SettingsError, ConfigError, StoreError) as exc:
        raise CliError(str(exc)) from None
    except GithubException as exc:
        raise CliError(f"{args.repo}: the App is not installed there or GitHub refused "
                       f"(HTTP {exc.status})") from None
    gateway = app.installation(installation)
    now = datetime.now(UTC)
    try:
        if args.apply:
            repo_plan, failed = apply_plan(handler, gateway, gateway.github, args.repo, now,
                                           args.strategy)
        else:
            repo_plan, failed = build_plan(handler, gateway, gateway.github, args.repo, now,
                                           args.strategy), []
    except GitHubUnavailable as exc:
        raise CliError(f"GitHub unavailable: {exc}") from None
    print_plan(repo_plan, args.json)
    if failed:
        raise CliError(f"write-back failed for {', '.join(failed)}; their reservations stand, "
                       "re-run `plan --apply` to finish")
    return 0


def add_commands(sub: Any, strategies: tuple[str, ...]) -> None:
    plan = sub.add_parser("plan", help="re-plan every open issue of a repository (read-only "
                          "unless --apply)")
    plan.add_argument("repo", metavar="OWNER/REPO")
    plan.add_argument("--strategy", choices=strategies, help="default: quota_strategy in config")
    plan.add_argument("--apply", action="store_true",
                      help="write labels, comments and reservations")
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(handler=cmd_plan)
