"""A commit's cost against the store's size (issue 12, item 1): the JSON
store with its journal against the same store rewriting its document on
every commit (``journal_bytes=None``, the layout before the journal).

For each size, a fresh store holding that many other issues, each with what
an attacker's issue leaves behind (an issue record, the 20 dependencies one
issue may keep, a delivery id), then ``--commits`` commits of one delivery's
changes (a reservation and a delivery id), one at a time through
``Store.apply``. Printed per size and layout: the store's size on disk,
p50 and p99 of a commit's time, and the bytes written per commit (the
document rewrites of compactions included, spread over the commits).

    .venv/bin/python -m bench.bench_store [--sizes 0,1000,10000,30000] [--commits 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import machine, percentile
from model_assigner.bot.store.codec import serialize
from model_assigner.bot.store.json_store import JOURNAL_BYTES, Store
from model_assigner.bot.store.state import IssueRecord, Reservation, State, initial_state
from model_assigner.core.config_subscriptions import SubscriptionsConfig
from model_assigner.core.types import ApiBudget, Payment

NOW = datetime(2026, 2, 10, 12, tzinfo=UTC)


def quotas() -> SubscriptionsConfig:
    return SubscriptionsConfig.model_validate({
        "subscriptions": [],
        "api_budget": ApiBudget(
            monthly_limit_usd=1e9, reset_date=datetime(2026, 3, 1, tzinfo=UTC)
        ).model_dump(),
    })


def crowded(others: int) -> State:
    state = initial_state(quotas(), NOW)
    for n in range(others):
        key = f"attacker/repo#{n}"
        state.records[key] = IssueRecord(id=10_000 + n, digest="0123456789abcdef",
                                         label="model:deferred")
        state.dependencies[key] = [f"attacker/repo#{m}" for m in range(n, n + 20)]
        state.remember_delivery(f"{n:08d}-aaaa-bbbb-cccc-dddddddddddd",
                                NOW - timedelta(hours=1))
    return state


def run(folder: Path, others: int, commits: int, journal: bool) -> dict[str, float]:
    path = folder / ("journal" if journal else "rewrite") / "state.json"
    path.parent.mkdir(parents=True)
    path.write_text(serialize(crowded(others)))
    store = Store(path, quotas(), journal_bytes=JOURNAL_BYTES if journal else None)
    store.ensure_exists()
    store.apply(NOW, lambda state: state.remember_delivery("warm-up", NOW))
    written = store.bytes_written
    times: list[float] = []
    for n in range(commits):
        def change(state: State, n: int = n) -> None:
            state.reserve(f"octo/bystander#{n}", Reservation(
                model="glm-4.7", charged_at=NOW,
                payment=Payment(kind="api", family="zhipu", tokens=20_000, cost_usd=0.02),
            ))
            state.remember_delivery(f"bystander-{n}", NOW)
        start = time.perf_counter()
        store.apply(NOW, change)
        times.append(time.perf_counter() - start)
    size = path.stat().st_size + (
        store.journal_path.stat().st_size if store.journal_path.exists() else 0)
    return {
        "store_bytes": size,
        "p50_ms": round(percentile(times, 50) * 1000, 2),
        "p99_ms": round(percentile(times, 99) * 1000, 2),
        "bytes_per_commit": round((store.bytes_written - written) / commits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1000,10000,30000")
    parser.add_argument("--commits", type=int, default=300)
    args = parser.parse_args()
    print(machine())
    print(f"{'other issues':>12} {'layout':>8} {'store bytes':>12} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'bytes/commit':>13}")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        for others in (int(s) for s in args.sizes.split(",")):
            for journal in (True, False):
                folder = Path(tmp) / f"{others}"
                figures = run(folder, others, args.commits, journal)
                print(f"{others:>12,} {'journal' if journal else 'rewrite':>8} "
                      f"{figures['store_bytes']:>12,} {figures['p50_ms']:>8} "
                      f"{figures['p99_ms']:>8} {figures['bytes_per_commit']:>13,}")


if __name__ == "__main__":
    main()
