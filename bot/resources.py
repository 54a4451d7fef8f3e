"""Where the files the commands need live: a checkout's, or an installed package's.

A checkout (an editable install, the container) reads the top-level
``config/``, ``Procfile``, ``examples/`` and ``deploy/app.yml``: they are the
source of truth. ``pip install .`` has no checkout to read, so the build
copies those files into the package (``bot/shipped/``, see setup.py), and
the project folder, where the store lives by default, becomes a per-user
data folder rather than site-packages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parent
SHIPPED = PACKAGE_DIR / "shipped"
APP_NAME = "model-assigner"


def installed() -> bool:
    """True when running from an installed package (the build ships its files),
    False in a checkout, whose top-level files are read directly."""
    return (SHIPPED / "config").is_dir() and not (CHECKOUT / "pyproject.toml").is_file()


def files_root() -> Path:
    """The folder holding ``config/``, ``Procfile``, ``examples/`` and ``deploy/``."""
    return SHIPPED if installed() else CHECKOUT


def default_config_dir() -> Path:
    return files_root() / "config"


def project_dir(env: Mapping[str, str] | None = None) -> Path:
    """What relative store and config paths are resolved against.

    A checkout: the checkout. An installed package: ``$XDG_DATA_HOME/model-assigner``,
    else ``~/.local/share/model-assigner`` (site-packages is no place for a store).
    """
    if not installed():
        return CHECKOUT
    env = os.environ if env is None else env
    data_home = env.get("XDG_DATA_HOME", "").strip()
    base = Path(data_home) if data_home else Path.home() / ".local" / "share"
    return base / APP_NAME


def procfile() -> Path:
    return files_root() / "Procfile"


def sample_payload() -> Path:
    return files_root() / "examples" / "issues.opened.json"


def app_manifest() -> Path:
    return files_root() / "deploy" / "app.yml"
