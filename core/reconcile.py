"""Reconciling the store's totals with a provider's usage export.

Provider usage APIs have no per-issue dimension, so they cannot be charged
per issue; they can say whether the month's totals agree. Two shapes are
read (both as saved from the API, one page or a list of pages):

- Anthropic's usage report (``/v1/organizations/usage_report/messages``,
  grouped by model): ``data[].starting_at`` and ``data[].results[]`` with
  ``uncached_input_tokens``, ``cache_creation.ephemeral_*_input_tokens``,
  ``cache_read_input_tokens``, ``output_tokens``, ``model``.
- OpenAI's organization usage (``/v1/organization/usage/completions``,
  grouped by model): ``data[].start_time`` (Unix seconds) and
  ``data[].results[]`` with ``input_tokens`` (cached included),
  ``input_cached_tokens``, ``output_tokens``, ``model``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from model_assigner.core.types import Model
from model_assigner.core.usage import TokenUsage, list_price, resolve_model
from model_assigner.core.usage_parse import UsageParseError


@dataclass(frozen=True)
class UsageRow:
    """Tokens of one model on one day, from either side."""

    day: date
    model: str
    usage: TokenUsage


@dataclass(frozen=True)
class Difference:
    day: date
    model: str
    store_tokens: int
    provider_tokens: int
    store_list_usd: float | None
    provider_list_usd: float | None

    @property
    def tokens(self) -> int:
        return self.provider_tokens - self.store_tokens

    @property
    def usd(self) -> float | None:
        if self.store_list_usd is None or self.provider_list_usd is None:
            return None
        return self.provider_list_usd - self.store_list_usd


def _int(value: Any, where: str) -> int:
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise UsageParseError(f"{where}: not a token count: {value!r}")
    return value


def _pages(document: Any) -> list[Mapping[str, Any]]:
    pages = document if isinstance(document, list) else [document]
    if not all(isinstance(page, Mapping) and isinstance(page.get("data"), list) for page in pages):
        raise UsageParseError("not a usage export: expected {\"data\": [...]} (or a list of them)")
    return pages


def anthropic_rows(document: Any) -> list[UsageRow]:
    rows = []
    for page in _pages(document):
        for bucket in page["data"]:
            start = str(bucket.get("starting_at", ""))
            try:
                day = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC).date()
            except ValueError:
                raise UsageParseError(f"starting_at: not a time: {start!r}") from None
            for result in bucket.get("results") or []:
                model = result.get("model")
                if not isinstance(model, str):
                    raise UsageParseError("results[].model: missing (group the report by model)")
                cache = result.get("cache_creation") or {}
                rows.append(UsageRow(day, model, TokenUsage(
                    model=model,
                    input_tokens=_int(result.get("uncached_input_tokens"), "uncached_input_tokens"),
                    cache_creation_input_tokens=sum(
                        _int(value, f"cache_creation.{name}") for name, value in cache.items()
                    ),
                    cache_read_input_tokens=_int(
                        result.get("cache_read_input_tokens"), "cache_read_input_tokens"
                    ),
                    output_tokens=_int(result.get("output_tokens"), "output_tokens"),
                )))
    return rows


def openai_rows(document: Any) -> list[UsageRow]:
    rows = []
    for page in _pages(document):
        for bucket in page["data"]:
            start = bucket.get("start_time")
            if type(start) is not int:
                raise UsageParseError(f"start_time: not Unix seconds: {start!r}")
            day = datetime.fromtimestamp(start, UTC).date()
            for result in bucket.get("results") or []:
                model = result.get("model")
                if not isinstance(model, str):
                    raise UsageParseError("results[].model: missing (group the usage by model)")
                total_in = _int(result.get("input_tokens"), "input_tokens")
                cached = _int(result.get("input_cached_tokens"), "input_cached_tokens")
                rows.append(UsageRow(day, model, TokenUsage(
                    model=model,
                    input_tokens=max(0, total_in - cached),
                    cache_read_input_tokens=min(cached, total_in),
                    output_tokens=_int(result.get("output_tokens"), "output_tokens"),
                )))
    return rows


def provider_rows(document: Any) -> tuple[str, list[UsageRow]]:
    """The export's rows, and which provider's shape it is."""
    pages = _pages(document)
    results = [r for page in pages for b in page["data"] for r in (b.get("results") or [])]
    buckets = [b for page in pages for b in page["data"]]
    if any("uncached_input_tokens" in r for r in results) or any(
        "starting_at" in b for b in buckets
    ):
        return "anthropic", anthropic_rows(document)
    if any("start_time" in b for b in buckets):
        return "openai", openai_rows(document)
    raise UsageParseError("neither an Anthropic usage report nor OpenAI organization usage")


def compare(
    store: Iterable[UsageRow], provider: Iterable[UsageRow], models: Sequence[Model]
) -> list[Difference]:
    """Per day and catalog model (a model outside the catalog keeps the
    provider's name and has no price), both sides' tokens and list prices."""
    sides: dict[tuple[date, str], list[list[TokenUsage]]] = defaultdict(lambda: [[], []])
    for index, rows in enumerate((store, provider)):
        for row in rows:
            known = resolve_model(models, row.model)
            sides[(row.day, known.name if known else row.model)][index].append(row.usage)
    differences = []
    for (day, name), (ours, theirs) in sorted(sides.items()):
        model = next((m for m in models if m.name == name), None)

        def price(lines: list[TokenUsage], model: Model | None = model) -> float | None:
            return None if model is None else sum(list_price(model, line) for line in lines)

        differences.append(Difference(
            day, name, sum(u.total for u in ours), sum(u.total for u in theirs),
            price(ours), price(theirs),
        ))
    return differences
