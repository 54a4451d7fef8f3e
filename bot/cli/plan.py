"""``model-assigner plan OWNER/REPO``: re-plan every open issue of a repository.

The planning and the write-back are bot/plan.py's; this module is the command:
its options, the table or JSON it prints, and the offline mode (``--issues
FILE``, bot/cli/plan_offline.py) that plans without credentials.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests
from github import GithubException

from model_assigner.bot.cli.errors import CliError, parse_now
from model_assigner.bot.cli.plan_offline import IssuesFileError, offline_plan
from model_assigner.bot.github.gateway import GitHubUnavailable
from model_assigner.bot.plan import RepoPlan, build_plan, reserve_plan
from model_assigner.bot.plan_queue import PlanNotQueued, enqueue_plan, wait_for_plan
from model_assigner.bot.queue.db import QueueDbError
from model_assigner.bot.settings import Settings, SettingsError, load_settings, redacted_url
from model_assigner.bot.solver_output import solver_output_off_stdout
from model_assigner.bot.store.state import StoreError
from model_assigner.bot.wiring import build_handler, build_services
from model_assigner.core.loader import ConfigError
from model_assigner.core.types import Decision
from model_assigner.core.wording import text


def _follow(services: Any, queued: dict[str, str], installation: int, no_wait: bool) -> int:
    """Report the queued plan's progress until it is done, with queue
    workers of this process helping the server's (or alone: no server
    needed); or, with --no-wait, say where to look and return."""
    def report(line: str) -> None:
        print(f"plan --apply: {line}", file=sys.stderr, flush=True)

    if not queued:
        report("nothing to write")
        return 0
    if no_wait:
        report(f"{len(queued)} queued for the server's workers (see `model-assigner queue`)")
        return 0
    worker = services.worker(threads=2, periodic=False)
    worker.start()
    try:
        progress = wait_for_plan(services.queue, services.limiter, queued, installation, report)
    finally:
        worker.stop(timeout=5.0)
    report(f"done: {progress.decided} of {progress.total} decided")
    if progress.dead:
        raise CliError(f"{progress.dead} issue(s) are dead letters after repeated failures; "
                       "see `model-assigner queue --dead`, then `model-assigner queue retry`")
    return 0


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
            "reason": text(d.reason),
        })
    for key, override in repo_plan.overrides.items():
        rows.append({
            "issue": key, "value_score": None, "model": override.model, "tokens": None,
            "cost_usd": None, "paid_by": "override (kept)", "reason": "a person's label",
        })
    for key in repo_plan.unchecked:
        rows.append({
            "issue": key, "value_score": None, "model": None, "tokens": None,
            "cost_usd": None, "paid_by": "left alone",
            "reason": "a model label whose setter is not known (not a checked person's "
                      "choice); the issue's next delivery decides it",
        })
    for key in repo_plan.busy:
        rows.append({
            "issue": key, "value_score": None, "model": None, "tokens": None,
            "cost_usd": None, "paid_by": "left alone",
            "reason": "a webhook delivery was handling it; it keeps that decision",
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
        model = row["model"] or ("-" if row["paid_by"] == "left alone" else "deferred")
        print(f"{row['issue'][-32:]:<32} {value:>6} {model:<15} "
              f"{tokens:>9} {cost:>9}  {row['paid_by'] or '-'}")
    summary = _summary(repo_plan.plan.decisions)
    print(f"\nassigned {summary['assigned']}, deferred {summary['deferred']}, "
          f"value {summary['value']:.1f}, API spend ${summary['api']:,.2f}")
    bound = repo_plan.plan.upper_bound
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


def with_paths(settings: Settings, args: argparse.Namespace) -> Settings:
    """--state and --config over the environment's, as the other operator
    commands take them."""
    if args.state:
        settings = replace(settings, state_path=Path(args.state))
    if args.config:
        settings = replace(settings, config_dir=Path(args.config))
    return settings


def cmd_plan(args: argparse.Namespace) -> int:
    if args.repo.count("/") != 1:
        raise CliError(f"{args.repo!r}: expected OWNER/REPO")
    if args.issues is not None:
        return run_offline(args)
    try:
        settings = with_paths(load_settings(), args)
        if settings.dry_run:
            raise CliError("plan reads the repository through the App: set GITHUB_APP_ID and "
                           "GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH)")
        pinned = parse_now(args.now) if args.now else None
        services = build_services(settings, (lambda: pinned) if pinned else None)
        handler, app = services.handler, services.github
        assert app is not None  # not dry-run
        owner, name = args.repo.split("/")
        installation = app.integration.get_repo_installation(owner, name).id
    except (SettingsError, ConfigError, StoreError, QueueDbError) as exc:
        raise CliError(str(exc)) from None
    except GithubException as exc:
        raise CliError(f"{args.repo}: the App is not installed there or GitHub refused "
                       f"(HTTP {exc.status})") from None
    except requests.RequestException as exc:
        raise CliError(f"GitHub unavailable: {redacted_url(settings.api_url)} did not answer "
                       f"({type(exc).__name__})") from None
    gateway = app.installation(installation)
    now = handler.clock()
    queued: dict[str, str] = {}
    try:
        # HiGHS prints from C to descriptor 1: keep it out of the plan's output
        with solver_output_off_stdout():
            if args.apply:
                # Reserved here; each issue then an entry of its job in the
                # queue, written by the queue's workers (the handler's
                # write-back, the installation's rate policy).
                repo_plan, left = reserve_plan(handler, gateway, gateway.github, args.repo,
                                               now, args.strategy, args.due)
                # Stopped part-way (the queue's database, Ctrl-C), the
                # issues not queued get their reservations back.
                queued = enqueue_plan(handler, services.queue, repo_plan, left,
                                      int(installation))
            else:
                repo_plan = build_plan(handler, gateway, gateway.github, args.repo,
                                       now, args.strategy, args.due)
    except GitHubUnavailable as exc:
        raise CliError(f"GitHub unavailable: {exc}") from None
    except (StoreError, QueueDbError, PlanNotQueued) as exc:
        raise CliError(str(exc)) from None
    print_plan(repo_plan, args.json)
    if args.apply:
        return _follow(services, queued, int(installation), args.no_wait)
    return 0


def add_commands(sub: Any, strategies: tuple[str, ...]) -> None:
    plan = sub.add_parser("plan", help="re-plan every open issue of a repository (read-only "
                          "unless --apply)")
    plan.add_argument("repo", metavar="OWNER/REPO", help="the repository whose open issues to plan")
    plan.add_argument("--strategy", choices=strategies, help="default: quota_strategy in config")
    plan.add_argument("--apply", action="store_true",
                      help="write labels, comments and reservations")
    plan.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plan.add_argument("--no-wait", action="store_true",
                      help="with --apply: return once the issues are queued, for the server's "
                      "workers (default: report progress until every issue is decided)")
    plan.add_argument("--due", action="store_true",
                      help="only the issues the online strategy deferred that its prices now "
                      "let through (as a reset nears, all that fit); run it periodically")
    plan.add_argument("--now", help="the clock, ISO 8601 (default: the current UTC time)")
    plan.add_argument("--issues", metavar="FILE",
                      help="offline: plan the issues in FILE (GitHub's JSON for GET "
                      "/repos/OWNER/REPO/issues) without credentials; nothing is read from "
                      "GitHub or written to it or to the store")
    plan.add_argument("--state", help="store file (default: MODEL_ASSIGNER_STATE)")
    plan.add_argument("--config", help="config folder (default: MODEL_ASSIGNER_CONFIG)")
    plan.set_defaults(handler=cmd_plan)


def run_offline(args: Any) -> int:
    """``plan --issues FILE``: the settings of the environment (or --state,
    --config), credentials or not; dry-run settings are enough."""
    if args.apply:
        raise CliError("--issues plans offline and writes nothing: it cannot be used with --apply")
    try:
        settings = with_paths(load_settings(), args)
        handler, _store = build_handler(replace(settings, app_id=None, private_key=None))
        repo_plan = offline_plan(handler, args.repo, Path(args.issues),
                                 parse_now(getattr(args, "now", None)), args.strategy)
    except (SettingsError, ConfigError, StoreError, IssuesFileError) as exc:
        raise CliError(str(exc)) from None
    print_plan(repo_plan, args.json)
    return 0
