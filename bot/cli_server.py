"""``model-assigner serve`` and ``model-assigner send-sample``.

``serve`` runs the Procfile's ``web:`` command, so what a developer starts
locally is exactly what the container and Kubernetes run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from bot.signature import sign

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"
SAMPLE = ROOT / "examples" / "issues.opened.json"


def procfile_command(process: str = "web") -> str:
    for line in PROCFILE.read_text(encoding="utf-8").splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise LookupError(f"{PROCFILE}: no {process!r} process")


def _positive(name: str, value: str, upper: int) -> str:
    from bot.cli import CliError

    if not value.strip().isdigit() or not 1 <= int(value) <= upper:
        raise CliError(f"{name}: must be a whole number from 1 to {upper}, got {value!r}")
    return value.strip()


def cmd_serve(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    env["PORT"] = _positive("PORT", str(args.port or env.get("PORT", "8000")), 65535)
    for name, default in (("WEB_CONCURRENCY", "2"), ("MODEL_ASSIGNER_THREADS", "4")):
        env[name] = _positive(name, env.get(name, default), 256)
    # The console script's folder first, so the Procfile's `gunicorn` is ours.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    os.chdir(ROOT)
    # exec: gunicorn replaces the shell, so signals sent to `serve` reach it.
    os.execvpe("sh", ["sh", "-c", "exec " + procfile_command()], env)


def cmd_send_sample(args: argparse.Namespace) -> int:
    from bot.cli import CliError

    path = Path(args.payload) if args.payload else SAMPLE
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
    req = urllib.request.Request(args.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(
            f"{args.url}: cannot connect ({exc}); is `model-assigner serve` running?"
        ) from None
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    print(f"HTTP {status}")
    if isinstance(answer, dict) and "comment" in answer:
        comment = answer.pop("comment")
        print(json.dumps(answer, indent=2))
        print("\ncomment it would write:\n")
        print(comment)
    else:
        print(text)
    return 0 if status < 400 else 1


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser("serve", help="run the webhook server (the Procfile's web process)")
    serve.add_argument("--port", help="default: PORT, else 8000")
    serve.set_defaults(handler=cmd_serve)

    sample = sub.add_parser("send-sample", help="POST a signed sample issues event to the server")
    sample.add_argument("--url", default="http://127.0.0.1:8000/webhook")
    sample.add_argument("--payload", help=f"JSON payload (default: {SAMPLE.relative_to(ROOT)})")
    sample.add_argument("--event", default="issues", help="X-GitHub-Event (default: issues)")
    sample.set_defaults(handler=cmd_send_sample)
