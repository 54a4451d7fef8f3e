"""Opening and reading the store for the operator commands (``ops``, ``db``,
``usage``): the store ``--state`` names, else the server's, and the state it
holds, with one-line failures. Shared here so the command modules do not
import each other.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from model_assigner.bot.backends import describe_store, open_state_store
from model_assigner.bot.cli.errors import CliError, parse_now
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.settings import SettingsError, is_database_url, load_settings
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import State, StoreError, initial_state
from model_assigner.core.loader import ConfigError


def fail(message: str) -> Exception:
    """The one-line failure a command raises."""
    return CliError(message)


def open_store(args: argparse.Namespace, location: str | None = None) -> StateStore:
    """The store --state names (a file or a postgresql:// URL), else the
    server's: MODEL_ASSIGNER_STATE (or DATABASE_URL)."""
    try:
        settings = load_settings()
        config_dir = Path(args.config) if getattr(args, "config", None) else settings.config_dir
        engine = load_engine_config(config_dir)
    except (SettingsError, ConfigError) as exc:
        raise fail(str(exc)) from None
    chosen = location or getattr(args, "state", None)
    target: str | Path
    if chosen:
        target = chosen if is_database_url(chosen) else Path(chosen)
    else:
        target = settings.database_url or settings.state_path
    return open_state_store(target, engine.quotas, lambda: now_of(args))


def now_of(args: argparse.Namespace) -> datetime:
    """--now if given (scripts and tests pin the clock with it), else the time."""
    return parse_now(getattr(args, "now", None))


def read_state(store: StateStore, args: argparse.Namespace | None = None) -> State:
    """The store's state. Before the first delivery: for a report (``args``
    given), the configured starting state (what the server starts from and
    /metrics shows), said so; for a caller that needs recorded usage, an error."""
    name = describe_store(store)
    try:
        exists = store.exists()
        if args is None and not exists:
            raise fail(
                f"{name}: no store yet (it is created on the first delivery"
                + ("" if store.kind == "file" else ", or by `model-assigner migrate`")
                + "); is MODEL_ASSIGNER_STATE the server's?"
            )
        if exists or store.kind == "file":
            state = store.read()
        else:  # a database without the schema yet: what it would start from
            from model_assigner.bot.store.postgresql import PgStore

            assert isinstance(store, PgStore)
            state = initial_state(store.defaults, store.clock())
    except StoreError as exc:
        raise fail(str(exc)) from None
    if not exists:
        note = (
            f"no delivery recorded yet: {name} does not exist; showing the configured "
            "starting state (config/subscriptions.yaml)"
        )
        # With --json, stdout stays one JSON document.
        print(note, file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    return state
