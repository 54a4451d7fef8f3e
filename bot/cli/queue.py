"""``model-assigner queue`` (list, retry, drop) and ``model-assigner worker``.

``queue`` works on the server's queue file (``queue.sqlite3`` beside the
store, or MODEL_ASSIGNER_QUEUE) while the server runs: every change is one
SQLite transaction, and a job a worker holds is never dropped under it.
``worker`` runs queue workers in the foreground: the Procfile's ``worker:``
line, for more workers than the web processes hold.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

from model_assigner.bot.queue.db import QueueDb, QueueDbError
from model_assigner.bot.queue.jobs import JobInfo, JobQueue, SqliteJobQueue
from model_assigner.bot.queue.ratelimit import RateLimiter, RateLimits


def _fail(message: str) -> Exception:
    from model_assigner.bot.cli.errors import CliError

    return CliError(message)


def _queue() -> tuple[JobQueue, RateLimits]:
    from model_assigner.bot.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    if settings.database_url:  # the queue is in the database, with the state
        from model_assigner.bot.pg import Database
        from model_assigner.bot.queue.pg import PgJobQueue, PgRateLimiter

        database = Database(settings.database_url)
        return PgJobQueue(database), PgRateLimiter(database)
    if not settings.queue_path.exists():
        raise _fail(f"{settings.queue_path}: no queue yet (the server creates it); is "
                    "MODEL_ASSIGNER_STATE (or MODEL_ASSIGNER_QUEUE) the server's?")
    db = QueueDb(settings.queue_path)
    return SqliteJobQueue(db), RateLimiter(db)


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _row(job: JobInfo) -> dict[str, Any]:
    return {
        "issue": job.key, "state": job.state, "installation": job.installation,
        "deliveries": job.deliveries, "attempts": job.attempts,
        "not_before": _when(job.not_before), "queued_at": _when(job.created_at),
        "last_error": job.last_error,
    }


def cmd_queue(args: argparse.Namespace) -> int:
    try:
        queue, limiter = _queue()
    except QueueDbError as exc:  # a queue file that cannot be opened: one line
        raise _fail(str(exc)) from None
    try:
        return _queue_command(args, queue, limiter)
    finally:
        database = getattr(queue, "database", None)
        if database is not None:  # the database's connections, closed before the exit
            database.release()


def _queue_command(args: argparse.Namespace, queue: JobQueue, limiter: RateLimits) -> int:
    try:
        if args.action in ("retry", "drop"):
            if not args.key:
                raise _fail(f"queue {args.action}: name the job's issue (OWNER/REPO#N), "
                            "or --all-dead")
            keys = [args.key] if args.key != "--all-dead" else [
                j.key for j in queue.jobs("dead")]
            done = [k for k in keys if (queue.revive(k) if args.action == "retry"
                                        else queue.drop(k))]
            missing = sorted(set(keys) - set(done))
            for key in done:
                print(f"{'retrying' if args.action == 'retry' else 'dropped'} {key}")
            if missing:
                raise _fail(f"no such job (or a worker holds it now): {', '.join(missing)}")
            return 0
        jobs = queue.jobs("dead" if args.dead else None)
        stats = queue.stats()
        blocks = limiter.blocks()
    except QueueDbError as exc:
        raise _fail(str(exc)) from None
    rows = [_row(j) for j in jobs]
    if args.json:
        json.dump({
            "jobs": rows,
            "waiting": stats.waiting, "running": stats.running, "dead": stats.dead,
            "oldest_job_seconds": round(stats.oldest_age, 1),
            "rate_limited": [{"installation": i, "until": _when(u), "reason": r}
                             for i, u, r in blocks],
            "counters": stats.counters,
        }, sys.stdout, indent=2)
        print()
        return 0
    print(f"{stats.waiting} waiting, {stats.running} running, {stats.dead} dead; "
          f"oldest {stats.oldest_age:.0f}s")
    for installation, until, reason in blocks:
        print(f"installation {installation} rate limited until {_when(until)} UTC: {reason}")
    for row in rows:
        print(f"{row['state']:<8} {row['issue']:<40} attempts {row['attempts']}  "
              f"deliveries {row['deliveries']}  next {row['not_before']}"
              + (f"\n         {row['last_error']}" if row["last_error"] else ""))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Queue workers without a web server, until SIGTERM or SIGINT."""
    from model_assigner.bot.heap import settle
    from model_assigner.bot.settings import SettingsError, load_settings
    from model_assigner.bot.store.state import StoreError
    from model_assigner.bot.wiring import build_services, configure_logging
    from model_assigner.core.loader import ConfigError

    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        services = build_services(settings)
    except (SettingsError, ConfigError, StoreError, QueueDbError) as exc:
        raise _fail(str(exc)) from None
    worker = services.worker(threads=args.threads)
    # bot/heap.py: no full collection walks the modules' objects again
    settle(services.handler.engine.scoring.quota_strategy)
    stopping: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.start()
    where = "the database" if settings.database_url else settings.queue_path
    print(f"model-assigner worker: {args.threads} threads on {where}",
          file=sys.stderr, flush=True)
    while not stopping:
        time.sleep(0.2)
    worker.stop()
    return 0


def add_commands(sub: Any) -> None:
    queue = sub.add_parser("queue", help="list the delivery queue's waiting and dead jobs; "
                           "retry or drop one")
    queue.add_argument("action", nargs="?", choices=("list", "retry", "drop"), default="list",
                       help="list (default) the jobs, retry one, or drop one")
    queue.add_argument("key", nargs="?", metavar="OWNER/REPO#N",
                       help="the job's issue (retry also takes --all-dead)")
    queue.add_argument("--dead", action="store_true", help="list only the dead jobs")
    queue.add_argument("--json", action="store_true", help="print JSON instead of a table")
    queue.set_defaults(handler=cmd_queue)

    worker = sub.add_parser("worker", help="run queue workers without a web server "
                            "(the Procfile's worker line)")
    worker.add_argument("--threads", type=int,
                        default=int(os.environ.get("MODEL_ASSIGNER_WORKER_THREADS", "4") or 4),
                        help="worker threads (default: MODEL_ASSIGNER_WORKER_THREADS, else 4)")
    worker.set_defaults(handler=cmd_worker)
