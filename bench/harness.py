"""What the webhook benchmarks share: the GitHub stand-in in its own process,
the real gunicorn server started from the Procfile's ``web:`` line on
loopback, signed ``issues.opened`` deliveries, and a pool of keep-alive
clients.

Network: 127.0.0.1 only. The Procfile binds 0.0.0.0; gunicorn's ``--bind``
appends, so the command is run with its bind host changed to 127.0.0.1 (as
the end-to-end tests do).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from model_assigner.bot.web.signature import sign

ROOT = Path(__file__).resolve().parent.parent
WEBHOOKS = ROOT / "tests" / "fixtures" / "github" / "webhooks"
VENV_BIN = Path(sys.executable).parent
APP_ID = 4242
SLUG = "model-assigner-bench"
INSTALLATION = 1
REPO = "Codertocat/Hello-World"  # the documented payloads' repository
SECRET = "webhook-secret-for-the-benchmark"
BOT_APP = "model_assigner.bot.web.app:create_app()"
FLOOR_APP = "bench.floor_app:create_app()"

# Issue bodies and labels that the shipped config/ assigns (not defers), mixed
# so that both the API budget and the claude subscription pay.
KINDS: list[tuple[list[str], str]] = [
    (["P0", "backend"], "Estimated files: 3\nEstimated LOC: 150"),
    (["P1", "security", "hotfix"], "Estimated files: 8\nEstimated LOC: 800"),
    (["P0", "security", "hotfix"], "Estimated files: 8\nEstimated LOC: 800"),
    (["P2", "security", "hotfix"], "Estimated files: 8\nEstimated LOC: 800"),
]


def procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "web":
            return command.strip()
    raise SystemExit("Procfile: no web process")


def loopback_command(app: str = BOT_APP) -> str:
    """The Procfile's command, bound to 127.0.0.1, serving ``app``."""
    command = procfile_web()
    if "--bind 0.0.0.0:" not in command or f"'{BOT_APP}'" not in command:
        raise SystemExit(f"Procfile: unexpected web command: {command}")
    return command.replace("--bind 0.0.0.0:", "--bind 127.0.0.1:").replace(
        f"'{BOT_APP}'", f"'{app}'"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> str:
    """One line: cores, CPU model, Python."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model or 'unknown CPU'}), "
        f"CPython {sys.version.split()[0]}, {sys.platform}"
    )


def scaled_config(folder: Path, factor: float) -> Path:
    """A copy of config/ whose quotas and budget are ``factor`` times larger,
    so a long run assigns every issue instead of deferring once money runs out."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in (ROOT / "config").glob("*.yaml"):
        shutil.copy(source, folder / source.name)
    path = folder / "subscriptions.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for sub in data["subscriptions"]:
        for key in ("token_limit_daily", "token_limit_monthly"):
            if sub.get(key) is not None:
                sub[key] = int(sub[key] * factor)
    data["api_budget"]["monthly_limit_usd"] *= factor
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return folder


# -- the GitHub stand-in, in its own process -------------------------------------


@dataclass
class StandIn:
    url: str
    process: subprocess.Popen[bytes]

    def control(self, method: str, what: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_standin/{what}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def add_issue(self, number: int, labels: list[str], body: str) -> dict[str, Any]:
        issue: dict[str, Any] = self.control(
            "POST", "issues",
            {"repo": REPO, "number": number, "title": f"Issue {number}", "body": body,
             "labels": labels, "author": "Codertocat"},
        )
        return issue

    def requests(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.control("GET", "requests")
        return found

    def issue_state(self, number: int) -> dict[str, Any]:
        found: dict[str, Any] = self.control("GET", f"issues/{REPO}/{number}")
        return found


def app_key(folder: Path) -> tuple[str, Path]:
    """A throwaway App key: the private PEM, and a file with the public one."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = folder / "app-public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@contextmanager
def standin_process(folder: Path, public_key: Path, files: int = 200) -> Iterator[StandIn]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.github_standin", "--app-id", str(APP_ID),
         "--public-key-file", str(public_key), "--slug", SLUG],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=(folder / "standin.log").open("wb"),
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if "listening on" not in line:
            raise SystemExit(f"stand-in did not start: {line!r}")
        standin = StandIn(line.rsplit(" ", 1)[1].strip(), process)
        standin.control("POST", "repos", {"full_name": REPO, "installation_id": INSTALLATION,
                                          "files": files, "default_branch": "master"})
        yield standin
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- the server ---------------------------------------------------------------


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    state: Path

    def workers(self) -> list[int]:
        """Pids of the gunicorn workers (the master's children)."""
        return _children(self.master())

    def master(self) -> int:
        """gunicorn's master: the shell's child, or the shell itself when it exec'd."""
        return next(iter(_children(self.process.pid)), self.process.pid)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_server(folder: Path, env_extra: dict[str, str], app: str = BOT_APP,
                 name: str = "server", timeout: float = 60.0) -> Server:
    port = free_port()
    state = folder / name / "state.json"
    log = folder / f"{name}.log"
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(folder),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "MODEL_ASSIGNER_STATE": str(state),
        "MODEL_ASSIGNER_CONFIG": str(ROOT / "config"),
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "PYTHONUNBUFFERED": "1",
        **env_extra,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["sh", "-c", loopback_command(app)], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", port, process, log, state)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited at start:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as answer:
                if answer.status == 200 and len(server.workers()) >= 2:
                    return server
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise SystemExit(f"server not healthy after {timeout:g}s:\n{log.read_text(errors='replace')}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        try:
            os.killpg(server.process.pid, signal.SIGTERM)
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)
        except ProcessLookupError:
            pass


# -- deliveries ---------------------------------------------------------------


@dataclass
class Delivery:
    number: int
    body: bytes
    headers: dict[str, str]
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0
    answer: bytes = b""


def opened_payload(issue: dict[str, Any], base: str) -> dict[str, Any]:
    """GitHub's documented issues.opened payload, as an App receives it, for ``issue``."""
    text = (WEBHOOKS / "issues.opened.json").read_text(encoding="utf-8")
    payload: dict[str, Any] = json.loads(text.replace("https://api.github.com", base))
    payload["installation"] = {"id": INSTALLATION, "node_id": "MDIzOkludGVncmF0aW9u"}
    payload["sender"] = {**payload["sender"], "login": "Codertocat", "type": "User"}
    payload["issue"] = issue
    return payload


def signed(number: int, payload: dict[str, Any], delivery: str, event: str = "issues") -> Delivery:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "1",
        "X-GitHub-Hook-Installation-Target-ID": str(APP_ID),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-Hub-Signature-256": sign(SECRET, body),
    }
    return Delivery(number, body, headers)


def send_all(port: int, deliveries: Iterable[Delivery], clients: int) -> float:
    """Send every delivery from ``clients`` threads, each on its own keep-alive
    connection; record when each was sent and answered. Returns the wall time."""
    todo: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
    for delivery in deliveries:
        todo.put(delivery)
    for _ in range(clients):
        todo.put(None)
    start = threading.Barrier(clients + 1)

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        while (delivery := todo.get()) is not None:
            for attempt in range(3):
                try:
                    delivery.sent = time.monotonic()
                    connection.request("POST", "/webhook", delivery.body, delivery.headers)
                    response = connection.getresponse()
                    delivery.answer = response.read()
                    delivery.answered = time.monotonic()
                    delivery.status = response.status
                    break
                except (http.client.HTTPException, OSError):
                    # A keep-alive connection the server closed: reconnect, resend.
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    if attempt == 2:
                        raise
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join()
    return time.monotonic() - began


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Figures:
    name: str
    count: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by process

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.rate:>8,.0f} deliveries/s   "
            f"p50 {self.p(50) * 1000:>7.1f} ms   p99 {self.p(99) * 1000:>7.1f} ms   "
            f"max {max(self.latencies) * 1000:>7.1f} ms"
        )
