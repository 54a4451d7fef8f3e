"""Turning the YAML configuration's text into validated config, with errors a
person can act on.

A config error names the file, the key and the problem in one line, because the
operator reading it is usually looking at a crash-looping container, not at a
traceback. Pure: the texts come in as arguments (bot/config_files.py reads
the files and knows where the default folder is).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from model_assigner.core.config import CatalogConfig, EngineConfig, ScoringConfig
from model_assigner.core.config_subscriptions import SubscriptionsConfig

SCORING_FILE = "scoring.yaml"
MODELS_FILE = "models.yaml"
SUBSCRIPTIONS_FILE = "subscriptions.yaml"

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """An invalid settings file; ``str()`` is the whole one-line message."""


def describe_validation_error(source: str, error: ValidationError) -> str:
    """``source: key: problem; key: problem`` from a pydantic error."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if not key and ": " in message:
            key, message = message.split(": ", 1)
        problems.append(f"{key or '(top level)'}: {message}")
    return f"{source}: " + "; ".join(problems)


class StringDatesLoader(yaml.SafeLoader):
    """Safe YAML whose dates stay text. pydantic then parses them, and a bad
    one (``2026-13-01``) is reported with its key, where PyYAML's own
    timestamp constructor would raise a bare ValueError from deep inside."""


StringDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(
    text: str, source: str, loader: type[yaml.SafeLoader] = StringDatesLoader, kind: str = "YAML"
) -> Any:
    """Safe YAML only: tags such as ``!!python/object`` are refused, not run."""
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: {where}not valid {kind} ({problem})") from None
    except (ValueError, OverflowError) as exc:
        # An explicit tag with a bad value: ``!!timestamp 2026-13-01``, ``!!int x``.
        raise ConfigError(f"{source}: not valid {kind} ({exc})") from None


def validate(schema: type[T], data: Any, source: str) -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: (top level): expected a mapping of settings")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(source, exc)) from None


def check_references(scoring: ScoringConfig, catalog: CatalogConfig, source: str) -> None:
    """Every model a band prefers must exist: a typo there would silently make
    the band fall back to its cheapest model."""
    names = {model.name for model in catalog.models}
    for index, band in enumerate(scoring.value_bands):
        for field in ("preferred", "preferred_without_quota"):
            for position, name in enumerate(getattr(band, field) or []):
                if name not in names:
                    raise ConfigError(
                        f"{source}: value_bands.{index}.{field}.{position}: "
                        f"model {name!r} is not in the catalog ({MODELS_FILE})"
                    )
    for position, name in enumerate(scoring.low_value_band.preferred):
        if name not in names:
            raise ConfigError(
                f"{source}: low_value_band.preferred.{position}: "
                f"model {name!r} is not in the catalog ({MODELS_FILE})"
            )
    # A family no model has would silently never match: the band would always
    # take its no-quota order, the override would never apply.
    families = sorted({model.family for model in catalog.models})
    named = [
        (f"value_bands.{index}.quota_family", band.quota_family)
        for index, band in enumerate(scoring.value_bands)
    ] + [
        (f"domain_overrides.{index}.prefer_family", override.prefer_family)
        for index, override in enumerate(scoring.domain_overrides)
    ]
    for key, family in named:
        if family is not None and family not in families:
            raise ConfigError(
                f"{source}: {key}: no model of family {family!r} in the catalog "
                f"(families: {', '.join(families)})"
            )


def engine_config(read: Callable[[str], tuple[str, str]]) -> EngineConfig:
    """The engine's config from its three files, each asked of ``read``
    (a file name -> its text and the name to give it in errors) in turn, so
    that the first problem found is the one reported."""
    scoring_text, scoring_source = read(SCORING_FILE)
    scoring = validate(ScoringConfig, parse_yaml(scoring_text, scoring_source), scoring_source)
    models_text, models_source = read(MODELS_FILE)
    catalog = validate(CatalogConfig, parse_yaml(models_text, models_source), models_source)
    subs_text, subs_source = read(SUBSCRIPTIONS_FILE)
    quotas = validate(SubscriptionsConfig, parse_yaml(subs_text, subs_source), subs_source)
    check_references(scoring, catalog, scoring_source)
    return EngineConfig(scoring=scoring, catalog=catalog, quotas=quotas)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) is replaced,
    so an override of a keyword list says the whole list."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def override_scoring(
    base: ScoringConfig, override: Mapping[str, Any], catalog: CatalogConfig, source: str
) -> ScoringConfig:
    """A repository's partial scoring settings on top of the defaults."""
    data = deep_merge(base.model_dump(mode="python"), override)
    scoring = validate(ScoringConfig, data, source)
    check_references(scoring, catalog, source)
    return scoring
