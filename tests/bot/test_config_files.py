"""Config loading: the real files, edits that change behaviour, and errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model_assigner.bot.config_files import load_engine_config
from model_assigner.core.batch import optimize_task_assignments
from model_assigner.core.config import EngineConfig
from model_assigner.core.loader import ConfigError, deep_merge, override_scoring
from model_assigner.core.scoring import calculate_task_value
from model_assigner.core.selection import select_model
from model_assigner.core.tokens import estimate_token_usage
from tests.helpers import (
    NOW,
    SEED_COMPLEXITY,
    SEED_DOMAIN,
    SEED_PRIORITY,
    SEED_RISK,
    SEED_TOKENS,
    build_ledger,
    build_task,
    seed_task,
    task_for,
)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def load_error(folder: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_engine_config(folder)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the shipped config ------------------------------------------------------------


def test_shipped_config_holds_the_seeds_numbers(engine_config: EngineConfig) -> None:
    s = engine_config.scoring
    assert s.priority_weights == SEED_PRIORITY
    assert s.complexity_multipliers == SEED_COMPLEXITY
    assert s.domain_modifiers == SEED_DOMAIN
    assert s.risk_modifiers == SEED_RISK
    assert {k: tuple(v) for k, v in s.token_estimates.items()} == SEED_TOKENS
    assert s.time_sensitivity_bonuses.model_dump() == {
        "immediate": 15,
        "urgent": 12,
        "week": 8,
        "month": 5,
        "flexible": 0,
    }
    assert s.time_sensitivity_hours.model_dump() == {
        "immediate": 4,
        "urgent": 24,
        "week": 168,
        "month": 720,
    }
    assert s.quota_strategy == "online"
    assert s.default_priority_weight == 20
    assert s.blocking_time_bonus == 12
    assert [b.min_value for b in s.value_bands] == [90, 75, 60, 40]
    assert s.complex_keywords == ["refactor", "migrate", "redesign", "architecture", "breaking"]


def test_shipped_subscriptions(engine_config: EngineConfig) -> None:
    (claude,) = engine_config.quotas.subscriptions
    assert claude.model_family == "claude"
    assert claude.token_limit_monthly == 5_000_000
    assert engine_config.quotas.api_budget.monthly_limit_usd > 0


def test_default_folder_is_the_repositorys_config() -> None:
    assert load_engine_config() == load_engine_config(Path(__file__).parents[2] / "config")


# --- editing YAML changes behaviour ------------------------------------------------


def test_priority_weight_in_yaml_changes_the_score(config_copy: Path) -> None:
    edit(config_copy / "scoring.yaml", "  P0: 40", "  P0: 50")
    config = load_engine_config(config_copy)
    breakdown = calculate_task_value(seed_task(), config.scoring, NOW)
    assert breakdown.value_score == pytest.approx((50 + 15) * 1.1 * 1.3)


def test_band_floor_in_yaml_changes_the_model(config_copy: Path) -> None:
    config = load_engine_config(config_copy)
    ledger = build_ledger()
    before = select_model(seed_task(), ledger, config.models, config.scoring, NOW)
    edit(config_copy / "scoring.yaml", "min_value: 75", "min_value: 80")
    config = load_engine_config(config_copy)
    after = select_model(seed_task(), ledger, config.models, config.scoring, NOW)
    assert (before.band, before.model) == ("high", "sonnet-4.5")
    assert (after.band, after.model) == ("medium-high", "deepseek-v3")


def test_time_hours_in_yaml_change_the_bonus(config_copy: Path) -> None:
    edit(config_copy / "scoring.yaml", "  immediate: 4\n", "  immediate: 1\n")
    config = load_engine_config(config_copy)
    assert calculate_task_value(seed_task(), config.scoring, NOW).time_bonus == 12


def test_complexity_threshold_in_yaml(config_copy: Path) -> None:
    # the seed task has 3 files and 150 LOC
    edit(
        config_copy / "scoring.yaml",
        "moderate: {files_at_least: 3, loc_above: 100}",
        "moderate: {files_at_least: 4, loc_above: 150}",
    )
    config = load_engine_config(config_copy)
    assert calculate_task_value(seed_task(), config.scoring, NOW).complexity == "simple"


def test_token_estimate_in_yaml(config_copy: Path) -> None:
    edit(config_copy / "scoring.yaml", "moderate: [27500, 3500]", "moderate: [1000, 100]")
    config = load_engine_config(config_copy)
    tokens = estimate_token_usage(seed_task(), config.scoring, "moderate", "backend")
    assert (tokens.input_tokens, tokens.output_tokens) == (1000, 100)


def test_model_price_in_yaml_changes_the_cost(config_copy: Path) -> None:
    edit(config_copy / "models.yaml", "cost_per_mtok_input: 0.28", "cost_per_mtok_input: 2.8")
    config = load_engine_config(config_copy)
    task = task_for("P0", "complex", 0, "frontend", "development")  # 60: deepseek
    decision = select_model(task, build_ledger(), config.models, config.scoring, NOW)
    assert decision.model == "deepseek-v3"
    assert decision.cost_usd == pytest.approx((70_000 * 2.8 + 10_000 * 0.42) / 1e6)


def test_subscription_limit_in_yaml(config_copy: Path) -> None:
    edit(
        config_copy / "subscriptions.yaml",
        "token_limit_monthly: 5000000",
        "token_limit_monthly: 30000",
    )
    config = load_engine_config(config_copy)
    ledger = config.quotas.ledger_at(NOW)
    plan = optimize_task_assignments([seed_task()], ledger, config.models, config.scoring, NOW)
    assert plan.decisions[0].model == "gpt-4-turbo"  # 31,000 tokens do not fit 30,000


def test_domain_labels_in_yaml(config_copy: Path) -> None:
    edit(
        config_copy / "scoring.yaml", "frontend: [frontend, ui,", "frontend: [frontend, ui, widget,"
    )
    config = load_engine_config(config_copy)
    task = build_task(labels=["widget"])
    assert calculate_task_value(task, config.scoring, NOW).domain == "frontend"


# --- invalid files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "old", "new", "key", "problem"),
    [
        ("scoring.yaml", "quota_strategy:", "quota_stratgy:", "quota_stratgy", "Extra inputs"),
        ("scoring.yaml", "  P0: 40", "  P0: forty", "priority_weights.P0", "valid number"),
        (
            "scoring.yaml",
            "  P0: 40",
            "  P0: -40",
            "priority_weights.P0",
            "greater than or equal to 0",
        ),
        (
            "scoring.yaml",
            "  sandbox: 0.7",
            "  sandbox: -0.7",
            "risk_modifiers.sandbox",
            "greater than or equal to 0",
        ),
        (
            "scoring.yaml",
            "immediate: 15",
            "immediate: -15",
            "time_sensitivity_bonuses.immediate",
            "greater than or equal to 0",
        ),
        (
            "scoring.yaml",
            "  P4: 5",
            "  P5: 5",
            "priority_weights.P5.[key]",
            "Input should be 'P0', 'P1', 'P2', 'P3' or 'P4'",
        ),
        (
            "scoring.yaml",
            "quota_strategy: online",
            "quota_strategy: cheapest",
            "quota_strategy",
            "Input should be",
        ),
        (
            "scoring.yaml",
            "    labels: [staging, integration]",
            "    labels: staging",
            "risk_indicators.staging.labels",
            "valid list",
        ),
        (
            "scoring.yaml",
            "preferred: [opus-4.6, gpt-4, sonnet-4.5]",
            "preferred: [opus-4.6, gpt-5, sonnet-4.5]",
            "value_bands.0.preferred.1",
            "'gpt-5' is not in the catalog",
        ),
        (
            "scoring.yaml",
            "preferred_without_quota: [gpt-4-turbo,",
            "preferred_without_quota: [gpt-4o,",
            "value_bands.1.preferred_without_quota.0",
            "'gpt-4o' is not in the catalog",
        ),
        (
            "scoring.yaml",
            "  preferred: [glm-4.7, qwen2.5-coder]\n",
            "  preferred: [glm-5]\n",
            "low_value_band.preferred.0",
            "'glm-5' is not in the catalog",
        ),
        ("scoring.yaml", "min_value: 75", "min_value: 95", "value_bands", "strictly descend"),
        ("scoring.yaml", "  month: 720", "  month: 100", "time_sensitivity_hours", "ascend"),
        (
            "scoring.yaml",
            "simple: [7500, 1250]",
            "simple: [-7500, 1250]",
            "token_estimates.simple.0",
            "greater than or equal to 0",
        ),
        (
            "scoring.yaml",
            "simple: [7500, 1250]",
            "simple: [7500, 1" + "0" * 320 + "]",
            "token_estimates.simple.1",
            "less than or equal to 1000000000",
        ),
        (
            "scoring.yaml",
            "complex_keywords: [refactor, migrate, redesign, architecture, breaking]",
            "complex_keywords: [" + ", ".join(f"kw{i}" for i in range(65)) + "]",
            "complex_keywords",
            "at most 64 items",
        ),
        (
            "scoring.yaml",
            "complex_keywords: [refactor,",
            "complex_keywords: [" + "r" * 65 + ",",
            "complex_keywords.0",
            "at most 64 characters",
        ),
        (
            "scoring.yaml",
            "  immediate: 15",
            "  immediate: .inf",
            "time_sensitivity_bonuses.immediate",
            "finite number",
        ),
        (
            "scoring.yaml",
            "  immediate: 15",
            "  immediate: .nan",
            "time_sensitivity_bonuses.immediate",
            "finite number",
        ),
        (
            "scoring.yaml",
            "files_at_least: 10,",
            "files_at_least: 2.5,",
            "complexity_rules.highly_complex.files_at_least",
            "valid integer",
        ),
        (
            "models.yaml",
            "cost_per_mtok_input: 5.0",
            "cost_per_mtok_input: -5.0",
            "models.0.cost_per_mtok_input",
            "greater than or equal to 0",
        ),
        (
            "models.yaml",
            "    tier: premium\n    cost_per_mtok_input: 5.0",
            "    tier: ultra\n    cost_per_mtok_input: 5.0",
            "models.0.tier",
            "Input should be",
        ),
        (
            "models.yaml",
            "    family: zhipu\n",
            "    family: zhipu\n    vendor: z.ai\n",
            "models.6.vendor",
            "Extra inputs",
        ),
        ("models.yaml", "  - name: glm-4.7", "  - name: deepseek-v3", "models", "must be unique"),
        (
            "subscriptions.yaml",
            "monthly_limit_usd: 100.0",
            "monthly_limit_usd: lots",
            "api_budget.monthly_limit_usd",
            "valid number",
        ),
        (
            "subscriptions.yaml",
            "tokens_used_month: 0",
            "tokens_used_month: -1",
            "subscriptions.0.tokens_used_month",
            "greater than or equal to 0",
        ),
    ],
)
def test_invalid_setting_names_file_key_and_problem(
    config_copy: Path, file: str, old: str, new: str, key: str, problem: str
) -> None:
    edit(config_copy / file, old, new)
    message = load_error(config_copy)
    assert message.startswith(f"{config_copy / file}: ")
    assert f": {key}: " in message
    assert problem in message


def test_missing_required_key(config_copy: Path) -> None:
    path = config_copy / "subscriptions.yaml"
    text = path.read_text()
    path.write_text(text[: text.index("api_budget:")])
    message = load_error(config_copy)
    assert message == f"{path}: api_budget: Field required"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("priority_weights: [unclosed\n", "not valid YAML"),
        ("a: b: c\n", "not valid YAML"),
        ("\tpriority_weights: 1\n", "not valid YAML"),
        ("- just\n- a list\n", "(top level): expected a mapping of settings"),
        ("", "(top level): expected a mapping of settings"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
        ("score_max: 2026-13-01\n", "score_max: Input should be a valid number"),
        ("score_max: !!timestamp 2026-13-01\n", "not valid YAML (month must be in 1..12)"),
    ],
)
def test_non_yaml_or_non_mapping(config_copy: Path, content: str, problem: str) -> None:
    path = config_copy / "scoring.yaml"
    path.write_text(content)
    message = load_error(config_copy)
    assert message.startswith(f"{path}: ")
    assert problem in message


def test_yaml_error_names_the_line(config_copy: Path) -> None:
    path = config_copy / "scoring.yaml"
    path.write_text("priority_weights:\n  P0: 40\n  P1: [30\n")
    assert re.search(r"scoring\.yaml: line \d+: not valid YAML", load_error(config_copy))


def test_not_utf8(config_copy: Path) -> None:
    (config_copy / "models.yaml").write_bytes(b"models: \xff\xfe\n")
    assert load_error(config_copy) == f"{config_copy / 'models.yaml'}: not UTF-8 text"


def test_missing_file(config_copy: Path) -> None:
    (config_copy / "models.yaml").unlink()
    message = load_error(config_copy)
    assert message.startswith(f"{config_copy / 'models.yaml'}: cannot read")


@pytest.mark.parametrize(
    ("find", "replace", "key"),
    [
        ("quota_family: claude", "quota_family: cluade", "value_bands.1.quota_family"),
        ("prefer_family: claude", "prefer_family: anthropic", "domain_overrides.0.prefer_family"),
    ],
)
def test_a_family_no_model_has_is_refused(
    config_copy: Path, find: str, replace: str, key: str
) -> None:
    path = config_copy / "scoring.yaml"
    text = path.read_text()
    assert find in text
    path.write_text(text.replace(find, replace, 1))
    message = load_error(config_copy)
    assert message.startswith(f"{path}: {key}: no model of family ")
    assert "families: claude, " in message


def test_config_folder_that_is_a_file_or_missing(config_copy: Path) -> None:
    """MODEL_ASSIGNER_CONFIG set to a file (models.yaml, say) or a wrong path
    is named as such, not as "models.yaml/scoring.yaml: Not a directory"."""
    a_file = config_copy / "models.yaml"
    assert load_error(a_file) == (
        f"{a_file}: is a file, not a folder (the config folder holds scoring.yaml, "
        "models.yaml and subscriptions.yaml)"
    )
    assert load_error(config_copy / "nowhere").startswith(
        f"{config_copy / 'nowhere'}: no such folder"
    )


def test_several_problems_in_one_line(config_copy: Path) -> None:
    edit(config_copy / "scoring.yaml", "  P0: 40", "  P0: -40")
    edit(config_copy / "scoring.yaml", "  P1: 30", "  P1: x")
    message = load_error(config_copy)
    assert "priority_weights.P0:" in message and "priority_weights.P1:" in message


# --- repository overrides ------------------------------------------------------------


def test_deep_merge_merges_mappings_and_replaces_lists() -> None:
    base = {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 3}
    assert deep_merge(base, {"a": {"y": 9}, "b": [7]}) == {"a": {"x": 1, "y": 9}, "b": [7], "c": 3}
    assert base == {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 3}


def test_override_scoring(engine_config: EngineConfig) -> None:
    scoring = override_scoring(
        engine_config.scoring, {"priority_weights": {"P0": 45}}, engine_config.catalog, "repo.yml"
    )
    assert scoring.priority_weights["P0"] == 45
    assert scoring.priority_weights["P1"] == 30
    with pytest.raises(ConfigError, match=r"^repo\.yml: priority_weights\.P0: .*greater"):
        override_scoring(
            engine_config.scoring,
            {"priority_weights": {"P0": -1}},
            engine_config.catalog,
            "repo.yml",
        )
    with pytest.raises(ConfigError, match=r"^repo\.yml: low_value_band\.preferred\.0: .*gpt-9"):
        override_scoring(
            engine_config.scoring,
            {"low_value_band": {"preferred": ["gpt-9"]}},
            engine_config.catalog,
            "repo.yml",
        )
