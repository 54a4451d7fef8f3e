"""Calibration and usage reports on a generated history.

    .venv/bin/python -m bench.bench_calibration [--seeds 5] [--test 1000]

Tasks come from bench/generate.py and are estimated by the real engine
(config/). Their *true* usage is the formula's estimate times a hidden factor
per domain (below), times log-normal noise (sigma 0.35), and one issue in 50
is a runaway (x5 on top).

1. Estimate error: the median absolute percentage error of the estimate
   against true usage on --test held-out issues, with the formula alone and
   with the calibration learned (config's settings) from the first 10, 50 and
   200 finished issues. The median over --seeds histories.
2. Quota drift over a month: 20 issues a day for the first 28 days of a
   month, decided by the App's own code (select_model against the store's
   ledger, reservation, note_decision), their agent runs finishing two days
   later, then closed as completed. At the month's end, the store's count
   (claude subscription tokens and API dollars) is compared with what the
   runs truly used: without usage reports (estimates stand), with every run
   reported, and with 80% reported; both with calibration on (learning as
   reports come in) and off.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bench.generate import generate_tasks
from bench.harness import machine
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.store.state import Reservation, State, apply_resets, initial_state
from model_assigner.bot.usage_store import calibrated, note_decision, record_report
from model_assigner.core.assessment import assess
from model_assigner.core.calibration import Sample, learn, with_learned
from model_assigner.core.config import CalibrationConfig, EngineConfig, ScoringConfig
from model_assigner.core.selection import select_model
from model_assigner.core.types import Task
from model_assigner.core.usage import TokenUsage, UsageReport, estimate_class, list_price

NOW = datetime(2026, 11, 1, tzinfo=UTC)
HIDDEN = {
    "infrastructure": 3.0,
    "backend": 1.3,
    "ml": 1.8,
    "frontend": 0.8,
    "testing": 1.1,
    "documentation": 0.6,
}
SIGMA = 0.35
SIZES = (10, 50, 200)


def true_usage(estimate: int, domain: str, rng: random.Random) -> int:
    factor = HIDDEN.get(domain, 1.0) * math.exp(rng.gauss(0.0, SIGMA))
    if rng.random() < 0.02:
        factor *= 5
    return max(1, round(estimate * factor))


def history(config: EngineConfig, count: int, seed: int) -> list[tuple[Task, str, str, int, int]]:
    """(task, complexity, domain, formula estimate, true usage) per issue."""
    rng = random.Random(seed)
    out: list[tuple[Task, str, str, int, int]] = []
    for task in generate_tasks(count, NOW, seed=seed):
        assessed = assess(task, config.scoring, NOW)
        domain, complexity = assessed.domain, assessed.breakdown.complexity
        estimate = assessed.tokens.total
        out.append((task, complexity, domain, estimate, true_usage(estimate, domain, rng)))
    return out


def mape(pairs: Sequence[tuple[float, int]]) -> float:
    return statistics.median(abs(est - true) / true for est, true in pairs)


def estimate_error(config: EngineConfig, seeds: int, test: int) -> dict[str, list[float]]:
    settings = config.scoring.calibration
    results: dict[str, list[float]] = {"formula": []}
    for size in SIZES:
        results[f"calibrated, {size} finished"] = []
    for seed in range(seeds):
        issues = history(config, max(SIZES) + test, seed)
        train, held_out = issues[: max(SIZES)], issues[max(SIZES):]
        results["formula"].append(mape([(est, true) for _, _, _, est, true in held_out]))
        for size in SIZES:
            table = learn(
                [Sample(c, d, est, true) for _, c, d, est, true in train[:size]], settings
            )
            scoring = with_learned(config.scoring, table)
            pairs = [(assess(task, scoring, NOW).tokens.total, true)
                     for task, _, _, _, true in held_out]
            results[f"calibrated, {size} finished"].append(mape(pairs))
    return results


def month_drift(
    config: EngineConfig, scoring: ScoringConfig, reported: float, seed: int
) -> tuple[float, float]:
    """(subscription token drift, API dollar drift) at the month's end, as
    (store - true) / true."""
    rng = random.Random(seed)
    state: State = initial_state(config.quotas, NOW)
    for sub in state.subscriptions.values():
        sub.token_limit_monthly = None  # the drift, not the limit, is measured
        sub.reset_date = datetime(2026, 12, 1, tzinfo=UTC)
    state.api_budget.monthly_limit_usd = 1e9
    state.api_budget.reset_date = datetime(2026, 12, 1, tzinfo=UTC)
    tasks = generate_tasks(28 * 20, NOW, seed=seed)
    finishing: dict[int, list[tuple[str, int, bool]]] = {}
    true_tokens = true_usd = 0.0
    models = config.models
    for day in range(30):
        moment = NOW + timedelta(days=day, hours=12)
        apply_resets(state, moment)
        for key, tokens, report in finishing.pop(day, []):
            held = state.reservations.get(key)
            if held is None:
                continue
            model = config.model_named(held.model)
            assert model is not None
            line = TokenUsage(input_tokens=tokens)
            if held.payment.kind == "subscription":
                true_tokens += tokens
            else:
                true_usd += list_price(model, line)
            if report:
                record_report(state, key, UsageReport(run_id=f"run-{key}", lines=[line]),
                              models, moment)
            state.settle(key)
        if day >= 28:
            continue
        tuned = calibrated(state, scoring)
        for task in tasks[day * 20 : (day + 1) * 20]:
            decision = select_model(task, state.ledger().copy(), models, tuned, moment)
            if decision.payment is None or decision.model is None:
                continue
            key = f"bench/repo#{task.id}"
            state.reserve(key, Reservation(model=decision.model, payment=decision.payment,
                                           charged_at=moment, estimated=estimate_class(decision)))
            note_decision(state, key, decision, models, moment)
            base = round(decision.tokens.total / decision.tokens.calibration)
            domain = decision.breakdown.domain
            finishing.setdefault(day + 2, []).append(
                (key, true_usage(base, domain, rng), rng.random() < reported)
            )
    store_tokens = state.subscriptions["claude"].tokens_used_month
    store_usd = state.api_budget.spent_usd
    return (store_tokens - true_tokens) / true_tokens, (store_usd - true_usd) / true_usd


def decision_cost(config: EngineConfig, records: int, finished: int) -> tuple[float, float]:
    """Milliseconds the calibration adds to a decision (``calibrated`` on a
    store holding ``records`` issues, ``finished`` of them with reports):
    the first time in a process, then the usual case (unchanged records)."""
    import time

    state = initial_state(config.quotas, NOW)
    task = generate_tasks(1, NOW, seed=1)[0]
    decision = select_model(task, state.ledger().copy(), config.models, config.scoring, NOW)
    assert decision.model is not None and decision.payment is not None
    state.reserve("x", Reservation(model=decision.model, payment=decision.payment,
                                   charged_at=NOW, estimated=estimate_class(decision)))
    record_report(state, "x", UsageReport(run_id="r", lines=[TokenUsage(input_tokens=5000)]),
                  config.models, NOW)
    state.settle("x")
    done = state.usage.pop("x")
    rng = random.Random(1)
    for index in range(records):
        if index < finished:
            run = next(iter(done.runs.values()))
            line = TokenUsage(input_tokens=rng.randint(1_000, 100_000))
            state.usage[f"o/r#{index}"] = done.model_copy(
                update={"runs": {"r": run.model_copy(update={"lines": [line]})}})
        else:
            state.usage[f"o/r#{index}"] = done.model_copy(update={"runs": {}})
    started = time.perf_counter()
    calibrated(state, config.scoring)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(20):
        calibrated(state, config.scoring)
    return first * 1000, (time.perf_counter() - started) / 20 * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    config = load_engine_config()
    print(f"machine: {machine()}")
    print(f"hidden factors per domain: {HIDDEN}; noise sigma {SIGMA}; 2% runaways x5")
    print(f"\n1. estimate error on {args.test} held-out issues, median of {args.seeds} histories")
    print(f"{'estimate':<28} {'median abs. % error':>20}")
    for name, values in estimate_error(config, args.seeds, args.test).items():
        print(f"{name:<28} {statistics.median(values):>19.1%}")

    print("\n2. quota drift at the month's end, (store - true) / true, "
          f"median of {args.seeds} months")
    off = config.scoring.model_copy(
        update={"calibration": CalibrationConfig(enabled=False)})
    print(f"{'usage reports':<22} {'calibration':<12} {'claude tokens':>14} {'API dollars':>12}")
    for reported, label in ((0.0, "none"), (0.8, "80% of runs"), (1.0, "every run")):
        for scoring, cal in ((off, "off"), (config.scoring, "on")):
            drifts = [month_drift(config, scoring, reported, seed) for seed in range(args.seeds)]
            tokens = statistics.median(d[0] for d in drifts)
            dollars = statistics.median(d[1] for d in drifts)
            print(f"{label:<22} {cal:<12} {tokens:>+14.1%} {dollars:>+12.1%}")

    print("\n3. what calibration adds to a decision (calibrated(), outside the store lock)")
    for records, finished in ((1_000, 300), (6_000, 5_000)):
        first, usual = decision_cost(config, records, finished)
        print(f"{records:>6,} usage records, {finished:,} of them finished with reports: "
              f"{first:.1f} ms the first time, {usual:.1f} ms after")


if __name__ == "__main__":
    main()
