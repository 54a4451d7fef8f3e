"""``model-assigner setup``: register the GitHub App from deploy/app.yml.

GitHub's manifest flow (bot/github/manifest.py) through a local page
(bot/web/setup_page.py, imported only when the command runs): the person
confirms on GitHub, and the App's id, private key and webhook secret are
written to a `.env` file only its owner can read.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from model_assigner.bot.cli.errors import CliError
from model_assigner.bot.github.manifest import DEFAULT_GITHUB_URL, api_url_for


def cmd_setup(args: Any) -> int:
    from model_assigner.bot.web.setup_page import create_setup_app, serve_in_background

    github_url = os.environ.get("GITHUB_URL", "").strip() or DEFAULT_GITHUB_URL
    api_url = os.environ.get("GITHUB_API_URL", "").strip() or api_url_for(github_url)
    env_path = Path(args.env_file)
    if env_path.exists() and not args.force:
        raise CliError(f"{env_path}: exists; pass --force to replace it")
    done = threading.Event()
    app = create_setup_app(github_url, api_url, args.webhook_url, env_path, args.port,
                           args.org, args.name, done)
    server = serve_in_background(app, args.port)
    print(f"Open http://localhost:{args.port}/ and press the button (Ctrl-C to stop).")
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
