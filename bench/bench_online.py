"""Issue by issue over a month: every strategy against the hindsight optimum.

    .venv/bin/python -m bench.bench_online                # the default run (a few minutes)
    .venv/bin/python -m bench.bench_online --seeds 5 --cold --with-optimal

Each stream is a month of generated tasks (bench/generate.py) arriving one
by one, in one of four orders: random; high-value issues late (arrivals
sorted by value, with noise); high-value early; bursts (random order, the
arrival times clustered in a few bursts). The quotas are the README's medium
(10%) and tight (2%) shares of the stream's demand: each of two subscriptions
(claude, openai) gets half the share of the stream's tokens as a monthly
limit, the API budget the share of what minimize_cost would spend on every
task with an unlimited budget. (No daily limit: the hindsight optimum is
planned against one ledger, which cannot express a limit per day.)

Every strategy decides each task at its arrival, the state carried forward:
the seed's three greedy strategies, ``optimal`` one task at a time (with
``--with-optimal``: slow), and ``online`` with the last month's issues as
history (a generated month of the same kind, as the store holds after a
month of running) and, with ``--cold``, without (this month only). ``online``
re-decides its deferred issues every six hours of the month and once in the
last hour before the reset, as the App's queue does.

Printed per order and quota level, as means over the seeds: the value
captured as a share of the hindsight optimum (the ``optimal`` plan of the
whole stream) and of its LP bound; the waste (subscription tokens left at the
reset while issues ended deferred or paid from the API budget, as a share of
the subscriptions' quota); and the shares of the assigned tasks >= 90 and
>= 75 whose model is below their band's tiers.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.generate import generate_tasks
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.solver_output import solver_output_off_stdout
from model_assigner.core.assessment import Assessment, assess
from model_assigner.core.batch import BatchPlan, plan_assessed, plan_worth
from model_assigner.core.config import EngineConfig, ScoringConfig
from model_assigner.core.online import decide_online, due_for_redecision
from model_assigner.core.online_history import observe
from model_assigner.core.quota import Ledger, remaining_monthly, update_quota_tracking
from model_assigner.core.scoring import depended_on_ids
from model_assigner.core.selection import band_for
from model_assigner.core.types import ApiBudget, Decision, Model, Observation, Subscription

START = datetime(2026, 12, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)
ORDERS = ("random", "high-value late", "high-value early", "bursts")
QUOTAS = {"medium": 0.10, "tight": 0.02}
GREEDY = ("maximize_subscription_usage", "minimize_cost", "maximize_value")
REDECIDE_EVERY = timedelta(hours=6)


@dataclass
class Outcome:
    value: float = 0.0
    waste: float = 0.0
    below_90: float = 0.0
    below_75: float = 0.0
    seconds: float = 0.0


@dataclass
class Stream:
    arrivals: list[tuple[datetime, Assessment]]
    ledger: Ledger
    optimum: float
    bound: float
    quota_tokens: int
    history: list[Observation] = field(default_factory=list)


def arrival_times(count: int, order: str, rng: random.Random, start: datetime,
                  end: datetime) -> list[datetime]:
    span = (end - start).total_seconds()
    if order == "bursts":
        centres = [rng.uniform(0.02, 0.95) for _ in range(6)]
        points = [min(0.999, max(0.0, rng.choice(centres) + rng.gauss(0, 0.01)))
                  for _ in range(count)]
    else:
        points = [rng.random() for _ in range(count)]
    return sorted(start + timedelta(seconds=p * span) for p in points)


def ordered(scored: list[Assessment], order: str, rng: random.Random) -> list[Assessment]:
    items = list(scored)
    if order in ("random", "bursts"):
        rng.shuffle(items)
    else:
        noisy = sorted(items, key=lambda a: a.value + rng.gauss(0, 8))
        items = noisy if order == "high-value late" else noisy[::-1]
    return items


def month(config: EngineConfig, count: int, seed: int, order: str, start: datetime,
          end: datetime) -> list[tuple[datetime, Assessment]]:
    """A month's tasks, each assessed at its arrival (deadlines relative to it)."""
    rng = random.Random(seed * 7919 + ORDERS.index(order))
    tasks = generate_tasks(count, start, seed)
    depended_on = depended_on_ids(tasks)
    scored = [assess(t, config.scoring, start, depended_on) for t in tasks]
    times = arrival_times(count, order, rng, start, end)
    arrivals = []
    for when, a in zip(times, ordered(scored, order, rng), strict=True):
        task = a.task
        if task.deadline is not None:
            task = task.model_copy(update={"deadline": when + (task.deadline - start)})
        arrivals.append((when, assess(task, config.scoring, when, depended_on)))
    return arrivals


def demand(arrivals: Sequence[tuple[datetime, Assessment]], config: EngineConfig
           ) -> tuple[int, float]:
    from model_assigner.core.greedy import minimize_cost_one

    unlimited = Ledger([], ApiBudget(monthly_limit_usd=1e15, reset_date=END))
    tokens = sum(a.total_tokens for _, a in arrivals)
    cost = math.fsum(
        minimize_cost_one(a, unlimited, config.models, config.scoring, "x").cost_usd
        for _, a in arrivals
    )
    return tokens, cost


def quota_ledger(tokens: int, cost: float, share: float) -> Ledger:
    half = int(tokens * share / 2)
    return Ledger(
        [
            Subscription(model_family="claude", token_limit_monthly=half, reset_date=END),
            Subscription(model_family="openai", token_limit_monthly=half, reset_date=END),
        ],
        ApiBudget(monthly_limit_usd=cost * share, reset_date=END),
    )


def make_stream(config: EngineConfig, count: int, seed: int, order: str, share: float) -> Stream:
    arrivals = month(config, count, seed, order, START, END)
    tokens, cost = demand(arrivals, config)
    ledger = quota_ledger(tokens, cost, share)
    with solver_output_off_stdout():  # HiGHS prints from C: keep the table clean
        hindsight = plan_assessed([a for _, a in arrivals], ledger, config.models,
                                  config.scoring, START, "optimal")
    optimum = plan_worth(hindsight, config.models, config.scoring)
    last = month(config, count, seed + 1000, order, datetime(2026, 11, 1, tzinfo=UTC), START)
    return Stream(
        arrivals=arrivals,
        ledger=ledger,
        optimum=optimum,
        bound=max(optimum, hindsight.upper_bound or optimum),
        quota_tokens=2 * int(tokens * share / 2),
        history=[observe(a, when) for when, a in last],
    )


def run_greedy(stream: Stream, config: EngineConfig, strategy: str) -> list[Decision]:
    ledger = stream.ledger.copy()
    decisions = []
    for when, a in stream.arrivals:
        plan = plan_assessed([a], ledger, config.models, config.scoring, when, strategy)
        ledger = plan.ledger
        decisions.extend(plan.decisions)
    return decisions


def run_online(stream: Stream, config: EngineConfig, with_history: bool) -> list[Decision]:
    ledger = stream.ledger.copy()
    history: list[Observation] = list(stream.history) if with_history else []
    deferred: dict[str, Observation] = {}
    final: dict[str, Decision] = {}
    by_id = {a.task.id: a for _, a in stream.arrivals}
    ticks = [START + REDECIDE_EVERY * k for k in range(1, 200) if START + REDECIDE_EVERY * k < END]
    ticks.append(END - timedelta(hours=1))
    tick = 0

    def redecide(now: datetime) -> None:
        for key in due_for_redecision(deferred, history, ledger, config.models, config.scoring,
                                      now):
            decision = decide_online(by_id[key], ledger, config.models, config.scoring, now,
                                     history)
            if decision.payment is not None:
                update_quota_tracking(ledger, decision.payment)
                final[key] = decision
                del deferred[key]

    for when, a in stream.arrivals:
        while tick < len(ticks) and ticks[tick] <= when:
            redecide(ticks[tick])
            tick += 1
        decision = decide_online(a, ledger, config.models, config.scoring, when, history)
        if decision.payment is not None:
            update_quota_tracking(ledger, decision.payment)
        else:
            deferred[a.task.id] = observe(a, when)
        final[a.task.id] = decision
        history.append(observe(a, when))
    while tick < len(ticks):
        redecide(ticks[tick])
        tick += 1
    return [final[a.task.id] for _, a in stream.arrivals]


def outcome(decisions: list[Decision], stream: Stream, config: EngineConfig,
            seconds: float) -> Outcome:
    by_name = {m.name: m for m in config.models}
    ledger = stream.ledger.copy()
    for d in decisions:
        if d.payment is not None:
            update_quota_tracking(ledger, d.payment)
    waiting = any(d.model is None or (d.payment is not None and d.payment.kind == "api")
                  for d in decisions)
    unused = sum(max(0.0, remaining_monthly(s)) for s in ledger.subscriptions)
    return Outcome(
        value=plan_worth(BatchPlan(decisions=decisions, ledger=ledger), config.models,
                         config.scoring),
        waste=(unused / stream.quota_tokens if waiting and stream.quota_tokens else 0.0),
        below_90=_below(decisions, 90, by_name, config.scoring),
        below_75=_below(decisions, 75, by_name, config.scoring),
        seconds=seconds,
    )


def _below(decisions: list[Decision], floor: float, by_name: dict[str, Model],
           scoring: ScoringConfig) -> float:
    assigned = [d for d in decisions if d.model is not None and d.value_score >= floor]
    if not assigned:
        return 0.0
    low = 0
    for d in assigned:
        band = band_for(d.value_score, scoring)
        model = by_name[d.model or ""]
        if band is not None and model.tier not in band.tiers:
            low += 1
    return low / len(assigned)


def strategies(with_optimal: bool, cold: bool) -> list[
    tuple[str, Callable[[Stream, EngineConfig], list[Decision]]]
]:
    runs: list[tuple[str, Callable[[Stream, EngineConfig], list[Decision]]]] = [
        (name, lambda s, c, name=name: run_greedy(s, c, name)) for name in GREEDY  # type: ignore[misc]
    ]
    if with_optimal:
        runs.append(("optimal, one by one",
                     lambda s, c: with_quiet_solver(run_greedy, s, c, "optimal")))
    if cold:
        runs.append(("online, this month only", lambda s, c: run_online(s, c, False)))
    runs.append(("online, with last month", lambda s, c: run_online(s, c, True)))
    return runs


def with_quiet_solver(run: Callable[[Stream, EngineConfig, str], list[Decision]], stream: Stream,
                      config: EngineConfig, strategy: str) -> list[Decision]:
    with solver_output_off_stdout():
        return run(stream, config, strategy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000,
                        help="tasks per month (default 1000)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per case (default 3)")
    parser.add_argument("--orders", default=",".join(ORDERS))
    parser.add_argument("--quotas", default=",".join(QUOTAS))
    parser.add_argument("--with-optimal", action="store_true",
                        help="also `optimal` one task at a time (slow)")
    parser.add_argument("--fit-exponent", type=float, default=None,
                        help="with --objective fit: the rating's power (default: the config's)")
    parser.add_argument("--cold", action="store_true",
                        help="also online with no history from the last month (a cold start)")
    parser.add_argument("--objective", choices=["value", "fit"], default=None,
                        help="objective of optimal and online (default: the config's)")
    args = parser.parse_args()
    config = load_engine_config()
    if args.objective or args.fit_exponent is not None:
        update: dict[str, object] = {}
        if args.objective:
            update["objective"] = args.objective
        if args.fit_exponent is not None:
            update["fit_exponent"] = args.fit_exponent
        scoring = config.scoring.model_copy(update=update)
        config = config.model_copy(update={"scoring": scoring})
    runs = strategies(args.with_optimal, args.cold)
    started = time.perf_counter()
    exponent = (f" (rating ^ {config.scoring.fit_exponent:g})"
                if config.scoring.objective == "fit" else "")
    print(f"{args.tasks} tasks a month, seeds 1..{args.seeds}, objective "
          f"{config.scoring.objective}{exponent}; means over seeds")
    print(f"{'order':<17} {'quota':<7} {'strategy':<29} {'of optimum':>10} {'of LP':>7} "
          f"{'waste':>6} {'>=90 low':>9} {'>=75 low':>9} {'s/run':>6}")
    for order in args.orders.split(","):
        for quota in args.quotas.split(","):
            results: dict[str, list[tuple[float, float, Outcome]]] = {n: [] for n, _ in runs}
            for seed in range(1, args.seeds + 1):
                stream = make_stream(config, args.tasks, seed, order, QUOTAS[quota])
                for name, run in runs:
                    t0 = time.process_time()
                    decisions = run(stream, config)
                    got = outcome(decisions, stream, config, time.process_time() - t0)
                    results[name].append((got.value / stream.optimum if stream.optimum else 1.0,
                                          got.value / stream.bound if stream.bound else 1.0, got))
            for name, rows in results.items():
                print(
                    f"{order:<17} {quota:<7} {name:<29} "
                    f"{statistics.mean(r[0] for r in rows):>10.1%} "
                    f"{statistics.mean(r[1] for r in rows):>7.1%} "
                    f"{statistics.mean(r[2].waste for r in rows):>6.1%} "
                    f"{statistics.mean(r[2].below_90 for r in rows):>9.1%} "
                    f"{statistics.mean(r[2].below_75 for r in rows):>9.1%} "
                    f"{statistics.mean(r[2].seconds for r in rows):>6.2f}",
                    flush=True,
                )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
