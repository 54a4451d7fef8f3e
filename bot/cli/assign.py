"""``assign`` and ``config``: the engine run on a task file, and the
configuration it reads, from the current quotas or a live store's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from model_assigner.bot.cli.errors import CliError, parse_now
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.solver_output import solver_output_off_stdout
from model_assigner.core.batch import BatchPlan, optimize_task_assignments
from model_assigner.core.config import EngineConfig
from model_assigner.core.loader import ConfigError
from model_assigner.core.quota import Ledger, roll_over
from model_assigner.core.selection import select_model
from model_assigner.core.types import GREEDY_STRATEGIES, STRATEGIES, Decision, Observation
from model_assigner.core.wording import explain, text

STATE_HELP = (
    "start from this live store (the server's MODEL_ASSIGNER_STATE file): its quota used, "
    "reservations and issues seen, instead of the config's starting quotas"
)
CONFIG_HELP = "config folder (default: MODEL_ASSIGNER_CONFIG, else the bundled config/)"


def load_config(folder: str | None) -> EngineConfig:
    """--config, else MODEL_ASSIGNER_CONFIG (as the server reads it), else the
    bundled config/: the CLI must see what the server sees."""
    from model_assigner.bot.settings import config_dir

    # --config is the user's own path (the current folder's); the setting is
    # resolved as the server resolves it.
    try:
        return load_engine_config(Path(folder) if folder else config_dir(os.environ))
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def starting_point(
    config: EngineConfig, state_file: str | None, now: datetime
) -> tuple[Ledger, list[Observation]]:
    """The quota state and the online strategy's history a command starts
    from: with --state, the live store's (its counters, reservations and
    issues seen, after the resets due at ``now``; read, never written), so
    that what the command prints is what the App would do now; otherwise the
    config's starting quotas and no history."""
    if state_file is None:
        ledger = config.quotas.ledger_at(now)
        roll_over(ledger, now)
        return ledger, []
    from model_assigner.bot.store.json_store import Store
    from model_assigner.bot.store.state import StoreError, apply_resets

    store = Store(Path(state_file), config.quotas, lambda: now)
    if not store.path.exists():
        raise CliError(f"--state: {store.path}: no such store")
    try:
        state = store.read().model_copy(deep=True)
    except StoreError as exc:
        raise CliError(f"--state: {exc}") from None
    apply_resets(state, now)
    return state.ledger(), list(state.seen.values())


def decision_json(decision: Decision) -> dict[str, Any]:
    b, t = decision.breakdown, decision.tokens
    return {
        "id": decision.task_id,
        "model": decision.model,
        "value_score": decision.value_score,
        "value_density": decision.value_density,
        "band": decision.band,
        "priority_weight": b.priority_weight,
        "complexity": b.complexity,
        "domain": b.domain,
        "risk": b.risk,
        "time_bonus": b.time_bonus,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cost_usd": round(decision.cost_usd, 6),
        "paid_by": decision.paid_by,
        "api_spend_usd": round(decision.payment.cost_usd, 6) if decision.payment else 0.0,
        "strategy": decision.strategy,
        "reason": text(decision.reason),
        "reason_code": decision.reason.code.value,
        "passed_over": [
            {"model": p.model, "reason": text(p.reason), "reason_code": p.reason.code.value}
            for p in decision.passed_over
        ],
        "unblock_hint": None if decision.unblock_hint is None else text(decision.unblock_hint),
        "breakdown": {
            **b.model_dump(),
            **{name: text(getattr(b, name)) for name in SIGNALS},
        },
    }


# The score's signals, worded in the JSON as in the comment's table.
SIGNALS = ("complexity_signal", "time_reason", "domain_reason", "risk_reason")


def plan_summary(plan: BatchPlan) -> list[str]:
    """Value captured, and for ``optimal`` the LP bound and the gap to it."""
    assigned = sum(1 for d in plan.decisions if d.model is not None)
    lines = [
        f"value captured: {plan.value:,.1f} ({assigned} of {len(plan.decisions)} tasks assigned, "
        f"API spend ${plan.api_spend_usd:,.2f})"
    ]
    if plan.upper_bound is not None:
        how = "proven optimal" if plan.proven_optimal else "not proven optimal"
        method = {"milp": "exact MILP", "lp-round": "LP relaxation, rounded and repaired"}.get(
            plan.method or "", plan.method or "?"
        )
        lines.append(
            f"LP upper bound: {plan.upper_bound:,.1f}  gap: {plan.gap or 0.0:,.1f} "
            f"({(plan.gap_ratio or 0.0):.2%})  [{method}, {how}]"
        )
    return lines


def print_human(decisions: list[Decision], ledger: Ledger, plan: BatchPlan) -> None:
    header = f"{'task':<20} {'model':<15} {'value':>6} {'tokens':>9} {'cost':>9}  paid by"
    print(header)
    print("-" * len(header))
    for d in decisions:
        print(
            f"{d.task_id[:20]:<20} {d.model or 'deferred':<15} {d.value_score:>6.1f} "
            f"{d.tokens.total:>9,} {'$' + format(d.cost_usd, ',.2f'):>9}  {d.paid_by or '-'}"
        )
    print()
    for line in plan_summary(plan):
        print(line)
    for d in decisions:
        print(f"\n== {d.task_id}")
        for line in explain(d):
            print(f"   {line}")


def cmd_assign(args: argparse.Namespace) -> int:
    from model_assigner.bot.cli.taskfile import TaskFileError, load_tasks
    from model_assigner.bot.local_workspace import with_local_workspaces

    now = parse_now(args.now)
    config = load_config(args.config)
    strategy = args.strategy or config.scoring.quota_strategy
    try:
        # A task file's workspace_path is a folder of the user's: counted here.
        tasks = with_local_workspaces(load_tasks(Path(args.file)))
    except TaskFileError as exc:
        raise CliError(str(exc)) from None
    ledger, history = starting_point(config, args.state, now)
    # HiGHS prints from C to descriptor 1: keep it out of the output (JSON too)
    with solver_output_off_stdout():
        if len(tasks) == 1 and strategy in GREEDY_STRATEGIES:
            # The seed's select_model for one task; `optimal` has no
            # single-task form, so it plans a batch of one (and reports its
            # bound), and `online` decides it against its prices.
            decision = select_model(
                tasks[0], ledger, config.models, config.scoring, now, quota_strategy=strategy
            )
            plan = BatchPlan(decisions=[decision], ledger=ledger)
        else:
            plan = optimize_task_assignments(
                tasks, ledger, config.models, config.scoring, now, strategy, history
            )
    decisions, ledger = plan.decisions, plan.ledger
    if args.json:
        json.dump([decision_json(d) for d in decisions], sys.stdout, indent=2)
        print()
    else:
        print_human(decisions, ledger, plan)
    return 0


SEED_SUBSCRIPTION_FIELDS = (
    "model_family",
    "monthly_cost",
    "token_limit_daily",
    "token_limit_monthly",
    "tokens_used_today",
    "tokens_used_month",
    "reset_date",
)


def config_document(config: EngineConfig, ledger: Ledger) -> dict[str, Any]:
    """What `assign` plans with: the catalog, the quota state after the resets
    due at --now, and every scoring setting. With a plan's JSON, enough to
    check the plan independently."""
    return {
        "models": [model.model_dump(mode="json") for model in config.models],
        "subscriptions": [
            {
                key: value
                for key, value in sub.model_dump(mode="json").items()
                if key in SEED_SUBSCRIPTION_FIELDS
            }
            for sub in ledger.subscriptions
        ],
        "api_budget": ledger.budget.model_dump(mode="json"),
        "scoring": config.scoring.model_dump(mode="json"),
    }


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    now = parse_now(args.now)
    config = load_config(args.config)
    ledger, _history = starting_point(config, args.state, now)
    document = config_document(config, ledger)
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        print()
    else:
        print(yaml.safe_dump(document, sort_keys=False, width=100), end="")
    return 0


def add_commands(sub: Any) -> None:
    """``assign`` and ``config``: the engine on a task file, and what it reads."""
    assign = sub.add_parser("assign", help="assign models to the tasks in a YAML or JSON file")
    assign.add_argument("file", help="one task or a list of tasks, with the seed's field names")
    assign.add_argument("--strategy", choices=STRATEGIES, help="default: quota_strategy in config")
    assign.add_argument("--now", help="the clock, ISO 8601 (default: the current UTC time)")
    assign.add_argument("--json", action="store_true", help="print a JSON array")
    assign.add_argument("--config", help=CONFIG_HELP)
    assign.add_argument("--state", help=STATE_HELP)
    assign.set_defaults(handler=cmd_assign)

    show = sub.add_parser(
        "config", help="print the effective configuration: models, quotas, budget, scoring"
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.add_argument(
        "--now", help="apply the quota resets due at this time, as assign does (ISO 8601)"
    )
    show.add_argument("--config", help=CONFIG_HELP)
    show.add_argument("--state", help=STATE_HELP)
    show.set_defaults(handler=cmd_config)
