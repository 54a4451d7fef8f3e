"""The PostgreSQL back end against the JSON store: acknowledgement throughput
and latency, decisions per second, and database round trips per delivery.

Servers are the Procfile's web: line (gunicorn, 2 workers each) in dry-run
mode (no GitHub: what is measured is the App and its store), receiving
signed ``issues.opened`` deliveries for distinct issues from 16 clients,
spread evenly over the servers. A delivery is acknowledged when it is
answered 202 (queued, durable); it is decided when its job has left the
queue. Runs: the JSON store with one server, PostgreSQL with one and with
three servers (on one database).

Round trips are counted in-process (bot.pg.STATEMENTS: every statement the
pool's connections send, one round trip each), and the entry rows the store
reads (bot.pg.ROWS_READ): one delivery accepted, claimed, decided (dry-run)
and finished, averaged over many, on an empty store and on one holding 1,000
other issues (their dependencies, reservations, comments, old history).

    .venv/bin/python -m bench.bench_postgresql --database postgresql://... \\
        [--deliveries 600] [--clients 16]

The database must be empty or throwaway: its tables are emptied.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import (
    ROOT,
    SECRET,
    Delivery,
    machine,
    percentile,
    send_all,
    signed,
    start_server,
    stop_server,
)

WEBHOOK = ROOT / "tests" / "fixtures" / "github" / "webhooks" / "issues.opened.json"
TABLES = ("ma_ledger", "ma_reservations", "ma_records", "ma_dependencies", "ma_usage",
          "ma_seen", "ma_deferred", "ma_deliveries", "ma_reconciled", "ma_queue_deliveries",
          "ma_jobs", "ma_outcomes", "ma_counters", "ma_meta", "ma_rate_events",
          "ma_rate_blocks")


def payload(number: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(WEBHOOK.read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    data["issue"]["number"] = number
    data["issue"]["labels"] = [{"name": "P1"}, {"name": "backend"}]
    data["issue"]["body"] = "Fix the API's pagination: the last page is dropped."
    data["sender"] = {"login": "octocat"}
    return data


def empty(url: str) -> None:
    import psycopg

    from model_assigner.bot.pg import Database
    from model_assigner.bot.store.pg_schema import migrate

    db = Database(url, pool_size=1)
    migrate(db)
    db.release()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)}".encode())


def queue_empty(url: str | None, state: Path) -> bool:
    if url is not None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM ma_jobs").fetchone()
        return bool(row and row[0] == 0)
    import sqlite3

    path = state.with_name("queue.sqlite3")
    if not path.exists():
        return False
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0]) == 0


def run(folder: Path, name: str, url: str | None, servers: int, count: int,
        clients: int) -> str:
    state = folder / name / "state.json"
    env = {"MODEL_ASSIGNER_STATE": url or str(state), "MODEL_ASSIGNER_LOG_LEVEL": "WARNING"}
    if url is not None:
        empty(url)
    started = [start_server(folder, env, name=f"{name}-{i}") for i in range(servers)]
    try:
        base = uuid.uuid4().int % 1_000_000
        batch = [signed(base + n, payload(base + n), str(uuid.uuid4())) for n in range(count)]
        shares: list[list[Delivery]] = [batch[i::servers] for i in range(servers)]
        began = time.monotonic()
        threads = [
            threading.Thread(target=send_all, args=(s.port, share, max(1, clients // servers)))
            for s, share in zip(started, shares, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        acked = time.monotonic() - began
        while not queue_empty(url, state) and time.monotonic() - began < 600:
            time.sleep(0.05)
        decided = time.monotonic() - began
    finally:
        for server in started:
            stop_server(server)
    bad = [d.status for d in batch if d.status != 202]
    latencies = [d.answered - d.sent for d in batch]
    return (f"{name:<24} {count / acked:8.1f} ack/s  p50 {percentile(latencies, 50) * 1e3:6.1f} ms"
            f"  p99 {percentile(latencies, 99) * 1e3:6.1f} ms  {count / decided:7.1f} decided/s"
            f"{'  NOT 202: ' + str(len(bad)) if bad else ''}")


def fill(url: str, others: int) -> None:
    """What ``others`` busy issues of another repository leave in the store:
    20 dependencies each (the most one may keep), a reservation, a comment
    record, an entry of the online history from before the period it reads."""
    from datetime import UTC, datetime, timedelta

    from model_assigner.bot.config_files import load_engine_config
    from model_assigner.bot.store.postgresql import PgStore
    from model_assigner.bot.store.state import IssueRecord, Reservation, State
    from model_assigner.core.types import Observation, Payment

    now = datetime.now(UTC)

    def change(state: State) -> None:
        for n in range(others):
            key = f"other/repo#{n}"
            state.dependencies[key] = [f"other/repo#{100_000 + m}" for m in range(20)]
            state.reservations[key] = Reservation(
                model="sonnet-4.5", charged_at=now,
                payment=Payment(kind="subscription", family="claude", tokens=1, cost_usd=0.0))
            state.records[key] = IssueRecord(id=n + 1)
            state.seen[key] = Observation(value=1.0, domain="backend", working_set=1,
                                          input_tokens=1, output_tokens=1,
                                          seen_at=now - timedelta(days=100))

    store = PgStore(url, load_engine_config(ROOT / "config").quotas, pool_size=1)
    store.apply(now, change)
    store.release()


def round_trips(url: str, count: int, others: int = 0) -> str:
    """Statements and rows read per delivery on PostgreSQL, in-process:
    accepted, then decided by a worker (claim, the decision's store
    transactions, finish); the store holding ``others`` other issues."""
    from model_assigner.bot.pg import ROWS_READ, STATEMENTS
    from model_assigner.bot.settings import Settings
    from model_assigner.bot.web.app import accept
    from model_assigner.bot.wiring import build_services

    empty(url)
    if others:
        fill(url, others)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(app_id=None, private_key=None, webhook_secret=SECRET,
                            api_url="https://api.github.com",
                            state_path=Path(tmp) / "s.json", config_dir=ROOT / "config",
                            bot_login=None, database_url=url)
        services = build_services(settings)
        worker = services.worker(threads=0)
        accept(services, "issues", "warm-up", payload(1))  # the pool, the ledger
        worker.drain()
        accepted = decided = 0
        rows = ROWS_READ.count
        for n in range(count):
            before = STATEMENTS.count
            accept(services, "issues", str(uuid.uuid4()), payload(100 + n))
            middle = STATEMENTS.count
            worker.drain()
            accepted += middle - before
            decided += STATEMENTS.count - middle
        rows = ROWS_READ.count - rows
        getattr(services.store, "release", lambda: None)()
    return (f"store with {others} other issues: round trips per delivery: "
            f"{accepted / count:.1f} to acknowledge, "
            f"{decided / count:.1f} to decide and finish "
            f"({(accepted + decided) / count:.1f} in all, over {count} deliveries); "
            f"rows read {rows / count:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="a throwaway postgresql:// URL")
    parser.add_argument("--deliveries", type=int, default=600)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    print(machine())
    print(round_trips(args.database, 100))
    print(round_trips(args.database, 100, others=1000))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(run(folder, "json, 1 server", None, 1, args.deliveries, args.clients))
        print(run(folder, "postgresql, 1 server", args.database, 1, args.deliveries,
                  args.clients))
        print(run(folder, "postgresql, 3 servers", args.database, 3, args.deliveries,
                  args.clients))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
