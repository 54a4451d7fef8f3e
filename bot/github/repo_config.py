"""Label settings and the per-repository `.github/model-assigner.yml`.

The per-repository file is written by anyone with push access, so it is read
as hostile input: size-capped, safe YAML only, no aliases (a "billion laughs"
document expands exponentially when walked), validated like the defaults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model_assigner.bot.config_files import read_yaml_file
from model_assigner.core.config import CatalogConfig, ScoringConfig
from model_assigner.core.loader import (
    ConfigError,
    StringDatesLoader,
    deep_merge,
    override_scoring,
    parse_yaml,
    validate,
)
from model_assigner.core.types import Priority

LABELS_FILE = "labels.yaml"
REPO_CONFIG_PATH = ".github/model-assigner.yml"
# Label settings only the operator's labels.yaml may set.
OPERATOR_LABEL_KEYS = ("override_min_permission",)
REPO_CONFIG_MAX_BYTES = 64 * 1024
# Nesting deeper than this is refused while composing: PyYAML composes
# recursively, and 64 KiB of "[" is deep enough to exhaust Python's stack.
REPO_CONFIG_MAX_DEPTH = 32
# The problem is shown in the issue comment (GitHub caps a comment at 65,536
# characters) and logged; a file with thousands of bad keys must not flood either.
PROBLEM_MAX_CHARS = 1000


class Unreadable(str):
    """A repository config file that is there but cannot be used as one (a
    symlink, a submodule, a folder, too large): the text says why; the
    defaults apply and the comment says so, as for any other bad file."""


class LabelsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    priority_aliases: dict[str, Priority] = Field(default_factory=dict, max_length=64)
    # Ends with ':' or '/' so that it cannot capture a label it did not make:
    # a prefix of "b" read `backend` as a person's choice of model "ackend",
    # and the bot then removed `bug`.
    model_label_prefix: str = Field(
        default="model:", min_length=2, max_length=40, pattern=r"^[^\s:/,]{1,39}[:/]$"
    )
    deferred_label: str = Field(default="model:deferred", min_length=1, max_length=50)
    # Operator only (labels.yaml; a repository's file cannot set it): the role
    # a person needs on the repository for a `model:` label to be their choice.
    override_min_permission: Literal["read", "triage", "write", "maintain", "admin"] = "triage"
    model_label_color: str = Field(default="6f42c1", pattern=r"^[0-9a-fA-F]{6}$")
    deferred_label_color: str = Field(default="d4c5f9", pattern=r"^[0-9a-fA-F]{6}$")

    @field_validator("priority_aliases")
    @classmethod
    def _lowercase(cls, value: dict[str, Priority]) -> dict[str, Priority]:
        return {name.strip().lower(): priority for name, priority in value.items()}

    @model_validator(mode="after")
    def _deferred_is_a_model_label(self) -> Self:
        # The bot adds and removes the deferred label: it must be one of its own
        # (under the prefix), never a name like `bug` or `wontfix`.
        if not self.deferred_label.lower().startswith(self.model_label_prefix.lower()):
            raise ValueError(
                f"deferred_label: must start with model_label_prefix {self.model_label_prefix!r}"
            )
        return self

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
    """What one repository runs with, the problem with its file (then the
    defaults run), and what of it was refused or clamped (the rest runs)."""

    model_config = ConfigDict(frozen=True)

    scoring: ScoringConfig
    labels: LabelsConfig
    problem: str | None = None
    refused: str | None = None


# Number tables a repository may set, each value clamped to at most the largest
# the operator's own table holds: a repository may say what matters most to
# it, not make its issues worth more than the operator's scale allows (no more
# than putting its top labels on every issue would).
_TABLES = ("priority_weights", "complexity_multipliers", "domain_modifiers", "risk_modifiers")


def _largest(values: Any) -> float:
    numbers = [v for v in (values.values() if isinstance(values, Mapping) else values)
               if isinstance(v, int | float) and not isinstance(v, bool)]
    return float(max(numbers, default=0.0))


def _clamp(value: Any, low: float, high: float, key: str, notes: list[str]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value  # validation names what is wrong with it
    if isinstance(value, float) and not math.isfinite(value):
        return value  # refused by validation, named
    if value > high or (low > 0 and value < low):  # a negative number is validation's
        clamped = min(max(value, low), high)
        notes.append(f"{key}: {_shown(value)} clamped to {_shown(clamped)}")
        return clamped
    return value


def _shown(value: float) -> str:
    """A number for a message: an integer too large for a float (10**320) as
    its first digits and length, never an OverflowError."""
    if isinstance(value, int) and abs(value) >= 10**15:
        digits = str(abs(value))
        return f"{'-' if value < 0 else ''}{digits[:6]}... ({len(digits)} digits)"
    return f"{value:g}"


def _clamp_override(key: str, value: Any, base: ScoringConfig, notes: list[str]) -> Any:
    """A repository's value for ``key``, its numbers put into the operator's
    range (see _TABLES); notes say what was changed."""
    where = f"scoring.{key}"
    if key in _TABLES and isinstance(value, Mapping):
        high = _largest(getattr(base, key))
        return {k: _clamp(v, 0, high, f"{where}.{k}", notes) for k, v in value.items()}
    bonuses = base.time_sensitivity_bonuses.model_dump()
    if key == "time_sensitivity_bonuses" and isinstance(value, Mapping):
        high = _largest(bonuses)
        return {k: _clamp(v, 0, high, f"{where}.{k}", notes) for k, v in value.items()}
    if key == "default_priority_weight":
        return _clamp(value, 0, _largest(base.priority_weights), where, notes)
    if key == "blocking_time_bonus":
        high = max(_largest(bonuses), base.blocking_time_bonus)
        return _clamp(value, 0, high, where, notes)
    if key == "token_estimates" and isinstance(value, Mapping):
        # Only if the operator allows it: within the operator's own range, so
        # that no issue is free ([0, 0]) nor a budget's worth (10**12).
        ins = [pair[0] for pair in base.token_estimates.values()]
        outs = [pair[1] for pair in base.token_estimates.values()]
        clamped: dict[str, Any] = {}
        for level, pair in value.items():
            if isinstance(pair, list | tuple) and len(pair) == 2:
                clamped[level] = [
                    _clamp(pair[0], min(ins), max(ins), f"{where}.{level}.0", notes),
                    _clamp(pair[1], min(outs), max(outs), f"{where}.{level}.1", notes),
                ]
            else:
                clamped[level] = pair
        return clamped
    return value


def repository_scoring(
    base: ScoringConfig, override: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """What a repository's ``scoring:`` may change: the keys the operator
    allows (``repository_may_override``), clamped. Returns the override to
    apply, the keys refused and the notes on clamped numbers. A key that is
    no scoring key at all is kept, for validation to name as a typo."""
    allowed = set(base.repository_may_override)
    known = set(ScoringConfig.model_fields)
    kept: dict[str, Any] = {}
    refused: list[str] = []
    notes: list[str] = []
    for key, value in override.items():
        if key in known and key not in allowed:
            refused.append(str(key))
        elif key in allowed:
            kept[key] = _clamp_override(key, value, base, notes)
        else:
            kept[key] = value
    return kept, refused, notes


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
    if isinstance(text, Unreadable):
        return EffectiveConfig(scoring=scoring, labels=labels, problem=_short(f"{source}: {text}"))
    if text is None or not text.strip():
        return EffectiveConfig(scoring=scoring, labels=labels)
    refused: list[str] = []
    notes: list[str] = []
    try:
        data = parse_untrusted_yaml(text, source)
        if data is None:
            return EffectiveConfig(scoring=scoring, labels=labels)
        repo = validate(RepoConfig, data, source)
        allowed_scoring, refused, notes = repository_scoring(scoring, repo.scoring)
        merged_scoring = (
            override_scoring(scoring, allowed_scoring, catalog, f"{source}: scoring")
            if allowed_scoring
            else scoring
        )
        merged_labels = labels
        repo_labels = dict(repo.labels)
        for key in OPERATOR_LABEL_KEYS:
            if key in repo_labels:
                del repo_labels[key]
                refused.append(f"labels.{key}")
        if repo_labels:
            base_labels = labels.model_dump()
            if "model_label_prefix" in repo_labels and "deferred_label" not in repo_labels:
                # A new prefix alone: the deferred label follows it.
                base_labels["deferred_label"] = f"{repo_labels['model_label_prefix']}deferred"
            merged = deep_merge(base_labels, repo_labels)
            merged_labels = validate(LabelsConfig, merged, f"{source}: labels")
    except ConfigError as exc:
        return EffectiveConfig(scoring=scoring, labels=labels, problem=_short(str(exc)))
    said = None
    if refused or notes:
        parts = []
        if refused:
            parts.append(
                "not a repository setting (the operator decides it): "
                + ", ".join(key if "." in key else f"scoring.{key}" for key in refused)
            )
        parts += notes
        said = _short(f"{source}: " + "; ".join(parts))
    return EffectiveConfig(scoring=merged_scoring, labels=merged_labels, refused=said)


def _short(problem: str) -> str:
    if len(problem) > PROBLEM_MAX_CHARS:
        problem = problem[: PROBLEM_MAX_CHARS - 1].rstrip() + "…"
    return problem
