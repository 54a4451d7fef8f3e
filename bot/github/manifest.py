"""GitHub's App manifest flow, the GitHub side of ``model-assigner setup``.

A local page posts the manifest (deploy/app.yml) to GitHub; the person
confirms there; GitHub redirects back with a temporary code, which is
exchanged (POST /app-manifests/{code}/conversions) for the App's id, private
key and webhook secret, written to a `.env` file only its owner can read.
The page is bot/web/setup_page.py; the command is bot/cli/setup.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import requests
import yaml

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
