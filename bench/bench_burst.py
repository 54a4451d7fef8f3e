"""Bursts against a GitHub that is slow and limits writes (issue 10).

The real gunicorn server (the Procfile's web: line, 2 workers, the queue's
workers inside them) against the GitHub stand-in in its own process:

1. ``burst``: 100 new issues at once (16 clients) into GitHub's secondary
   limit (80 content-creating requests a minute, 500 an hour, 403 with
   retry-after: 60 past them), every call taking 150 ms.
2. ``concurrent``: 100 deliveries at once (100 clients), every call taking
   300 ms, no limit.

For each: acknowledgement p50/p99 against a bare signature-checking
endpoint under the same gunicorn line (bench/floor_app.py) answering the
same deliveries; acknowledgements past 1 s; answers 5xx; requests the limit
refused; completion time (first delivery sent to the last issue decided)
against the least the rate policy allows for the writes made (1 s apart,
80 a minute, 500 an hour); issues fully decided (one model label, one bot
comment, one reservation); redeliveries (none are made: the script never
resends).

    .venv/bin/python -m bench.bench_burst [--issues 100] [--only burst|concurrent]
        [--synchronous NORMAL|FULL]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import (
    APP_ID,
    FLOOR_APP,
    REPO,
    Delivery,
    StandIn,
    app_key,
    machine,
    opened_payload,
    percentile,
    send_all,
    signed,
    standin_process,
    start_server,
    stop_server,
)
from bench.harness import KINDS as ISSUE_KINDS
from model_assigner.bot.comment import MARKER
from model_assigner.bot.store.codec import serialize
from model_assigner.bot.store.json_store import load_files

WRITES = ("POST", "PATCH", "PUT", "DELETE")
# The queue file's SQLite synchronous mode for the server (--synchronous).
SYNCHRONOUS = ["NORMAL"]


def policy_minimum(writes: int, per_minute: int = 80, per_hour: int = 500,
                   interval: float = 1.0) -> float:
    """Seconds from the first write to the last under the rate policy."""
    times: list[float] = []
    for _ in range(writes):
        t = times[-1] + interval if times else 0.0
        while len([x for x in times if x > t - 60]) >= per_minute:
            t = next(x for x in times if x > t - 60) + 60
        while len([x for x in times if x > t - 3600]) >= per_hour:
            t = next(x for x in times if x > t - 3600) + 3600
        times.append(t)
    return times[-1] if times else 0.0


def make_issues(standin: StandIn, numbers: range) -> dict[int, dict[str, Any]]:
    payloads = {}
    for number in numbers:
        labels, body = ISSUE_KINDS[number % len(ISSUE_KINDS)]
        payloads[number] = opened_payload(standin.add_issue(number, labels, body), standin.url)
    return payloads


def batch(payloads: dict[int, dict[str, Any]]) -> list[Delivery]:
    return [signed(n, p, str(uuid.uuid4())) for n, p in payloads.items()]


def floor_acks(folder: Path, payloads: dict[int, dict[str, Any]], clients: int) -> list[float]:
    server = start_server(folder, {}, app=FLOOR_APP, name="floor")
    try:
        send_all(server.port, batch(payloads), clients)  # warm
        sent = batch(payloads)
        send_all(server.port, sent, clients)
    finally:
        stop_server(server)
    return [d.answered - d.sent for d in sent]


def decided(standin: StandIn, numbers: range, store: dict[str, Any]) -> int:
    done = 0
    for number in numbers:
        state = standin.issue_state(number)
        labels = [x["name"] for x in state["issue"]["labels"] if x["name"].startswith("model:")]
        comments = [c for c in state["comments"] if MARKER in c["body"]]
        held = store["reservations"].get(f"{REPO}#{number}")
        ok_label = len(labels) == 1 and (held is None or labels == [f"model:{held['model']}"])
        if ok_label and len(comments) == 1 and (held is not None or labels == ["model:deferred"]):
            done += 1
    return done


def queue_left(queue_file: Path) -> int:
    try:
        with sqlite3.connect(queue_file, timeout=30) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
    except sqlite3.Error:
        return -1


def scenario(folder: Path, standin: StandIn, private_key: str, name: str,
             numbers: range, clients: int, latency: float,
             limits: list[Any] | None, floor: list[float]) -> dict[str, Any]:
    env = {
        "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_PRIVATE_KEY": private_key,
        "GITHUB_API_URL": standin.url,
        "MODEL_ASSIGNER_LOG_LEVEL": "WARNING",
        "MODEL_ASSIGNER_CATCHUP_SECONDS": "0",
        "MODEL_ASSIGNER_QUEUE_SYNCHRONOUS": SYNCHRONOUS[0],
    }
    payloads = make_issues(standin, numbers)
    server = start_server(folder, env, name=name)
    try:
        standin.control("POST", "pace", {"latency": [latency, latency], "write_limits": limits})
        standin.control("DELETE", "requests")
        refused_before = standin.control("GET", "pace")["refused"]
        sent = batch(payloads)
        send_all(server.port, sent, clients)
        queue_file = server.state.with_name("queue.sqlite3")
        while queue_left(queue_file) != 0:
            time.sleep(0.5)
        store: dict[str, Any] = json.loads(serialize(load_files(server.state)))
        calls = standin.requests()
        refused = standin.control("GET", "pace")["refused"] - refused_before
    finally:
        standin.control("POST", "pace", {"latency": [0, 0], "write_limits": None})
        stop_server(server)
    acks = [d.answered - d.sent for d in sent]
    writes = [c for c in calls if c["method"] in WRITES and c["path"].startswith("/repos/")
              and c["status"] < 300]
    first_sent = min(d.sent for d in sent)
    last_write = max(c["finished"] for c in writes)
    minimum = policy_minimum(len(writes))
    return {
        "name": name,
        "issues": len(numbers),
        "ack_p50_ms": percentile(acks, 50) * 1000,
        "ack_p99_ms": percentile(acks, 99) * 1000,
        "floor_p50_ms": percentile(floor, 50) * 1000,
        "floor_p99_ms": percentile(floor, 99) * 1000,
        "acks_over_1s": sum(1 for a in acks if a > 1.0),
        "answers_5xx": sum(1 for d in sent if d.status >= 500),
        "answers_not_202": sum(1 for d in sent if d.status != 202),
        "refused_by_limit": refused,
        "writes": len(writes),
        "completion_s": last_write - first_sent,
        "policy_minimum_s": minimum,
        "decided": decided(standin, numbers, store),
        "redeliveries": 0,
    }


def report(r: dict[str, Any]) -> None:
    ratio = r["completion_s"] / r["policy_minimum_s"] if r["policy_minimum_s"] else float("nan")
    print(f"\n== {r['name']}: {r['issues']} issues")
    print(f"acknowledgement p50 {r['ack_p50_ms']:.1f} ms, p99 {r['ack_p99_ms']:.1f} ms "
          f"(bare endpoint p50 {r['floor_p50_ms']:.1f} ms, p99 {r['floor_p99_ms']:.1f} ms; "
          f"p99 ratio {r['ack_p99_ms'] / r['floor_p99_ms']:.2f}x)")
    print(f"acknowledgements past 1 s: {r['acks_over_1s']}; answered 5xx: {r['answers_5xx']}; "
          f"not 202: {r['answers_not_202']}; redeliveries: {r['redeliveries']}")
    print(f"requests refused by the limit: {r['refused_by_limit']}")
    print(f"completion {r['completion_s']:.1f} s for {r['writes']} writes; least the rate "
          f"policy allows {r['policy_minimum_s']:.1f} s ({ratio:.2f}x)")
    print(f"issues fully decided: {r['decided']} of {r['issues']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issues", type=int, default=100)
    parser.add_argument("--only", choices=("burst", "concurrent"))
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL",
                        help="the queue file's SQLite synchronous mode "
                        "(MODEL_ASSIGNER_QUEUE_SYNCHRONOUS)")
    args = parser.parse_args(argv)
    SYNCHRONOUS[0] = args.synchronous
    folder = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    private_key, public_key = app_key(folder)
    print(f"machine: {machine()}")
    print(f"queue file: synchronous={args.synchronous}")
    results = []
    with standin_process(folder, public_key) as standin:
        start = 1
        if args.only in (None, "burst"):
            numbers = range(start, start + args.issues)
            floor = floor_acks(folder, make_issues(standin, range(90_001, 90_001 + args.issues)),
                               16)
            results.append(scenario(folder, standin, private_key, "burst", numbers, 16, 0.150,
                                    [80, 500, 60], floor))
            report(results[-1])
            start += args.issues
        if args.only in (None, "concurrent"):
            numbers = range(start, start + args.issues)
            floor = floor_acks(folder,
                               make_issues(standin, range(95_001, 95_001 + args.issues)),
                               args.issues)
            results.append(scenario(folder, standin, private_key, "concurrent", numbers,
                                    args.issues, 0.300, None, floor))
            report(results[-1])
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
