"""Webhook throughput and latency: the real server against a floor.

The real gunicorn server (the Procfile's web: line, 2 workers) talks to the
GitHub stand-in, which runs in its own process on loopback. 16 clients send
1,000 signed ``issues.opened`` deliveries for distinct issues. A delivery is
done when it is answered *and* its comment and label are written at the
stand-in (a server that answered first and worked later would not look
faster). The floor is a bare endpoint under the same gunicorn command that
only verifies the signature, parses the JSON and answers 204.

Afterwards every issue is checked: one model label (the one answered), one
bot comment, and its reservation in the store.

    .venv/bin/python -m bench.bench_webhook [--deliveries 1000] [--clients 16]

Targets (issue 5): bot/floor throughput >= 0.5; bot p99 <= 3 x floor p99.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import (
    APP_ID,
    FLOOR_APP,
    REPO,
    Delivery,
    Figures,
    StandIn,
    app_key,
    cpu_seconds,
    machine,
    opened_payload,
    scaled_config,
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


def make_issues(standin: StandIn, numbers: range) -> dict[int, dict[str, Any]]:
    payloads = {}
    for number in numbers:
        labels, body = ISSUE_KINDS[number % len(ISSUE_KINDS)]
        payloads[number] = opened_payload(standin.add_issue(number, labels, body), standin.url)
    return payloads


def deliveries(payloads: dict[int, dict[str, Any]], numbers: range) -> list[Delivery]:
    return [signed(n, payloads[n], str(uuid.uuid4())) for n in numbers]


def floor_run(folder: Path, payloads: dict[int, dict[str, Any]], work: range, warm: range,
              clients: int) -> Figures:
    server = start_server(folder, {}, app=FLOOR_APP, name="floor")
    try:
        send_all(server.port, deliveries(payloads, warm), clients)
        batch = deliveries(payloads, work)
        workers = server.workers()
        cpu = _cpu(workers)
        seconds = send_all(server.port, batch, clients)
        cpu = {k: _cpu(workers)[k] - v for k, v in cpu.items()}
    finally:
        stop_server(server)
    bad = [d for d in batch if d.status != 204]
    if bad:
        raise SystemExit(f"floor: {len(bad)} deliveries not answered 204, e.g. {bad[0].status}")
    return Figures("floor (verify, parse, 204)", len(batch), seconds,
                   [d.answered - d.sent for d in batch], cpu)


def bot_run(folder: Path, standin: StandIn, private_key: str, config: Path,
            payloads: dict[int, dict[str, Any]], work: range, warm: range,
            clients: int, profile: Path | None = None, idle: bool = False,
            ) -> tuple[Figures, list[Delivery], dict[str, Any], list[dict[str, Any]]]:
    env = {
        "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_PRIVATE_KEY": private_key,
        "GITHUB_API_URL": standin.url,
        "MODEL_ASSIGNER_CONFIG": str(config),
        "MODEL_ASSIGNER_LOG_LEVEL": "WARNING",
        # Our code's throughput, not GitHub's pace (bench_burst measures that).
        "MODEL_ASSIGNER_WRITE_INTERVAL_SECONDS": "0",
        "MODEL_ASSIGNER_WRITES_PER_MINUTE": "100000",
        "MODEL_ASSIGNER_WRITES_PER_HOUR": "1000000",
        "MODEL_ASSIGNER_CATCHUP_SECONDS": "0",
    }
    server = start_server(folder, env, name="bot")
    try:
        warmup = deliveries(payloads, warm)
        send_all(server.port, warmup, clients)
        failed = [d for d in warmup if d.status != 202]
        if failed:
            raise SystemExit(f"bot warm-up: HTTP {failed[0].status}: {failed[0].answer!r}")
        drain(server.state.with_name("queue.sqlite3"))
        standin.control("DELETE", "requests")
        batch = deliveries(payloads, work)
        workers = server.workers()
        cpu = _cpu(workers, standin.process.pid)
        spies = [_spy(pid, profile, f"worker-{pid}", idle) for pid in server.workers()] + [
            _spy(standin.process.pid, profile, "standin", idle)
        ] if profile else []
        send_all(server.port, batch, clients)
        drain(server.state.with_name("queue.sqlite3"))  # acknowledged: now decided
        cpu = {k: _cpu(workers, standin.process.pid)[k] - v for k, v in cpu.items()}
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        calls = standin.requests()
    finally:
        stop_server(server)
    store: dict[str, Any] = json.loads(serialize(load_files(server.state)))

    # Done = answered, and the comment and the label written at the stand-in.
    written: dict[int, list[float]] = {}
    prefix = f"/repos/{REPO}/issues/"
    for call in calls:
        path = call["path"]
        if call["method"] == "POST" and path.startswith(prefix) and call["status"] < 300:
            number, _, what = path[len(prefix):].partition("/")
            if what in ("comments", "labels"):
                written.setdefault(int(number), []).append(call["finished"])
    latencies, last = [], 0.0
    first = min(d.sent for d in batch)
    for d in batch:
        done = max([d.answered, *written.get(d.number, [])])
        latencies.append(done - d.sent)
        last = max(last, done)
    figures = Figures("bot (assign, write back)", len(batch), last - first, latencies, cpu)
    return figures, batch, store, calls


def drain(queue_file: Path) -> None:
    """Wait until the server's queue has no job left."""
    while True:
        with sqlite3.connect(queue_file, timeout=30) as conn:
            if not conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]:
                return
        time.sleep(0.2)


def _cpu(workers: list[int], standin: int | None = None) -> dict[str, float]:
    """CPU seconds so far: the server's workers, the stand-in, this process (the clients)."""
    found = {"workers": sum(cpu_seconds(pid) for pid in workers),
             "clients": cpu_seconds(os.getpid())}
    if standin is not None:
        found["stand-in"] = cpu_seconds(standin)
    return found


def _spy(pid: int, folder: Path, name: str, idle: bool) -> subprocess.Popen[bytes]:
    """py-spy recording one process, as collapsed stacks (flame graph input)."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
               "--format", "raw", "--rate", "250", "--output", str(folder / f"{name}.txt")]
    spy = subprocess.Popen(command + (["--idle"] if idle else ["--gil"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the load starts
    return spy


def verify(standin: StandIn, batch: list[Delivery], store: dict[str, Any]) -> list[str]:
    problems = []
    for d in batch:
        if d.status != 202:  # acknowledged; decided by the queue's workers
            problems.append(f"#{d.number}: HTTP {d.status} {d.answer[:200]!r}")
            continue
        state = standin.issue_state(d.number)
        labels = [x["name"] for x in state["issue"]["labels"] if x["name"].startswith("model:")]
        comments = [c for c in state["comments"] if MARKER in c["body"]]
        held = store["reservations"].get(f"{REPO}#{d.number}")
        if held is None or labels != [f"model:{held['model']}"]:
            problems.append(f"#{d.number}: model labels {labels}, reservation {held}")
        if len(comments) != 1:
            problems.append(f"#{d.number}: {len(comments)} bot comments")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=32)
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="record the workers and the stand-in with py-spy into DIR")
    parser.add_argument("--idle", action="store_true",
                        help="py-spy: sample waiting threads too (default: the GIL's holder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    private_key, public_key = app_key(folder)
    config = scaled_config(folder / "config", 1000.0)
    work = range(1, args.deliveries + 1)
    warm = range(args.deliveries + 1, args.deliveries + 1 + args.warmup)
    print(f"machine: {machine()}")
    print(f"{args.deliveries:,} signed issues.opened deliveries for distinct issues, "
          f"{args.clients} concurrent clients, gunicorn from the Procfile (2 workers x 4 "
          f"threads), GitHub stand-in in its own process; {args.warmup} warm-up deliveries "
          f"first (not counted)")
    with standin_process(folder, public_key) as standin:
        started = time.monotonic()
        payloads = make_issues(standin, range(1, args.deliveries + 1 + args.warmup))
        print(f"(issues created at the stand-in in {time.monotonic() - started:.1f} s)")
        floor = floor_run(folder, payloads, work, warm, args.clients)
        bot, batch, store, calls = bot_run(folder, standin, private_key, config, payloads, work,
                                           warm, args.clients, args.py_spy, args.idle)
        problems = verify(standin, batch, store)

    kinds = Counter(f"{c['method']} {_shape(c['path'])}" for c in calls)
    print(floor.line())
    print(bot.line())
    for figures in (floor, bot):
        shares = [f"{name} {seconds * 1000 / figures.count:.2f} ms"
                  for name, seconds in figures.cpu.items()]
        print(f"  CPU per delivery, {figures.name.split()[0]}: " + ", ".join(shares))
    ratio, p99_ratio = bot.rate / floor.rate, bot.p(99) / floor.p(99)
    print(f"throughput bot/floor: {ratio:.2f} "
          f"(target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'})")
    print(f"p99 bot/floor: {p99_ratio:.1f}x "
          f"(target <= 3x: {'met' if p99_ratio <= 3 else 'MISSED'})")
    print(f"GitHub calls per delivery: {len(calls) / len(batch):.2f} "
          + ", ".join(f"{k} {v / len(batch):.2f}" for k, v in kinds.most_common()))
    print(f"store after the run: {len(store['reservations']):,} reservations, "
          f"{len(store['deliveries']):,} delivery ids")
    if problems:
        print(f"VERIFY FAILED for {len(problems)} deliveries:")
        for line in problems[:20]:
            print("  " + line)
    else:
        print(f"verified: all {len(batch):,} issues have one model label, one bot comment "
              f"and their reservation")
    if not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"kept {folder}")
    return 1 if problems else 0


def _shape(path: str) -> str:
    parts = path.split("/")
    return "/".join("{n}" if p.isdigit() else p for p in parts[4:]) or path


if __name__ == "__main__":
    sys.exit(main())
