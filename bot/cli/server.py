"""``model-assigner serve`` and ``model-assigner send-sample``.

``serve`` runs the Procfile's ``web:`` command, so what a developer starts
locally is exactly what the container and Kubernetes run.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path

from model_assigner.bot import resources
from model_assigner.bot.web.signature import sign

DEFAULT_PORT = "8000"
# Dry-run checks no signature unless a secret is set: it listens on loopback
# unless told otherwise. With App credentials, every interface (a container's).
DRY_RUN_HOST = "127.0.0.1"
SERVER_HOST = "0.0.0.0"
PROCFILE_BIND = f"--bind {SERVER_HOST}:"


def _bind_host(host: str) -> str:
    """gunicorn's form of an address: IPv6 in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def procfile_command(process: str = "web") -> str:
    procfile = resources.procfile()
    for line in procfile.read_text(encoding="utf-8").splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise LookupError(f"{procfile}: no {process!r} process")


def _positive(name: str, value: str, upper: int) -> str:
    from model_assigner.bot.cli.errors import CliError

    if not value.strip().isdigit() or not 1 <= int(value) <= upper:
        raise CliError(f"{name}: must be a whole number from 1 to {upper}, got {value!r}")
    return value.strip()


def serve_host(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    """--host, else loopback in dry-run (signatures may be unchecked there) and
    every interface with App credentials (the Procfile's own bind)."""
    from model_assigner.bot.cli.errors import CliError
    from model_assigner.bot.settings import SettingsError, load_settings

    try:
        settings = load_settings(env)
    except SettingsError as exc:
        raise CliError(f"cannot start: {exc}") from None
    if args.host and args.host.strip():
        return str(args.host).strip()
    return DRY_RUN_HOST if settings.dry_run else SERVER_HOST


def check_port_free(host: str, port: int) -> None:
    """One line when the port is taken, instead of gunicorn's ten."""
    from model_assigner.bot.cli.errors import CliError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(
                    f"{host}:{port} is already in use (another `model-assigner serve`?); "
                    "stop it or choose another port with --port or PORT"
                ) from None
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    env["PORT"] = _positive("PORT", str(args.port or env.get("PORT", DEFAULT_PORT)), 65535)
    for name, default in (("WEB_CONCURRENCY", "2"), ("MODEL_ASSIGNER_THREADS", "4")):
        env[name] = _positive(name, env.get(name, default), 256)
    host = serve_host(args, env)
    check_port_free(host, int(env["PORT"]))
    command = procfile_command()
    if host != SERVER_HOST:
        # gunicorn's --bind adds a listener: replace the Procfile's, never append.
        if PROCFILE_BIND not in command:
            from model_assigner.bot.cli.errors import CliError

            raise CliError(f"{resources.procfile()}: the web command does not bind {SERVER_HOST}")
        command = command.replace(PROCFILE_BIND, f"--bind {_bind_host(host)}:")
    # The console script's folder first, so the Procfile's `gunicorn` is ours.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    # gunicorn imports bot.web.app from the folder it starts in: the checkout, or
    # for an installed package its project folder (where the store lives).
    home = resources.project_dir(env)
    home.mkdir(parents=True, exist_ok=True)
    os.chdir(home)
    # exec: gunicorn replaces the shell, so signals sent to `serve` reach it.
    os.execvpe("sh", ["sh", "-c", "exec " + command], env)


def cmd_send_sample(args: argparse.Namespace) -> int:
    from model_assigner.bot.cli.errors import CliError

    path = Path(args.payload) if args.payload else resources.sample_payload()
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror or exc})") from None
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": args.event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "User-Agent": "model-assigner-send-sample",
    }
    secret = os.environ.get("GITHUB_WEBHOOK_SECRET")
    if secret:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    port = os.environ.get("PORT", "").strip() or DEFAULT_PORT
    url = args.url or f"http://127.0.0.1:{port}/webhook"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(
            f"{url}: cannot connect ({exc}); is `model-assigner serve` running?"
        ) from None
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    print(f"HTTP {status}")
    if status == 202 and isinstance(answer, dict) and answer.get("status") == "queued":
        print(text)
        decided = _wait_for_outcome(str(answer.get("delivery")))
        if decided is None:
            print("queued; not decided within 30 s (is a worker running? see "
                  "`model-assigner queue`)")
            return 0
        status, answer = decided
        print("decided:")
    if isinstance(answer, dict) and "comment" in answer:
        comment = answer.pop("comment")
        print(json.dumps(answer, indent=2))
        print("\ncomment it would write:\n")
        print(comment)
    else:
        print(text)
    return 0 if status < 400 else 1


def _wait_for_outcome(delivery: str, timeout: float = 30.0) -> tuple[int, dict[str, object]] | None:
    """The decision of a queued delivery, read from the server's queue file
    (the one MODEL_ASSIGNER_STATE's folder holds)."""
    import time

    from model_assigner.bot.queue.db import QueueDb, QueueDbError
    from model_assigner.bot.queue.jobs import JobQueue, SqliteJobQueue
    from model_assigner.bot.settings import SettingsError, load_settings
    from model_assigner.bot.store.state import StoreError

    try:
        settings = load_settings()
    except SettingsError:
        return None
    queue: JobQueue
    if settings.database_url:
        from model_assigner.bot.pg import Database
        from model_assigner.bot.queue.pg import PgJobQueue

        queue = PgJobQueue(Database(settings.database_url, pool_size=1))
    elif not settings.queue_path.exists():
        return None
    else:
        try:
            queue = SqliteJobQueue(QueueDb(settings.queue_path))
        except QueueDbError:
            return None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            found = queue.outcome(delivery)
        except (QueueDbError, StoreError):
            return None
        if found is not None:
            return found
        time.sleep(0.1)
    return None


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser("serve", help="run the webhook server (the Procfile's web process)")
    serve.add_argument("--port", help="default: PORT, else 8000")
    serve.add_argument(
        "--host",
        help="interface to listen on (default: 127.0.0.1 in dry-run, 0.0.0.0 with App "
        "credentials)",
    )
    serve.set_defaults(handler=cmd_serve)

    sample = sub.add_parser("send-sample", help="POST a signed sample issues event to the server")
    sample.add_argument(
        "--url",
        help="the server's webhook URL (default: http://127.0.0.1:$PORT/webhook, PORT 8000)",
    )
    sample.add_argument("--payload", help="JSON payload (default: examples/issues.opened.json)")
    sample.add_argument("--event", default="issues", help="X-GitHub-Event (default: issues)")
    sample.set_defaults(handler=cmd_send_sample)
