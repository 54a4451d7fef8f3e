"""Label settings and the per-repository `.github/model-assigner.yml`.

The per-repository file is written by anyone with push access, so it is read
as hostile input: size-capped, safe YAML only, no aliases (a "billion laughs"
document expands exponentially when walked), validated like the defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.config import CatalogConfig, ScoringConfig
from core.loader import (
    ConfigError,
    StringDatesLoader,
    deep_merge,
    override_scoring,
    parse_yaml,
    read_yaml_file,
    validate,
)
from core.types import Priority

LABELS_FILE = "labels.yaml"
REPO_CONFIG_PATH = ".github/model-assigner.yml"
REPO_CONFIG_MAX_BYTES = 64 * 1024
# Nesting deeper than this is refused while composing: PyYAML composes
# recursively, and 64 KiB of "[" is deep enough to exhaust Python's stack.
REPO_CONFIG_MAX_DEPTH = 32
# The problem is shown in the issue comment (GitHub caps a comment at 65,536
# characters) and logged; a file with thousands of bad keys must not flood either.
PROBLEM_MAX_CHARS = 1000


class LabelsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    priority_aliases: dict[str, Priority] = Field(default_factory=dict)
    model_label_prefix: str = Field(default="model:", min_length=1, max_length=40)
    deferred_label: str = Field(default="model:deferred", min_length=1, max_length=50)
    model_label_color: str = Field(default="6f42c1", pattern=r"^[0-9a-fA-F]{6}$")
    deferred_label_color: str = Field(default="d4c5f9", pattern=r"^[0-9a-fA-F]{6}$")

    @field_validator("priority_aliases")
    @classmethod
    def _lowercase(cls, value: dict[str, Priority]) -> dict[str, Priority]:
        return {name.strip().lower(): priority for name, priority in value.items()}

    def model_label(self, model: str) -> str:
        return f"{self.model_label_prefix}{model}"

    def is_model_label(self, name: str) -> bool:
        return name.lower().startswith(self.model_label_prefix.lower())

    def model_from_label(self, name: str) -> str | None:
        """The model a `model:<name>` label names (None for the deferred label)."""
        if not self.is_model_label(name) or name.lower() == self.deferred_label.lower():
            return None
        return name[len(self.model_label_prefix) :].strip() or None


class RepoConfig(BaseModel):
    """The per-repository file's schema: both sections optional."""

    model_config = ConfigDict(extra="forbid")

    scoring: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)


class EffectiveConfig(BaseModel):
    """What one repository runs with, and the problem with its file, if any."""

    model_config = ConfigDict(frozen=True)

    scoring: ScoringConfig
    labels: LabelsConfig
    problem: str | None = None


def load_labels_config(config_dir: Path) -> LabelsConfig:
    path = config_dir / LABELS_FILE
    if not path.exists():
        return LabelsConfig()
    return validate(LabelsConfig, read_yaml_file(path), str(path))


class _NoAliasLoader(StringDatesLoader):
    """Safe YAML that also refuses anchors/aliases and deep nesting."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.constructor.ConstructorError(
                None, None, "aliases (*name) are not allowed", event.start_mark
            )
        if self._depth >= REPO_CONFIG_MAX_DEPTH:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"nested more than {REPO_CONFIG_MAX_DEPTH} levels deep",
                self.peek_event().start_mark,  # type: ignore[no-untyped-call]
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_untrusted_yaml(text: str, source: str) -> Any:
    if len(text.encode("utf-8", errors="replace")) > REPO_CONFIG_MAX_BYTES:
        raise ConfigError(f"{source}: (top level): larger than {REPO_CONFIG_MAX_BYTES:,} bytes")
    return parse_yaml(text, source, _NoAliasLoader)


def effective_config(
    text: str | None,
    scoring: ScoringConfig,
    labels: LabelsConfig,
    catalog: CatalogConfig,
    source: str = REPO_CONFIG_PATH,
) -> EffectiveConfig:
    """The defaults with the repository's file on top; on any problem, the
    defaults and the problem, so the bot keeps working and says why."""
    if text is None or not text.strip():
        return EffectiveConfig(scoring=scoring, labels=labels)
    try:
        data = parse_untrusted_yaml(text, source)
        if data is None:
            return EffectiveConfig(scoring=scoring, labels=labels)
        repo = validate(RepoConfig, data, source)
        merged_scoring = (
            override_scoring(scoring, repo.scoring, catalog, f"{source}: scoring")
            if repo.scoring
            else scoring
        )
        merged_labels = labels
        if repo.labels:
            merged = deep_merge(labels.model_dump(), repo.labels)
            merged_labels = validate(LabelsConfig, merged, f"{source}: labels")
    except ConfigError as exc:
        problem = str(exc)
        if len(problem) > PROBLEM_MAX_CHARS:
            problem = problem[: PROBLEM_MAX_CHARS - 1].rstrip() + "…"
        return EffectiveConfig(scoring=scoring, labels=labels, problem=problem)
    return EffectiveConfig(scoring=merged_scoring, labels=merged_labels)
