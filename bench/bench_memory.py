"""Memory: the resident set of each gunicorn worker while the real server
(the Procfile's web: line, 2 workers) handles 10,000 deliveries against the
GitHub stand-in (its own process), sampled along the way.

The deliveries go to a fixed set of issues (500 by default): each is opened
once, then edited over and over with a new body and priority (a new
``updated_at`` each time), so the bot re-decides, edits its comment and sets
its label. The store then holds a bounded number of issues, and whatever
grows with the number of deliveries handled (the delivery-id record, caches,
leaks) shows as a slope. ``--distinct`` sends every delivery for a new issue
instead, to show what the store's growth with the number of issues costs.

    .venv/bin/python -m bench.bench_memory [--deliveries 10000] [--issues 500]

Target (issue 5): under 100 MB per worker, and flat.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import (
    APP_ID,
    KINDS,
    Delivery,
    StandIn,
    app_key,
    machine,
    opened_payload,
    rss_mib,
    scaled_config,
    send_all,
    signed,
    standin_process,
    start_server,
    stop_server,
)
from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.jobs import SqliteJobQueue
from model_assigner.bot.store.codec import serialize
from model_assigner.bot.store.json_store import load_files

START = datetime(2026, 11, 1, tzinfo=UTC)


def edited(issue: dict[str, Any], base: str, step: int) -> dict[str, Any]:
    """An issues.edited payload for ``issue``, changed at ``step``: a new body
    (estimates), a new priority, and a newer updated_at."""
    payload = opened_payload(dict(issue), base)
    payload["action"] = "edited"
    changed = payload["issue"]
    old_body = changed.get("body") or ""
    changed["body"] = f"Estimated files: {2 + step % 7}\nEstimated LOC: {100 + 97 * (step % 11)}"
    priority = ("P0", "P1", "P2")[step % 3]
    labels = [label for label in changed["labels"] if label["name"] not in ("P0", "P1", "P2")]
    labels.append({**(changed["labels"][0] if changed["labels"] else {}), "name": priority})
    changed["labels"] = labels
    moment = START + timedelta(seconds=step + 1)
    changed["updated_at"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    payload["changes"] = {"body": {"from": old_body}}
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--issues", type=int, default=500)
    parser.add_argument("--every", type=int, default=500, help="sample every N deliveries")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--distinct", action="store_true",
                        help="every delivery opens a new issue (the store grows)")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    private_key, public_key = app_key(folder)
    config = scaled_config(folder / "config", 1000.0)
    issues = args.deliveries if args.distinct else args.issues
    print(f"machine: {machine()}")
    print(f"{args.deliveries:,} deliveries "
          + ("each for a new issue" if args.distinct else
             f"to {issues:,} issues (opened once, then edited)")
          + f", {args.clients} clients, gunicorn from the Procfile (2 workers x 4 threads)")
    with standin_process(folder, public_key) as standin:
        created = time.monotonic()
        payloads = {}
        for number in range(1, issues + 1):
            labels, body = KINDS[number % len(KINDS)]
            payloads[number] = opened_payload(standin.add_issue(number, labels, body), standin.url)
        print(f"(issues created at the stand-in in {time.monotonic() - created:.1f} s)")
        server = start_server(folder, {
            "GITHUB_APP_ID": str(APP_ID),
            "GITHUB_PRIVATE_KEY": private_key,
            "GITHUB_API_URL": standin.url,
            "MODEL_ASSIGNER_CONFIG": str(config),
            "MODEL_ASSIGNER_LOG_LEVEL": "WARNING",
            # GitHub's write pacing off (1 s between writes would make 10,000
            # deliveries take hours): what is measured is memory, not the throttle.
            "MODEL_ASSIGNER_WRITES_PER_MINUTE": "100000",
            "MODEL_ASSIGNER_WRITES_PER_HOUR": "1000000",
            "MODEL_ASSIGNER_WRITE_INTERVAL_SECONDS": "0",
            "MODEL_ASSIGNER_CATCHUP_SECONDS": "0",
        }, name="bot")
        try:
            rows = run(server, standin, payloads, args)
        finally:
            stop_server(server)
    shutil.rmtree(folder, ignore_errors=True)
    report(rows, args.deliveries)
    return 0


def run(server: Any, standin: StandIn, payloads: dict[int, dict[str, Any]],
        args: argparse.Namespace) -> list[tuple[int, list[float], float, int, int, float]]:
    workers, master = server.workers(), server.master()
    rows = []

    def sample(done: int, seconds: float) -> None:
        store = json.loads(serialize(load_files(server.state))) if server.state.exists() \
            else {"deliveries": {}, "reservations": {}}
        size = server.state.stat().st_size if server.state.exists() else 0
        rows.append((done, [rss_mib(pid) for pid in workers], rss_mib(master),
                     len(store["deliveries"]), size, seconds))

    sample(0, 0.0)
    numbers = list(payloads)
    done = 0
    while done < args.deliveries:
        batch: list[Delivery] = []
        for step in range(done, min(done + args.every, args.deliveries)):
            if args.distinct or step < len(numbers):
                number = numbers[step % len(numbers)]
                payload = payloads[number]
            else:
                number = numbers[step % len(numbers)]
                payload = edited(payloads[number]["issue"], standin.url, step)
            batch.append(signed(number, payload, str(uuid.uuid4())))
        # Issues in numeric order within a chunk, so no two deliveries for one
        # issue race (each is one edit after another, as a person makes them).
        began = time.monotonic()
        send_all(server.port, batch, args.clients)
        failed = [d for d in batch if d.status not in (200, 202)]
        if failed:
            raise SystemExit(f"HTTP {failed[0].status}: {failed[0].answer[:300]!r}")
        # Acknowledged at once; the queue's workers decide: the chunk is done
        # (and its memory counted) once the queue is empty.
        wait_for_queue(server.state.with_name("queue.sqlite3"))
        seconds = time.monotonic() - began
        done += len(batch)
        sample(done, seconds)
    return rows


def wait_for_queue(path: Path, timeout: float = 600.0) -> None:
    jobs = SqliteJobQueue(QueueDb(path))
    deadline = time.monotonic() + timeout
    while (stats := jobs.stats()).waiting + stats.running > 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"the queue did not drain in {timeout:g} s")
        time.sleep(0.05)


def report(rows: list[tuple[int, list[float], float, int, int, float]], total: int) -> None:
    print(f"{'deliveries':>10} {'worker 1':>9} {'worker 2':>9} {'master':>7} "
          f"{'ids kept':>8} {'store':>9} {'rate':>8}")
    previous = 0
    for done, workers, master, ids, size, seconds in rows:
        rate = f"{(done - previous) / seconds:,.0f}/s" if seconds else "-"
        previous = done
        print(f"{done:>10,} " + " ".join(f"{w:>6.1f} MB" for w in workers)
              + f" {master:>4.1f} MB {ids:>8,} {size / 1024:>6.0f} KB {rate:>8}")
    peak = max(max(r[1]) for r in rows)
    half = [r for r in rows if r[0] >= total // 2]
    growth = [(half[-1][1][i] - half[0][1][i]) / max(1, half[-1][0] - half[0][0]) * 1000
              for i in range(len(half[0][1]))]
    print(f"peak worker RSS {peak:.1f} MB (target < 100 MB: {'met' if peak < 100 else 'MISSED'}); "
          "growth over the second half: "
          + ", ".join(f"{g:+.2f} MB per 1,000 deliveries" for g in growth))


if __name__ == "__main__":
    sys.exit(main())
