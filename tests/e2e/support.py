"""What the end-to-end tests share: the real gunicorn server started from the
Procfile's `web:` line on loopback, the GitHub stand-in, and the checks made
of what a delivery left behind. The fixtures are in conftest.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.github_standin import GitHubStandIn, StandInServer
from model_assigner.bot.comment import MARKER
from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.jobs import SqliteJobQueue
from tests.bot.support import (
    API,
    APP_ID,
    INSTALLATION,
    REPO,
    SECRET,
    SLUG,
    app_key,
    delivery_headers,
    encode,
    webhook,
)
from tests.helpers import seed_strategy_config, shifted_clock_env, store_text

ROOT = Path(__file__).resolve().parents[2]


VENV_BIN = Path(sys.executable).parent


START_TIMEOUT = 30.0
WEB_CONCURRENCY = 2  # gunicorn processes of every server the tests start


FAST_QUEUE = {
    "MODEL_ASSIGNER_WRITE_INTERVAL_SECONDS": "0",
    "MODEL_ASSIGNER_WRITES_PER_MINUTE": "100000",
    "MODEL_ASSIGNER_WRITES_PER_HOUR": "1000000",
    "MODEL_ASSIGNER_RETRY_BASE_SECONDS": "0.2",
    "MODEL_ASSIGNER_MAX_ATTEMPTS": "3",
    "MODEL_ASSIGNER_CATCHUP_SECONDS": "0",
}


def procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "web":
            return command.strip()
    raise AssertionError("Procfile: no web process")


def loopback_command() -> str:
    command = procfile_web()
    assert "--bind 0.0.0.0:${PORT" in command
    return command.replace("--bind 0.0.0.0:", "--bind 127.0.0.1:")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Outcome:
    """What a delivery came to once the queue's worker decided it (the
    webhook answers 202 at once): shaped like the answer it used to be."""

    status_code: int
    body: dict[str, Any]

    def json(self) -> dict[str, Any]:
        return self.body

    @property
    def text(self) -> str:
        return json.dumps(self.body)


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    state: Path
    _queue_db: QueueDb | None = field(default=None, repr=False, compare=False)

    @property
    def queue_path(self) -> Path:
        return self.state.with_name("queue.sqlite3")

    def queue(self) -> SqliteJobQueue:
        """The server's queue, read through one QueueDb per Server (its
        connection is kept per thread and closed by ``close_queue``), not a
        new connection for every poll."""
        if self._queue_db is None:
            self._queue_db = QueueDb(self.queue_path)
        return SqliteJobQueue(self._queue_db)

    def close_queue(self) -> None:
        """Close this thread's connection to the queue file (QueueDb has no
        close of its own); a later ``queue()`` opens a new one."""
        if self._queue_db is not None:
            close_queue_db(self._queue_db)
            self._queue_db = None

    def deliver(
        self, payload: Any, event: str = "issues", delivery: str | None = None,
        timeout: float = 60.0,
    ) -> Outcome:
        """POST the delivery; when it is queued (202), wait until a worker has
        decided it, and return that outcome."""
        delivery = delivery or str(uuid.uuid4())
        response = self.post(payload, event, delivery)
        if response.status_code != 202 or response.json().get("status") != "queued":
            return Outcome(response.status_code, response.json())
        return self.outcome(delivery, timeout)

    def outcome(self, delivery: str, timeout: float = 60.0) -> Outcome:
        queue = self.queue()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = queue.outcome(delivery)
            if found is not None:
                return Outcome(*found)
            time.sleep(0.05)
        raise AssertionError(f"delivery {delivery} not decided within {timeout}s: "
                             f"{queue.jobs()}\n{self.log_text()[-3000:]}")

    def drained(self, timeout: float = 60.0, dead_ok: bool = False) -> None:
        """Wait until no job is waiting or running."""
        queue = self.queue()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = [j for j in queue.jobs() if dead_ok is False or j.state != "dead"]
            if not jobs:
                return
            time.sleep(0.05)
        raise AssertionError(f"queue not drained within {timeout}s: {queue.jobs()}")

    def post(
        self,
        payload: Any,
        event: str = "issues",
        delivery: str | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        data = encode(payload) if body is None else body
        return requests.post(
            f"{self.url}/webhook",
            data=data,
            headers=headers or delivery_headers(data, event, delivery),
            timeout=30,
        )

    def store(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(store_text(self.state))
        return data

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def group_members(self) -> list[str]:
        """Command lines of the processes in the server's process group."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == self.process.pid:  # pgrp
                found.append(cmdline)
        return found


def start_server(tmp: Path, env_extra: dict[str, str], name: str,
                 port: int | None = None) -> Server:
    port = port or free_port()
    state = tmp / name / "state.json"
    log = tmp / f"{name}.log"
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(WEB_CONCURRENCY),
        "MODEL_ASSIGNER_STATE": str(state),
        "MODEL_ASSIGNER_CONFIG": str(seed_strategy_config()),
        "PYTHONUNBUFFERED": "1",
        # Tests are not paced like GitHub (its own tests set a policy), retry
        # quickly, and catch up only when they say so.
        **FAST_QUEUE,
        **env_extra,
        **shifted_clock_env(),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["sh", "-c", loopback_command()],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to stop it whole
        )
    server = Server(f"http://127.0.0.1:{port}", process, log, state)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stop_server(server)
            raise AssertionError(f"server exited at start:\n{server.log_text()}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise AssertionError(f"server not healthy after {START_TIMEOUT}s:\n{server.log_text()}")


def close_queue_db(db: QueueDb) -> None:
    """Close the calling thread's SQLite connection of ``db``, if it opened
    one: QueueDb keeps one per thread (in ``_local``) and offers no close."""
    local = getattr(db, "_local", None)
    conn = getattr(local, "conn", None)
    if conn is not None:
        conn.close()
        local.conn = None


def stop_server(server: Server) -> None:
    server.close_queue()
    if server.process.poll() is None:
        try:
            os.killpg(server.process.pid, signal.SIGTERM)
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)
        except ProcessLookupError:
            pass


def new_issue(standin: GitHubStandIn, number: int, labels: list[str], body: str = "",
              milestone_due_on: str | None = None) -> None:
    standin.add_issue(REPO, number, title=f"Issue {number}", body=body, labels=labels,
                      milestone_due_on=milestone_due_on, author="Codertocat")


def event(
    standin: GitHubStandIn, action: str, number: int, *, sender: str = "Codertocat",
    sender_type: str = "User", label: str | None = None,
) -> dict[str, Any]:
    """The documented payload for ``action``, carrying the issue as the stand-in has it."""
    name = {"opened": "issues.opened", "labeled": "issues.labeled",
            "unlabeled": "issues.unlabeled", "milestoned": "issues.milestoned",
            "edited": "issues.edited"}[action]
    payload = webhook(name, sender=sender, sender_type=sender_type, label=label)
    payload["issue"] = standin.issue_json(REPO, number, API)
    if action == "milestoned":
        payload["milestone"] = payload["issue"]["milestone"]
    return payload


def model_labels(standin: GitHubStandIn, number: int) -> list[str]:
    return [n for n in standin.labels_of(REPO, number) if n.startswith("model:")]


def bot_comments(standin: GitHubStandIn, number: int) -> list[str]:
    return [c.body for c in standin.comments_of(REPO, number) if MARKER in c.body]


def metric_values(server: Server) -> dict[str, float]:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def assigned_everywhere(standin: GitHubStandIn, store: dict[str, Any], number: int,
                        model: str | None = None) -> None:
    """One model label, one bot comment, and the reservation, for one issue."""
    labels = model_labels(standin, number)
    assert len(labels) == 1, labels
    assert len(bot_comments(standin, number)) == 1
    held = store["reservations"][f"{REPO}#{number}"]
    assert labels == [f"model:{held['model']}"]
    if model is not None:
        assert held["model"] == model


def charged_once(store: dict[str, Any]) -> None:
    """The counters are exactly the sums of the reservations: nothing was
    charged twice (every reservation here is this month's and today's)."""
    subs = [h["payment"] for h in store["reservations"].values()
            if h["payment"]["kind"] == "subscription"]
    api = [h["payment"] for h in store["reservations"].values() if h["payment"]["kind"] == "api"]
    claude = store["subscriptions"]["claude"]
    assert claude["tokens_used_month"] == sum(p["tokens"] for p in subs)
    assert claude["tokens_used_today"] == claude["tokens_used_month"]
    assert store["api_budget"]["spent_usd"] == pytest.approx(
        sum(p["cost_usd"] for p in api), abs=1e-9
    )


@contextmanager
def running_standin(*more_repos: str) -> Iterator[tuple[GitHubStandIn, StandInServer]]:
    """The GitHub stand-in on loopback, in a thread of this process, with the
    App installed on REPO (and ``more_repos``), 20 files each."""
    standin = GitHubStandIn(APP_ID, app_key().public_pem, slug=SLUG)
    for name in (REPO, *more_repos):
        standin.add_repo(name, installation_id=INSTALLATION, files=20, default_branch="master")
    server = StandInServer(standin).start()
    try:
        yield standin, server
    finally:
        server.stop()


def app_env(github: tuple[GitHubStandIn, StandInServer], **settings: str) -> dict[str, str]:
    """The App's credentials for a server that talks to this stand-in, plus ``settings``."""
    return {
        "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_PRIVATE_KEY": app_key().private_pem,
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": github[1].url,
        **settings,
    }
