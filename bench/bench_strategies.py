"""All four batch strategies on generated batches: value captured against the
LP bound, API spend, quota used, overruns and planning time.

    .venv/bin/python -m bench.bench_strategies [--sizes 100,1000,10000] [--repeat 3]

Each batch (bench/generate.py) is planned under three scenarios. Their quota and
budget are a fraction of the batch's *demand*: the tokens of all its tasks, and
the API cost of the model ``select_model`` would pick for each task with nothing
limiting it (the seed's own choice):

    tight   2% of the demand     medium  10%     loose  100%

The tokens go to two subscriptions: claude (the seed's, a monthly limit: half
the share) and openai (a daily limit: the other half; its monthly limit is 30
times the daily one, so the daily one binds); the dollars are the API budget.

Columns: value captured (sum of the value scores of the assigned tasks) as a
fraction of the LP bound that ``optimal`` certifies for the batch (no plan can
capture more); API spend as a fraction of the budget; subscription tokens used
as a fraction of what the quotas had; "downgr.": the share of assigned tasks
whose model is of a tier below all of their band's tiers (select_model's
downgrade; a task moved up, by minimize_cost's capable-model overflow, does
not count); overrun: any quota or budget exceeded
(there must be none); planning time: the median of --repeat runs of Phase 4
alone (``plan_assessed``), on one core, after the shared Phases 1-2 (scoring and
token estimation, timed once per batch size). "optimal, LP path" forces the
large-batch method (LP relaxation, rounded down and repaired) on every size.

--online N also decides the first N tasks of the 1,000 batch one at a time, each
as a batch of one (as the App does for each issue), under each strategy.
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.generate import generate_tasks
from model_assigner.bot.config_files import load_engine_config
from model_assigner.core.assessment import Assessment, assess
from model_assigner.core.batch import BatchPlan, plan_assessed
from model_assigner.core.config import TIERS, EngineConfig, ScoringConfig
from model_assigner.core.quota import Ledger, remaining_daily, remaining_monthly
from model_assigner.core.scoring import depended_on_ids
from model_assigner.core.selection import select_model
from model_assigner.core.types import STRATEGIES, ApiBudget, Subscription

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
RESET = datetime(2026, 12, 1, tzinfo=UTC)
SCENARIOS = {"tight": 0.02, "medium": 0.10, "loose": 1.0}
LP_PATH = "optimal, LP path"


@dataclass
class Row:
    size: int
    scenario: str
    strategy: str
    value: float
    bound: float
    spend: float
    budget: float
    tokens_used: int
    tokens_quota: int
    downgraded: float
    overrun: str
    seconds: float
    method: str


def demand(scored: Sequence[Assessment], config: EngineConfig) -> tuple[int, float]:
    """Tokens of every task, and the API cost of select_model's own pick for
    each with an unlimited budget and no subscription."""
    unlimited = Ledger([], ApiBudget(monthly_limit_usd=1e15, reset_date=RESET))
    tokens = sum(a.total_tokens for a in scored)
    cost = math.fsum(
        select_model(
            a.task, unlimited, config.models, config.scoring, NOW, "minimize_cost", assessment=a
        ).cost_usd
        for a in scored
    )
    return tokens, cost


def scenario_ledger(tokens: int, cost: float, share: float) -> Ledger:
    claude_month = int(tokens * share / 2)
    openai_day = int(tokens * share / 2)
    return Ledger(
        [
            Subscription(
                model_family="claude",
                monthly_cost=20.0,
                token_limit_monthly=claude_month,
                reset_date=RESET,
            ),
            Subscription(
                model_family="openai",
                monthly_cost=20.0,
                token_limit_daily=openai_day,
                token_limit_monthly=openai_day * 30,
                reset_date=RESET,
            ),
        ],
        ApiBudget(monthly_limit_usd=cost * share, reset_date=RESET),
    )


def quota_of(ledger: Ledger) -> int:
    return int(sum(min(remaining_daily(s), remaining_monthly(s)) for s in ledger.subscriptions))


def overrun(start: Ledger, end: Ledger) -> str:
    problems = []
    for sub in end.subscriptions:
        over = -min(remaining_daily(sub), remaining_monthly(sub))
        if over > 0:
            problems.append(f"{sub.model_family} +{over:,.0f} tokens")
    over_usd = end.budget.spent_usd - end.budget.monthly_limit_usd
    if over_usd > 1e-9:
        problems.append(f"API +${over_usd:,.4f}")
    return ", ".join(problems) or "none"


def downgraded_share(plan: BatchPlan, scoring: ScoringConfig, config: EngineConfig) -> float:
    """Assigned tasks whose model is of a tier below all of their band's tiers."""
    rank = {tier: index for index, tier in enumerate(TIERS)}  # premium first
    lowest = {band.name: max(rank[t] for t in band.tiers) for band in scoring.bands()}
    assigned = [d for d in plan.decisions if d.model is not None]
    if not assigned:
        return 0.0
    down = 0
    for d in assigned:
        model = config.model_named(d.model or "")
        if model is not None and rank[model.tier] > lowest.get(d.band, len(TIERS)):
            down += 1
    return down / len(assigned)


def timed_plan(
    scored: list[Assessment],
    ledger: Ledger,
    config: EngineConfig,
    scoring: ScoringConfig,
    strategy: str,
    repeat: int,
) -> tuple[BatchPlan, float]:
    times = []
    plan = None
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        plan = plan_assessed(scored, ledger, config.models, scoring, NOW, strategy)
        times.append(time.process_time() - start)
    assert plan is not None
    return plan, statistics.median(times)


def run_size(size: int, config: EngineConfig, repeat: int) -> tuple[list[Row], float]:
    tasks = generate_tasks(size, NOW)
    start = time.process_time()
    depended_on = depended_on_ids(tasks)
    scored = [assess(task, config.scoring, NOW, depended_on) for task in tasks]
    scoring_seconds = time.process_time() - start
    tokens, cost = demand(scored, config)
    lp_only = config.scoring.model_copy(
        update={"optimal": config.scoring.optimal.model_copy(update={"milp_max_variables": 0})}
    )
    rows = []
    for scenario, share in SCENARIOS.items():
        ledger = scenario_ledger(tokens, cost, share)
        plans: dict[str, tuple[BatchPlan, float]] = {}
        for strategy in STRATEGIES:
            plans[strategy] = timed_plan(scored, ledger, config, config.scoring, strategy, repeat)
        plans[LP_PATH] = timed_plan(scored, ledger, config, lp_only, "optimal", repeat)
        bound = plans["optimal"][0].upper_bound
        assert bound is not None
        for name, (plan, seconds) in plans.items():
            method = plan.method or "greedy"
            if plan.proven_optimal:
                method += ", proven"
            rows.append(
                Row(
                    size=size,
                    scenario=scenario,
                    strategy=name,
                    value=plan.value,
                    bound=bound,
                    spend=plan.ledger.budget.spent_usd - ledger.budget.spent_usd,
                    budget=ledger.budget.monthly_limit_usd - ledger.budget.spent_usd,
                    tokens_used=quota_of(ledger) - quota_of(plan.ledger),
                    tokens_quota=quota_of(ledger),
                    downgraded=downgraded_share(
                        plan, lp_only if name == LP_PATH else config.scoring, config
                    ),
                    overrun=overrun(ledger, plan.ledger),
                    seconds=seconds,
                    method=method,
                )
            )
    return rows, scoring_seconds


def online(count: int, config: EngineConfig) -> list[tuple[str, float, float, float, float]]:
    """The first ``count`` tasks of the 1,000 batch, each decided as a batch of
    one and charged before the next, under the medium scenario of the whole
    batch: (strategy, value, value of the batch plan, API spend, downgraded)."""
    tasks = generate_tasks(1000, NOW)
    depended_on = depended_on_ids(tasks)
    scored = [assess(task, config.scoring, NOW, depended_on) for task in tasks][:count]
    tokens, cost = demand(scored, config)
    start = scenario_ledger(tokens, cost, SCENARIOS["medium"])
    batch = plan_assessed(scored, start, config.models, config.scoring, NOW, "optimal")
    results: list[tuple[str, float, float, float, float]] = []
    for strategy in STRATEGIES:
        ledger = start.copy()
        decisions = []
        for a in scored:
            plan = plan_assessed([a], ledger, config.models, config.scoring, NOW, strategy)
            ledger = plan.ledger
            decisions.extend(plan.decisions)
        whole = BatchPlan(decisions=decisions, ledger=ledger)
        results.append(
            (
                strategy,
                whole.value,
                batch.value,
                ledger.budget.spent_usd,
                downgraded_share(whole, config.scoring, config),
            )
        )
    return results


def calibration() -> float:
    """CPU seconds of a fixed pure-Python loop: how fast this machine is now."""
    start = time.process_time()
    total = 0
    for i in range(5_000_000):
        total += i
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median")
    parser.add_argument("--online", type=int, default=0, help="tasks for the one-at-a-time run")
    args = parser.parse_args()
    config = load_engine_config()
    # Import scipy and HiGHS before timing anything.
    warm = generate_tasks(5, NOW)
    plan_assessed(
        [assess(t, config.scoring, NOW) for t in warm],
        scenario_ledger(10**6, 1.0, 0.1),
        config.models,
        config.scoring,
        NOW,
        "optimal",
    )
    print(
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}; calibration loop {calibration():.3f} s CPU"
    )
    header = (
        f"{'tasks':>6} {'scenario':<7} {'strategy':<28} {'value/bound':>11} {'API spend':>18} "
        f"{'quota used':>10} {'downgr.':>7} {'overrun':>8} {'plan s':>7}  method"
    )
    print(header)
    print("-" * len(header))
    for size in (int(s) for s in args.sizes.split(",")):
        rows, scoring_seconds = run_size(size, config, args.repeat)
        for row in rows:
            ratio = row.value / row.bound if row.bound else 1.0
            spent = f"${row.spend:,.2f} ({row.spend / row.budget:.0%})" if row.budget else "-"
            quota = row.tokens_used / row.tokens_quota if row.tokens_quota else 0.0
            print(
                f"{row.size:>6} {row.scenario:<7} {row.strategy:<28} {ratio:>11.2%} "
                f"{spent:>18} {quota:>10.0%} {row.downgraded:>7.0%} {row.overrun:>8} "
                f"{row.seconds:>7.3f}  {row.method}"
            )
        print(f"{size:>6} scoring (Phases 1-2, shared by all strategies): {scoring_seconds:.3f} s")
    if args.online:
        print(f"\none at a time: the first {args.online} tasks, medium scenario")
        for strategy, value, best, spend, downgraded in online(args.online, config):
            print(
                f"  {strategy:<28} value {value:>9,.1f} ({value / best:.1%} of the batch plan)"
                f"  API ${spend:,.2f}  downgraded {downgraded:.0%}"
            )


if __name__ == "__main__":
    main()
