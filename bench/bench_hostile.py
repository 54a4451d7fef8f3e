"""Hostile load (issue 12): does what other issues stored slow a bystander?

The real gunicorn server (the Procfile's web: line, 2 workers x 4 threads)
against the GitHub stand-in in its own process, on loopback. Two runs, each
on a fresh store:

- empty: ``--bystanders`` deliveries for small issues of another repository
  (``octo/bystander``), from 4 clients;
- hostile: first ``--hostile`` issues (300) of the attacker's repository,
  each with the largest body GitHub allows (65,536 characters): half
  ``Depends on #1, #2, ...`` (thousands of references), half keywords of
  every scoring rule; then the same number of bystander deliveries (the
  figure the target is about), and once more while the hostile issues are
  re-delivered (``edited``) from 4 more clients (printed for information:
  the two share two cores).

A bystander's latency is from sending it to its decision being recorded
(the webhook acknowledges at once and the queue's workers decide: the store
work, which is what other issues' data could slow, is in the decision). The
queue's GitHub write pacing is turned off for both runs.
Printed: the store's size after the hostile issues, and the bystanders'
latency (p50, p99) in both runs. Target: bystander p99 with the hostile
store within 2x of the empty store's. 1,000 bystanders a run by default: the
p99 of 200 is the second slowest of them, which one scheduling delay moves;
of 1,000, the tenth slowest.

    .venv/bin/python -m bench.bench_hostile [--hostile 300] [--bystanders 1000]
"""

from __future__ import annotations

import argparse
import http.client
import queue
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import (
    APP_ID,
    INSTALLATION,
    REPO,
    Delivery,
    StandIn,
    app_key,
    machine,
    opened_payload,
    percentile,
    scaled_config,
    signed,
    standin_process,
    start_server,
    stop_server,
)
from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.jobs import SqliteJobQueue

BYSTANDER = "octo/bystander"
BODY_CHARS = 65_536
KEYWORDS = ("refactor migrate redesign architecture breaking production breaking change "
            "migration experiment prototype ")


def hostile_body() -> str:
    refs = ("Depends on " + ", ".join(f"#{n}" for n in range(1, 20_000)))[: BODY_CHARS // 2]
    words = (KEYWORDS * (BODY_CHARS // len(KEYWORDS) + 1))
    return (refs + "\n" + words)[:BODY_CHARS]


def add_issue(standin: StandIn, repo: str, number: int, labels: list[str], body: str
              ) -> dict[str, Any]:
    issue: dict[str, Any] = standin.control(
        "POST", "issues", {"repo": repo, "number": number, "title": f"Issue {number}",
                           "body": body, "labels": labels, "author": "Codertocat"})
    return issue


def payload_for(issue: dict[str, Any], repo: str, base: str, action: str = "opened"
                ) -> dict[str, Any]:
    payload = opened_payload(issue, base)
    payload["action"] = action
    payload["repository"] = {**payload["repository"], "full_name": repo,
                             "default_branch": "master"}
    return payload


def bystanders(standin: StandIn, start: int, count: int) -> list[Delivery]:
    out = []
    for number in range(start, start + count):
        issue = add_issue(standin, BYSTANDER, number, ["P1", "backend"],
                          "Estimated files: 3\nEstimated LOC: 150")
        out.append(signed(number, payload_for(issue, BYSTANDER, standin.url), str(uuid.uuid4())))
    return out


def store_bytes(state: Path) -> int:
    """The store's size on disk: its document and its journal."""
    journal = state.with_name(state.name + ".journal")
    return state.stat().st_size + (journal.stat().st_size if journal.exists() else 0)


def send_and_decide(port: int, state: Path, batch: list[Delivery], clients: int) -> None:
    """Each client sends a delivery, then waits for its decision in the queue's
    database; ``answered`` is when the decision was seen, ``status`` its status."""
    jobs = SqliteJobQueue(QueueDb(state.with_name("queue.sqlite3")))
    todo: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
    for delivery in batch:
        todo.put(delivery)
    for _ in range(clients):
        todo.put(None)

    def client() -> None:
        while (delivery := todo.get()) is not None:
            # A connection per delivery: one kept alive would be closed by the
            # server while its client waits for the decision.
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            delivery.sent = time.monotonic()
            connection.request("POST", "/webhook", delivery.body, delivery.headers)
            response = connection.getresponse()
            delivery.answer = response.read()
            delivery.status = response.status
            connection.close()
            if response.status == 202:
                wanted = delivery.headers["X-GitHub-Delivery"]
                deadline = time.monotonic() + 60
                while (found := jobs.outcome(wanted)) is None and time.monotonic() < deadline:
                    time.sleep(0.002)
                delivery.status = found[0] if found else 0
            delivery.answered = time.monotonic()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def latencies(batch: list[Delivery]) -> list[float]:
    bad = [d for d in batch if d.status != 200]
    if bad:
        raise SystemExit(f"{len(bad)} bystander deliveries failed: {bad[0].status} "
                         f"{bad[0].answer[:200]!r}")
    return [d.answered - d.sent for d in batch]


def run(folder: Path, standin: StandIn, private: str, config: Path, hostile: int,
        count: int, first: int, name: str) -> dict[str, Any]:
    server = start_server(folder, {
        "GITHUB_APP_ID": str(APP_ID), "GITHUB_PRIVATE_KEY": private,
        "GITHUB_API_URL": standin.url, "MODEL_ASSIGNER_CONFIG": str(config),
        # GitHub's write pacing off: what is measured is the bot's own work
        # per delivery (the store above all), not the deliberate throttle.
        "MODEL_ASSIGNER_WRITES_PER_MINUTE": "100000",
        "MODEL_ASSIGNER_WRITES_PER_HOUR": "1000000",
        "MODEL_ASSIGNER_WRITE_INTERVAL_SECONDS": "0",
    }, name=name)
    try:
        warm = bystanders(standin, first, 20)
        send_and_decide(server.port, server.state, warm, 4)
        figures: dict[str, Any] = {"run": name}
        noise: list[Delivery] = []
        if hostile:
            body = hostile_body()
            issues = [add_issue(standin, REPO, 10_000 + n, ["P0", "backend"], body)
                      for n in range(hostile)]
            opened = [signed(n, payload_for(i, REPO, standin.url), str(uuid.uuid4()))
                      for n, i in enumerate(issues)]
            send_and_decide(server.port, server.state, opened, 8)
            failed = [d.status for d in opened if d.status != 200]
            figures["hostile_failed"] = len(failed)
            figures["store_bytes"] = store_bytes(server.state)
            noise = [signed(n, payload_for(i, REPO, standin.url, "edited"), str(uuid.uuid4()))
                     for n, i in enumerate(issues)]
        batch = bystanders(standin, first + 20, count)
        send_and_decide(server.port, server.state, batch, 4)
        values = latencies(batch)
        figures["p50_ms"] = round(percentile(values, 50) * 1000, 1)
        figures["p99_ms"] = round(percentile(values, 99) * 1000, 1)
        if noise:  # again, while the attacker's issues are re-delivered
            batch = bystanders(standin, first + 20 + count, count)
            background = threading.Thread(
                target=send_and_decide, args=(server.port, server.state, noise, 4), daemon=True
            )
            background.start()
            send_and_decide(server.port, server.state, batch, 4)
            background.join()
            values = latencies(batch)
            figures["noisy_p50_ms"] = round(percentile(values, 50) * 1000, 1)
            figures["noisy_p99_ms"] = round(percentile(values, 99) * 1000, 1)
        figures["store_bytes_end"] = store_bytes(server.state)
        return figures
    finally:
        stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostile", type=int, default=300)
    parser.add_argument("--bystanders", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        folder = Path(tmp)
        private, public = app_key(folder)
        config = scaled_config(folder / "config", 1000.0)
        with standin_process(folder, public) as standin:
            standin.control("POST", "repos", {"full_name": BYSTANDER,
                                              "installation_id": INSTALLATION,
                                              "files": 200, "default_branch": "master"})
            empty = run(folder, standin, private, config, 0, args.bystanders, 1, "empty")
            loaded = run(folder, standin, private, config, args.hostile, args.bystanders,
                         1 + 20 + args.bystanders, "hostile")
    print(f"machine: {machine()}")
    print(f"hostile issues: {args.hostile} x {BODY_CHARS:,}-character bodies "
          f"(dependency references and keywords); bystander deliveries: {args.bystanders}")
    print(f"store after the hostile issues: {loaded['store_bytes']:,} bytes "
          f"(at the end: {loaded['store_bytes_end']:,}); hostile deliveries failed: "
          f"{loaded['hostile_failed']}")
    for figures in (empty, loaded):
        print(f"bystander latency, {figures['run']} store: p50 {figures['p50_ms']} ms, "
              f"p99 {figures['p99_ms']} ms")
    ratio = loaded["p99_ms"] / empty["p99_ms"]
    print(f"bystander p99 hostile/empty: {ratio:.2f}x (target <= 2x)")
    print(f"bystander latency, hostile store while its {args.hostile} issues are re-delivered "
          f"from 4 more clients: p50 {loaded['noisy_p50_ms']} ms, "
          f"p99 {loaded['noisy_p99_ms']} ms")


if __name__ == "__main__":
    main()
