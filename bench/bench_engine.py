"""Engine throughput and memory: 10,000 generated tasks, one by one and as a
batch under each strategy. Prints tasks per second (best of 3 runs) and peak
memory.

    .venv/bin/python -m bench.bench_engine [--tasks N]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

from bench.generate import generate_tasks
from model_assigner.bot.config_files import load_engine_config
from model_assigner.core.batch import optimize_task_assignments
from model_assigner.core.config import EngineConfig
from model_assigner.core.quota import Ledger, update_quota_tracking
from model_assigner.core.selection import select_model
from model_assigner.core.types import STRATEGIES, Task
from model_assigner.core.wording import explain

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def fresh_ledger(config: EngineConfig, scale: float) -> Ledger:
    start = config.quotas.ledger_at(NOW)
    subs = [
        s.model_copy(update={"token_limit_monthly": int((s.token_limit_monthly or 0) * scale)})
        for s in start.subscriptions
    ]
    budget = start.budget.model_copy(
        update={"monthly_limit_usd": start.budget.monthly_limit_usd * scale}
    )
    return Ledger(subs, budget)


def one_by_one(tasks: list[Task], config: EngineConfig, ledger: Ledger, explain_too: bool) -> None:
    for task in tasks:
        decision = select_model(task, ledger, config.models, config.scoring, NOW)
        if decision.payment is not None:
            update_quota_tracking(ledger, decision.payment)
        if explain_too:
            explain(decision)


def measure(label: str, count: int, run: Callable[[], None], repeat: int = 3) -> None:
    """The best of ``repeat`` timed runs (timeit's rule: on a shared machine
    the slower runs measure the neighbours), then one run for memory."""
    elapsed = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        elapsed = min(elapsed, time.perf_counter() - start)
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{label:<40} {count / elapsed:>10,.0f} tasks/s {elapsed * 1e6 / count:>8.1f} us/task "
        f"{peak / 2**20:>8.1f} MiB peak traced"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--scale", type=float, default=20.0, help="quota and budget multiplier")
    args = parser.parse_args()

    config = load_engine_config()
    tasks = generate_tasks(args.tasks, NOW)
    print(
        f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
        f"{args.tasks:,} tasks, quotas x{args.scale:g}"
    )
    measure(
        "select_model, one by one",
        len(tasks),
        lambda: one_by_one(tasks, config, fresh_ledger(config, args.scale), False),
    )
    measure(
        "select_model + explanation, one by one",
        len(tasks),
        lambda: one_by_one(tasks, config, fresh_ledger(config, args.scale), True),
    )
    # `optimal` imports scipy on first use (about 0.8 s here): import it now,
    # so the figure is the plan's, not the import's.
    import scipy.optimize  # noqa: F401

    import model_assigner.core.optimal  # noqa: F401

    for strategy in STRATEGIES:

        def batch(strategy: str = strategy) -> None:
            optimize_task_assignments(
                tasks,
                fresh_ledger(config, args.scale),
                config.models,
                config.scoring,
                NOW,
                strategy,
            )

        measure(f"batch {strategy}", len(tasks), batch)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole run: {peak_rss:.0f} MiB")


if __name__ == "__main__":
    main()
