"""Runtime settings from the environment, checked once at start-up.

A bad setting stops the server with one line naming it: failing at start-up
beats failing on the first webhook, hours later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.exceptions import UnsupportedAlgorithm

from model_assigner.bot import resources
from model_assigner.bot.github.app_key import parsed_key

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_STATE = "data/state.json"


def redacted_url(url: str) -> str:
    """``url`` with any user and password masked, for logs and messages: a
    GITHUB_API_URL of ``http://user:pass@host`` must not be logged whole."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit(parts._replace(netloc=f"***@{host}"))
    except ValueError:
        return "(an unreadable URL)"


class SettingsError(ValueError):
    """A missing or malformed setting; ``str()`` names it."""


@dataclass(frozen=True)
class QueueSettings:
    """The delivery queue and the GitHub rate policy (docs/delivery-pipeline.md)."""

    path: Path | None = None  # default: queue.sqlite3 beside the quota store
    workers: int = 2  # worker threads in each web process (0: a `worker` process does it)
    max_attempts: int = 8
    retry_base_seconds: float = 5.0
    writes_per_minute: int = 80
    writes_per_hour: int = 500
    write_interval_seconds: float = 1.0
    secondary_wait_seconds: float = 60.0
    catchup_seconds: float = 600.0  # 0: no catch-up


QUEUE_ENV: dict[str, tuple[str, type, float, float]] = {
    # field: (variable, type, lowest, highest)
    "workers": ("MODEL_ASSIGNER_QUEUE_WORKERS", int, 0, 64),
    "max_attempts": ("MODEL_ASSIGNER_MAX_ATTEMPTS", int, 1, 100),
    "retry_base_seconds": ("MODEL_ASSIGNER_RETRY_BASE_SECONDS", float, 0.0, 3600.0),
    "writes_per_minute": ("MODEL_ASSIGNER_WRITES_PER_MINUTE", int, 1, 100_000),
    "writes_per_hour": ("MODEL_ASSIGNER_WRITES_PER_HOUR", int, 1, 1_000_000),
    "write_interval_seconds": ("MODEL_ASSIGNER_WRITE_INTERVAL_SECONDS", float, 0.0, 60.0),
    "secondary_wait_seconds": ("MODEL_ASSIGNER_SECONDARY_WAIT_SECONDS", float, 0.0, 3600.0),
    "catchup_seconds": ("MODEL_ASSIGNER_CATCHUP_SECONDS", float, 0.0, 86_400.0),
}


def queue_settings(env: Mapping[str, str]) -> QueueSettings:
    values: dict[str, Any] = {}
    for name, (variable, kind, low, high) in QUEUE_ENV.items():
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(f"{variable}: must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{variable}: must be from {low:g} to {high:g}, got {raw!r}")
        values[name] = value
    path = env.get("MODEL_ASSIGNER_QUEUE", "").strip()
    if path:
        values["path"] = resources.project_dir(env) / path
    return QueueSettings(**values)


@dataclass(frozen=True)
class Settings:
    app_id: int | None
    private_key: str | None
    webhook_secret: str | None
    api_url: str
    state_path: Path
    config_dir: Path
    bot_login: str | None
    max_body_bytes: int = 25 * 1024 * 1024
    log_level: str = "INFO"
    queue: QueueSettings = field(default_factory=lambda: QueueSettings())
    # Unit tests only (never read from the environment): the webhook decides
    # inside the request, as before the queue, so a test client sees the
    # decision in the answer.
    inline_delivery: bool = False

    @property
    def queue_path(self) -> Path:
        return self.queue.path or self.state_path.with_name("queue.sqlite3")
    # A PostgreSQL connection string (MODEL_ASSIGNER_STATE=postgresql://...,
    # or DATABASE_URL when MODEL_ASSIGNER_STATE is unset): the state, and the
    # issue locks, live there; state_path's folder still holds the local
    # files (metrics). Never printed: it may hold a password.
    database_url: str | None = None

    @property
    def dry_run(self) -> bool:
        """No App credentials: decide and record, but write nothing to GitHub."""
        return self.app_id is None

    def __repr__(self) -> str:  # never print the key or the secret
        return (
            f"Settings(app_id={self.app_id}, api_url={redacted_url(self.api_url)!r}, "
            f"state_path={str(self.state_path)!r}, "
            f"database={'set' if self.database_url else 'unset'}, "
            f"config_dir={str(self.config_dir)!r}, "
            f"dry_run={self.dry_run}, webhook_secret={'set' if self.webhook_secret else 'unset'})"
        )


def _private_key(env: Mapping[str, str]) -> str | None:
    text = env.get("GITHUB_PRIVATE_KEY", "").strip()
    path = env.get("GITHUB_PRIVATE_KEY_PATH", "").strip()
    if text and path:
        raise SettingsError("GITHUB_PRIVATE_KEY and GITHUB_PRIVATE_KEY_PATH: set only one")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(
                f"GITHUB_PRIVATE_KEY_PATH: cannot read {path} ({exc.strerror or exc})"
            ) from None
        except UnicodeDecodeError:
            raise SettingsError(
                f"GITHUB_PRIVATE_KEY_PATH: {path} is not a PEM private key (not text)"
            ) from None
    if not text:
        return None
    # Some platforms store multi-line secrets with literal "\n".
    text = text.replace("\\n", "\n")
    source = "GITHUB_PRIVATE_KEY_PATH" if path else "GITHUB_PRIVATE_KEY"
    if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text:
        raise SettingsError(f"{source}: not a PEM private key")
    # PEM armour around a truncated or mangled body would pass the check above
    # and fail only when the first JWT is signed, on the first delivery. Parsed
    # here once, in gunicorn's master: its workers sign with this key object
    # (bot/github/app_key.py).
    try:
        parsed_key(text)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SettingsError(f"{source}: not a usable PEM private key") from None
    return text


def config_dir(env: Mapping[str, str]) -> Path:
    """MODEL_ASSIGNER_CONFIG, a relative path being the project folder's (as
    the store's is), so the server and every command read the same folder;
    unset, the defaults (the checkout's config/, or the copy an installed
    package ships)."""
    configured = env.get("MODEL_ASSIGNER_CONFIG", "").strip()
    if not configured:
        return resources.default_config_dir()
    return resources.project_dir(env) / configured


def database_url(env: Mapping[str, str]) -> str | None:
    """MODEL_ASSIGNER_STATE when it is a postgresql:// URL; else DATABASE_URL
    (the name platforms set) when MODEL_ASSIGNER_STATE is unset and it is one."""
    configured = env.get("MODEL_ASSIGNER_STATE", "").strip()
    if configured.lower().startswith(DATABASE_SCHEMES):
        return configured
    fallback = env.get("DATABASE_URL", "").strip()
    if not configured and fallback:
        if not fallback.lower().startswith(DATABASE_SCHEMES):
            raise SettingsError("DATABASE_URL: must be a postgresql:// URL")
        return fallback
    return None


def state_path(env: Mapping[str, str]) -> Path:
    """MODEL_ASSIGNER_STATE, relative to the project folder: the checkout, or a
    per-user data folder for an installed package (docs/configuration.md). With
    a database, the default path (its folder keeps the local files)."""
    configured = env.get("MODEL_ASSIGNER_STATE", "").strip()
    if not configured or configured.lower().startswith(DATABASE_SCHEMES):
        configured = DEFAULT_STATE
    return resources.project_dir(env) / configured


DATABASE_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(value: str) -> bool:
    return value.strip().lower().startswith(DATABASE_SCHEMES)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(env: Mapping[str, str]) -> str:
    level = env.get("MODEL_ASSIGNER_LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise SettingsError(
            f"MODEL_ASSIGNER_LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}, got {level!r}"
        )
    return level


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    level = log_level(env)
    raw_id = env.get("GITHUB_APP_ID", "").strip()
    app_id: int | None = None
    if raw_id:
        if not (raw_id.isascii() and raw_id.isdigit()):
            raise SettingsError(f"GITHUB_APP_ID: must be the App's numeric id, got {raw_id!r}")
        app_id = int(raw_id)
    private_key = _private_key(env)
    secret = env.get("GITHUB_WEBHOOK_SECRET") or None
    if secret is not None and not secret.strip():
        raise SettingsError("GITHUB_WEBHOOK_SECRET: blank; set a real secret or leave it unset")

    if app_id is not None or private_key is not None:
        # Not dry-run: everything a real installation needs must be there.
        for name, value in (
            ("GITHUB_APP_ID", app_id),
            ("GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH", private_key),
            ("GITHUB_WEBHOOK_SECRET", secret),
        ):
            if value is None:
                raise SettingsError(f"{name}: missing (needed with App credentials)")

    api_url = env.get("GITHUB_API_URL", "").strip() or DEFAULT_API_URL
    try:
        parts = urlsplit(api_url)
        host = parts.hostname
    except ValueError:
        host = None
    if not api_url.startswith(("https://", "http://")) or not host or " " in api_url:
        raise SettingsError(
            f"GITHUB_API_URL: must be an http(s) URL, got {redacted_url(api_url)!r}"
        )

    return Settings(
        app_id=app_id,
        private_key=private_key,
        webhook_secret=secret,
        api_url=api_url.rstrip("/"),
        # Relative paths are the project folder's, where `serve` runs, so the
        # operator commands find the server's store and config from any folder.
        state_path=state_path(env),
        database_url=database_url(env),
        config_dir=config_dir(env),
        bot_login=env.get("MODEL_ASSIGNER_BOT_LOGIN", "").strip() or None,
        log_level=level,
        queue=queue_settings(env),
    )
