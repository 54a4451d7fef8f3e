"""Phase 1 of the seed: the task value score (0-100) and its signals.

Each function returns the seed's answer together with the signal that decided
it (a Reason, core/reasons.py), because the bot's comment has to say *why* an
issue scored what it did.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from datetime import datetime

from model_assigner.core.config import ScoringConfig
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.text import find_keyword, find_path_hint, first_label
from model_assigner.core.types import Complexity, ScoreBreakdown, Task, as_utc

# Float noise must not move a task across a band boundary: with a weight of 15,
# a domain modifier of 3.0 and a risk modifier of 1.4, (15 * 1 + 0) * 3.0 * 1.4
# is 62.99999999999999 in binary floating point, not 63.
SCORE_DECIMALS = 9

_FILES_MENTION = re.compile(r"(?<![\w.])(\d[\d,_]*)\s+(?:[a-z-]+\s+)?files?\b")
_LOC_MENTION = re.compile(r"(?<![\w.])(\d[\d,_]*)\s*(?:loc\b|lines?\b)")
_PATH_MENTION = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.([a-z0-9]{1,10}))(?![\w/])")
FILE_EXTENSIONS = frozenset(
    {
        "py", "pyi", "js", "jsx", "ts", "tsx", "mjs", "cjs", "go", "rs", "java", "kt", "kts",
        "scala", "rb", "php", "c", "h", "cc", "cpp", "hpp", "cs", "swift", "m", "mm", "sh", "bash",
        "zsh", "ps1", "sql", "html", "htm", "css", "scss", "sass", "less", "vue", "svelte", "json",
        "yaml", "yml", "toml", "ini", "cfg", "conf", "xml", "md", "rst", "txt", "tf", "hcl",
        "proto", "graphql", "gradle", "cmake", "mk", "dockerfile", "lua", "r", "jl", "ex", "exs",
        "erl", "hs", "ml", "dart", "ipynb",
    }
)


def _to_int(digits: str) -> int:
    return int(digits.replace(",", "").replace("_", ""))


def estimate_files_from_description(description: str) -> int:
    """An explicit "N files" wins; else the number of distinct file paths named.

    The seed calls this without defining it. We only count what the text says,
    so an issue that names no files stays at 0 (simple) instead of a guess."""
    text = description.lower()
    mention = _FILES_MENTION.search(text)
    if mention:
        return _to_int(mention.group(1))
    paths = {
        match.group(1)
        for match in _PATH_MENTION.finditer(text)
        if "/" in match.group(1) or match.group(2) in FILE_EXTENSIONS
    }
    return len(paths)


def estimate_loc_from_description(description: str) -> int:
    """An explicit "N lines" or "N LOC", else 0 (see estimate_files_from_description)."""
    mention = _LOC_MENTION.search(description.lower())
    return _to_int(mention.group(1)) if mention else 0


def depended_on_ids(known_tasks: Iterable[Task]) -> frozenset[str]:
    """Ids that some known task depends on, computed once per batch so that
    is_blocking_tasks stays O(1) instead of scanning every other task."""
    return frozenset(dep for other in known_tasks for dep in other.dependencies if dep != other.id)


def is_blocking_tasks(task: Task, depended_on: Container[str] = frozenset()) -> bool:
    """A task blocks when it says it does (``blocks``) or another known task
    depends on it (``depended_on`` from depended_on_ids)."""
    return bool(task.blocks) or task.id in depended_on


def estimate_complexity(task: Task, config: ScoringConfig) -> tuple[Complexity, Reason]:
    file_count, files_from = task.estimated_files, "estimated_files"
    if file_count == 0:
        file_count, files_from = estimate_files_from_description(task.description), "description"
    loc, loc_from = task.estimated_loc, "estimated_loc"
    if loc == 0:
        loc, loc_from = estimate_loc_from_description(task.description), "description"

    # The seed computes len(task.dependencies) here and never uses it; so do we not.
    keyword = find_keyword(task.description.lower(), config.complex_keywords)

    for level, rule in config.complexity_rules.items():
        if level == "highly_complex" and keyword:
            return level, reason(ReasonCode.COMPLEXITY_KEYWORD, keyword=keyword)
        if file_count >= rule.files_at_least:
            return level, reason(ReasonCode.COMPLEXITY_FILES, files=file_count, source=files_from,
                                 at_least=rule.files_at_least)
        if loc > rule.loc_above:
            return level, reason(ReasonCode.COMPLEXITY_LOC, loc=loc, source=loc_from,
                                 above=rule.loc_above)
    return config.complexity_fallback, reason(
        ReasonCode.COMPLEXITY_BELOW_THRESHOLDS, files=file_count, loc=loc
    )


def time_sensitivity(
    task: Task, config: ScoringConfig, now: datetime, blocking: bool
) -> tuple[float, Reason]:
    bonuses, hours = config.time_sensitivity_bonuses, config.time_sensitivity_hours
    time_bonus, why = bonuses.flexible, reason(ReasonCode.NO_DEADLINE)
    if task.deadline:
        # Deadlines are stored in UTC; a naive clock is UTC too (core.types.as_utc),
        # as in the seed's example, which mixes naive datetime.now() values.
        hours_until_deadline = (task.deadline - as_utc(now)).total_seconds() / 3600
        windows = (
            (hours.immediate, bonuses.immediate, "immediate"),
            (hours.urgent, bonuses.urgent, "urgent"),
            (hours.week, bonuses.week, "this week"),
            (hours.month, bonuses.month, "this month"),
        )
        for limit, bonus, window in windows:
            if hours_until_deadline <= limit:
                time_bonus, why = bonus, reason(
                    ReasonCode.DEADLINE_WITHIN, hours=hours_until_deadline, limit=limit,
                    window=window,
                )
                break
        else:
            why = reason(ReasonCode.DEADLINE_FLEXIBLE, hours=hours_until_deadline)

    if blocking and config.blocking_time_bonus > time_bonus:
        time_bonus, why = config.blocking_time_bonus, reason(
            ReasonCode.BLOCKS_OTHERS, because=why
        )
    return time_bonus, why


def classify_domain(task: Task, config: ScoringConfig) -> tuple[str, Reason]:
    label_set = {label.lower() for label in task.labels}
    for domain, labels in config.domain_labels.items():
        label = first_label(label_set, labels)
        if label:
            return domain, reason(ReasonCode.SIGNAL_LABEL, label=label)
    for domain, hints in config.domain_path_hints.items():
        hint = find_path_hint(task.workspace_path, hints)
        if hint:
            return domain, reason(ReasonCode.SIGNAL_PATH_WORD, word=hint)
    return config.default_domain, reason(ReasonCode.SIGNAL_DEFAULT)


def assess_risk(task: Task, config: ScoringConfig) -> tuple[str, Reason]:
    desc_lower = task.description.lower()
    label_set = {label.lower() for label in task.labels}
    for level, indicators in config.risk_indicators.items():
        label = first_label(label_set, indicators.labels)
        if label:
            return level, reason(ReasonCode.SIGNAL_LABEL, label=label)
        hint = find_path_hint(task.workspace_path, indicators.path_hints)
        if hint:
            return level, reason(ReasonCode.SIGNAL_PATH_WORD, word=hint)
        keyword = find_keyword(desc_lower, indicators.description_keywords)
        if keyword:
            return level, reason(ReasonCode.SIGNAL_KEYWORD, keyword=keyword)
    return config.default_risk, reason(ReasonCode.SIGNAL_DEFAULT)


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def combine_terms(
    priority_weight: float,
    complexity_multiplier: float,
    time_bonus: float,
    domain_modifier: float,
    risk_modifier: float,
) -> float:
    """The seed's formula, unclamped: the one place it is written, so that
    what-if questions (core.selection's deferral hints) ask exactly it."""
    score = (priority_weight * complexity_multiplier + time_bonus) * domain_modifier * risk_modifier
    return round(score, SCORE_DECIMALS)


def calculate_task_value(
    task: Task, config: ScoringConfig, now: datetime, depended_on: Container[str] = frozenset()
) -> ScoreBreakdown:
    # 1. Base priority weight
    if task.priority is None:
        base_score = config.default_priority_weight
    else:
        base_score = config.priority_weights.get(task.priority, config.default_priority_weight)

    # 2. Complexity multiplier
    complexity, complexity_signal = estimate_complexity(task, config)
    complexity_multiplier = config.complexity_multipliers[complexity]

    # 3. Time sensitivity bonus, raised for tasks that block others
    time_bonus, time_reason = time_sensitivity(
        task, config, now, is_blocking_tasks(task, depended_on)
    )

    # 4. Domain modifier
    domain, domain_reason = classify_domain(task, config)
    domain_mod = config.domain_modifiers.get(domain, 1.0)

    # 5. Risk adjustment
    risk_level, risk_reason = assess_risk(task, config)
    risk_mod = config.risk_modifiers.get(risk_level, 1.0)

    score = combine_terms(base_score, complexity_multiplier, time_bonus, domain_mod, risk_mod)
    return ScoreBreakdown(
        priority=task.priority,
        priority_weight=base_score,
        complexity=complexity,
        complexity_multiplier=complexity_multiplier,
        complexity_signal=complexity_signal,
        time_bonus=time_bonus,
        time_reason=time_reason,
        domain=domain,
        domain_modifier=domain_mod,
        domain_reason=domain_reason,
        risk=risk_level,
        risk_modifier=risk_mod,
        risk_reason=risk_reason,
        raw_score=score,
        value_score=clamp(score, config.score_min, config.score_max),
    )
