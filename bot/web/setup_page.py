"""The local page of ``model-assigner setup`` (bot/cli/setup.py): a small
Flask app on 127.0.0.1 that starts GitHub's manifest flow and receives its
redirect (bot/github/manifest.py does the GitHub side).
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from pathlib import Path
from typing import Any

import requests
from flask import Flask, Response, request

from model_assigner.bot.github.manifest import (
    SetupError,
    build_manifest,
    exchange_code,
    new_app_url,
    write_env,
)


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


def serve_in_background(app: Flask, port: int) -> Any:
    """The page on 127.0.0.1:``port`` in a daemon thread; ``.shutdown()`` stops it."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
