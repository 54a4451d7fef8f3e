"""Reading the configuration's files: the engine's folder and labels.yaml.

The engine (core/loader.py) only parses and validates text; where the files
are (``--config``, ``MODEL_ASSIGNER_CONFIG``, the folder a checkout or an
installed package ships, bot/resources.py) and reading them is the
adapter's job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_assigner.bot import resources
from model_assigner.core.config import EngineConfig
from model_assigner.core.loader import (
    MODELS_FILE,
    SCORING_FILE,
    SUBSCRIPTIONS_FILE,
    ConfigError,
    engine_config,
    parse_yaml,
)


def read_text(path: Path) -> str:
    """A config file's text; a ConfigError naming the file when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def read_yaml_file(path: Path) -> Any:
    return parse_yaml(read_text(path), str(path))


def load_engine_config(config_dir: Path | str | None = None) -> EngineConfig:
    """The engine's config from ``config_dir`` (default: the bundled config/)."""
    folder = resources.default_config_dir() if config_dir is None else Path(config_dir)
    if not folder.is_dir():
        # Said plainly: "models.yaml/scoring.yaml: Not a directory" is a riddle.
        problem = "is a file, not a folder" if folder.exists() else "no such folder"
        raise ConfigError(
            f"{folder}: {problem} (the config folder holds {SCORING_FILE}, {MODELS_FILE} "
            f"and {SUBSCRIPTIONS_FILE})"
        )
    return engine_config(lambda name: (read_text(folder / name), str(folder / name)))
