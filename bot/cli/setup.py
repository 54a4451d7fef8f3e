"""``model-assigner setup``: register the GitHub App from deploy/app.yml.

GitHub's manifest flow: a local page posts the manifest to GitHub; the person
confirms there; GitHub redirects back with a temporary code, which we exchange
(POST /app-manifests/{code}/conversions) for the App's id, private key and
webhook secret, written to a `.env` file only its owner can read.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import requests
import yaml
from flask import Flask, Response, request

from model_assigner.bot import resources

DEFAULT_GITHUB_URL = "https://github.com"


class SetupError(RuntimeError):
    """The manifest flow failed; ``str()`` says where."""


def api_url_for(github_url: str) -> str:
    """github.com's API lives on api.github.com; GitHub Enterprise Server's under /api/v3."""
    base = github_url.rstrip("/")
    if base in ("https://github.com", "http://github.com"):
        return "https://api.github.com"
    return f"{base}/api/v3"


def build_manifest(webhook_url: str, redirect_url: str, name: str | None = None) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(
        resources.app_manifest().read_text(encoding="utf-8")
    )
    manifest["hook_attributes"]["url"] = webhook_url
    manifest["redirect_url"] = redirect_url
    if name:
        manifest["name"] = name
    return manifest


def new_app_url(github_url: str, org: str | None) -> str:
    base = github_url.rstrip("/")
    return f"{base}/organizations/{org}/settings/apps/new" if org else f"{base}/settings/apps/new"


def exchange_code(api_url: str, code: str, timeout: float = 10) -> dict[str, Any]:
    response = requests.post(
        f"{api_url.rstrip('/')}/app-manifests/{code}/conversions",
        headers={"Accept": "application/vnd.github+json"},
        timeout=timeout,
    )
    if response.status_code != 201:
        try:
            message = response.json().get("message", "")
        except ValueError:
            message = ""
        raise SetupError(f"code exchange failed: HTTP {response.status_code} {message}".strip())
    data: dict[str, Any] = response.json()
    for key in ("id", "pem", "webhook_secret", "slug"):
        if not data.get(key):
            raise SetupError(f"code exchange answer lacks {key!r}")
    return data


def write_env(path: Path, app: dict[str, Any], api_url: str) -> None:
    """Owner-only from the first byte: the file is created 0600, never chmod-ed later."""
    key = str(app["pem"]).strip().replace("\n", "\\n")
    lines = [
        f"# model-assigner: the GitHub App {app['slug']} ({app.get('html_url', '')})",
        f"GITHUB_APP_ID={app['id']}",
        f'GITHUB_PRIVATE_KEY="{key}"',
        f"GITHUB_WEBHOOK_SECRET={app['webhook_secret']}",
        f"GITHUB_API_URL={api_url}",
        f"MODEL_ASSIGNER_BOT_LOGIN={app['slug']}[bot]",
        "",
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    os.chmod(path, 0o600)


def create_setup_app(
    github_url: str,
    api_url: str,
    webhook_url: str,
    env_path: Path,
    port: int,
    org: str | None = None,
    name: str | None = None,
    done: threading.Event | None = None,
) -> Flask:
    state = secrets.token_urlsafe(16)
    redirect_url = f"http://localhost:{port}/redirect"
    manifest = build_manifest(webhook_url, redirect_url, name)
    app = Flask("model_assigner_setup")

    @app.get("/")
    def start() -> Response:
        page = f"""<!doctype html><meta charset="utf-8"><title>model-assigner setup</title>
<h1>Register model-assigner on {html.escape(github_url)}</h1>
<p>The App gets: issues write, metadata read, contents read; events: issues.
Webhooks go to <code>{html.escape(webhook_url)}</code>.</p>
<form action="{html.escape(new_app_url(github_url, org))}?state={state}" method="post">
<input type="hidden" name="manifest" value="{html.escape(json.dumps(manifest))}">
<button type="submit">Create the GitHub App</button></form>"""
        return Response(page, mimetype="text/html")

    @app.get("/redirect")
    def redirect() -> Response:
        if request.args.get("state") != state:
            return Response("state mismatch: start again from /", status=400)
        code = request.args.get("code", "")
        if not code.isalnum():
            return Response("missing code", status=400)
        try:
            created = exchange_code(api_url, code)
            write_env(env_path, created, api_url)
        except (SetupError, requests.RequestException, OSError) as exc:
            return Response(f"setup failed: {html.escape(str(exc))}", status=502)
        if done is not None:
            done.set()
        return Response(
            f"<p>Created <b>{html.escape(str(created['slug']))}</b>. Credentials are in "
            f"<code>{html.escape(str(env_path))}</code> (readable only by you). Install the App "
            f"on your repositories: <a href=\"{html.escape(str(created.get('html_url', '')))}"
            f"/installations/new\">install</a>. You can close this tab.</p>",
            mimetype="text/html",
        )

    return app


def cmd_setup(args: Any) -> int:
    from werkzeug.serving import make_server

    from model_assigner.bot.cli.errors import CliError

    github_url = os.environ.get("GITHUB_URL", "").strip() or DEFAULT_GITHUB_URL
    api_url = os.environ.get("GITHUB_API_URL", "").strip() or api_url_for(github_url)
    env_path = Path(args.env_file)
    if env_path.exists() and not args.force:
        raise CliError(f"{env_path}: exists; pass --force to replace it")
    done = threading.Event()
    app = create_setup_app(github_url, api_url, args.webhook_url, env_path, args.port,
                           args.org, args.name, done)
    server = make_server("127.0.0.1", args.port, app)
    print(f"Open http://localhost:{args.port}/ and press the button (Ctrl-C to stop).")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        server.shutdown()
    print(f"Wrote {env_path}. Start the server with those settings, e.g. "
          f"`set -a; . {env_path}; set +a; model-assigner serve`.")
    return 0


def webhook_url(text: str) -> str:
    """GitHub refuses a manifest whose hook URL is not an absolute http(s)
    URL, but only after the person has clicked through: refuse it here."""
    import argparse
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text.strip())
        usable = parts.scheme in ("https", "http") and bool(parts.hostname)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        usable = False
    if not usable or " " in text.strip():
        raise argparse.ArgumentTypeError(
            f"not an http(s) URL: {text!r} (expected e.g. https://HOST/webhook)"
        )
    return text.strip()


def add_commands(sub: Any) -> None:
    setup = sub.add_parser("setup", help="register the GitHub App (manifest flow), write .env")
    setup.add_argument("--webhook-url", required=True, type=webhook_url,
                       help="public http(s) URL of POST /webhook, e.g. https://HOST/webhook")
    setup.add_argument("--port", type=int, default=3000, help="local port of the setup page")
    setup.add_argument("--org", help="register under this organization, not your account")
    setup.add_argument("--name", help="App name (default: deploy/app.yml's)")
    setup.add_argument("--env-file", default=".env",
                       help="where to write the App's credentials (default: .env)")
    setup.add_argument("--force", action="store_true", help="replace an existing env file")
    setup.set_defaults(handler=cmd_setup)
