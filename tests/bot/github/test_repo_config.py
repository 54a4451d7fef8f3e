"""Label settings and the per-repository `.github/model-assigner.yml`
(bot/github/repo_config.py). The repository file is hostile input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from model_assigner.bot.github.repo_config import (
    PROBLEM_MAX_CHARS,
    REPO_CONFIG_MAX_BYTES,
    REPO_CONFIG_PATH,
    EffectiveConfig,
    LabelsConfig,
    effective_config,
    load_labels_config,
    parse_untrusted_yaml,
)
from model_assigner.core.assessment import assess
from model_assigner.core.config import EngineConfig
from model_assigner.core.loader import ConfigError
from tests.helpers import CONFIG_DIR, NOW, build_task


def effective(text: str | None, engine: EngineConfig, labels: LabelsConfig) -> EffectiveConfig:
    return effective_config(text, engine.scoring, labels, engine.catalog)


def assert_defaults_with_problem(
    result: EffectiveConfig, engine: EngineConfig, labels: LabelsConfig, *expected: str
) -> str:
    assert result.problem is not None
    assert result.problem.startswith(f"{REPO_CONFIG_PATH}: "), result.problem
    for part in expected:
        assert part in result.problem, (part, result.problem)
    assert "\n" not in result.problem
    assert result.scoring == engine.scoring
    assert result.labels == labels
    return result.problem


# --- labels.yaml ----------------------------------------------------------------------


def test_labels_yaml_defaults_load() -> None:
    labels = load_labels_config(CONFIG_DIR)
    assert labels.priority_aliases == {
        "priority: critical": "P0",
        "priority: high": "P1",
        "priority: medium": "P2",
        "priority: low": "P3",
        "priority: lowest": "P4",
    }
    assert labels.model_label_prefix == "model:"
    assert labels.deferred_label == "model:deferred"
    assert (labels.model_label_color, labels.deferred_label_color) == ("6f42c1", "d4c5f9")
    assert labels.model_label("sonnet-4.5") == "model:sonnet-4.5"
    assert labels.model_from_label("Model:opus-4.6") == "opus-4.6"
    assert labels.model_from_label("model:deferred") is None
    assert labels.model_from_label("model:") is None
    assert labels.model_from_label("bug") is None


def test_missing_labels_yaml_means_built_in_defaults(tmp_path: Path) -> None:
    assert load_labels_config(tmp_path) == LabelsConfig()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("model_label_prefx: 'ai:'\n", "model_label_prefx"),
        ("priority_aliases: {urgent: P7}\n", "priority_aliases.urgent"),
        ("model_label_color: purple\n", "model_label_color"),
    ],
)
def test_invalid_labels_yaml_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "labels.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_labels_config(tmp_path)
    assert str(tmp_path / "labels.yaml") in str(caught.value)
    assert key in str(caught.value)


# --- the repository's file: accepted overrides -------------------------------------


@pytest.mark.parametrize("text", [None, "", "   \n", "# nothing here\n", "---\n", "~\n"])
def test_no_file_or_empty_file_means_defaults(
    engine_config: EngineConfig, labels_config: LabelsConfig, text: str | None
) -> None:
    result = effective(text, engine_config, labels_config)
    assert result.problem is None
    assert result.scoring == engine_config.scoring
    assert result.labels == labels_config


def test_priority_weights_override_changes_the_score(
    engine_config: EngineConfig, labels_config: LabelsConfig
) -> None:
    result = effective("scoring:\n  priority_weights:\n    P3: 35\n", engine_config, labels_config)
    assert result.problem is None
    weights = result.scoring.priority_weights
    assert weights["P3"] == 35
    assert weights["P0"] == engine_config.scoring.priority_weights["P0"]  # merged, not replaced
    task = build_task(priority="P3", estimated_files=3)
    before = assess(task, engine_config.scoring, NOW)
    after = assess(task, result.scoring, NOW)
    assert before.breakdown.priority_weight == 10
    assert after.breakdown.priority_weight == 35
    assert after.value > before.value
    # A P2 task is untouched by a P3 override.
    p2 = build_task(priority="P2", estimated_files=3)
    assert assess(p2, result.scoring, NOW).value == assess(p2, engine_config.scoring, NOW).value


def test_thresholds_and_strategy_override(
    engine_config: EngineConfig, labels_config: LabelsConfig
) -> None:
    text = (
        "scoring:\n"
        "  quota_strategy: minimize_cost\n"
        "  time_sensitivity_bonuses: {urgent: 14}\n"
        "  complex_keywords: [rewrite]\n"
    )
    result = effective(text, engine_config, labels_config)
    assert result.problem is None
    # How the shared quota is spent is the operator's (issue 12): refused, and said.
    assert result.scoring.quota_strategy == engine_config.scoring.quota_strategy
    assert result.refused is not None and "scoring.quota_strategy" in result.refused
    assert result.scoring.time_sensitivity_bonuses.urgent == 14
    assert result.scoring.time_sensitivity_bonuses.immediate == 15  # merged
    assert result.scoring.complex_keywords == ["rewrite"]  # lists are replaced whole


def test_labels_override_merges_aliases(
    engine_config: EngineConfig, labels_config: LabelsConfig
) -> None:
    text = "labels:\n  priority_aliases:\n    Urgent: P0\n  model_label_prefix: 'ai/'\n"
    result = effective(text, engine_config, labels_config)
    assert result.problem is None
    assert result.labels.priority_aliases["urgent"] == "P0"
    assert result.labels.priority_aliases["priority: high"] == "P1"
    assert result.labels.model_label("glm-4.7") == "ai/glm-4.7"
    assert result.scoring == engine_config.scoring


# --- the repository's file: problems, and the defaults used -------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour: red\n", ["colour", "not permitted"]),
        (
            "scoring:\n  priority_weight: {P0: 50}\n",
            ["scoring", "priority_weight", "not permitted"],
        ),
        ("labels:\n  prefix: 'x'\n", ["labels", "prefix", "not permitted"]),
        ("scoring:\n  priority_weights: {P0: high}\n", ["priority_weights.P0", "valid number"]),
        ("scoring:\n  priority_weights: {P0: -1}\n", ["priority_weights.P0", "greater than"]),
        ("scoring:\n  priority_weights: {P9: 1}\n", ["priority_weights.P9"]),
        ("scoring: 5\n", ["scoring", "dictionary"]),
        ("labels: [a, b]\n", ["labels", "dictionary"]),
        ("labels:\n  model_label_color: purple\n", ["labels", "model_label_color", "pattern"]),
        ("labels:\n  priority_aliases: {urgent: P9}\n", ["priority_aliases.urgent"]),
        ("scoring:\n  time_sensitivity_hours: {immediate: 100}\n", ["time_sensitivity_hours"]),
        ("- just\n- a list\n", ["(top level)", "mapping"]),
        ("plain text\n", ["(top level)", "mapping"]),
        ("scoring: [\n", ["line ", "not valid YAML"]),
        ("scoring:\n\tpriority_weights: {}\n", ["line 2", "not valid YAML"]),
        # A date PyYAML cannot build: text, so pydantic names the key.
        ("scoring:\n  blocking_time_bonus: 2026-13-01\n", ["blocking_time_bonus", "valid number"]),
        ("scoring:\n  blocking_time_bonus: !!timestamp 2026-13-01\n", ["not valid YAML", "month"]),
    ],
)
def test_invalid_file_gives_a_problem_and_the_defaults(
    engine_config: EngineConfig, labels_config: LabelsConfig, text: str, expected: list[str]
) -> None:
    result = effective(text, engine_config, labels_config)
    assert_defaults_with_problem(result, engine_config, labels_config, *expected)


def test_a_bad_labels_section_also_drops_a_good_scoring_section(
    engine_config: EngineConfig, labels_config: LabelsConfig
) -> None:
    """One file, one verdict: half-applied settings would be harder to explain."""
    text = "scoring:\n  priority_weights: {P3: 35}\nlabels:\n  model_label_color: nope\n"
    result = effective(text, engine_config, labels_config)
    assert_defaults_with_problem(result, engine_config, labels_config, "model_label_color")


def test_problem_with_many_bad_keys_stays_short(
    engine_config: EngineConfig, labels_config: LabelsConfig
) -> None:
    """6,000 unknown keys fit in the size cap; the problem must not become a
    quarter-megabyte comment (GitHub refuses comments over 65,536 characters)."""
    text = "\n".join(f"k{i}: 1" for i in range(6000))
    assert len(text.encode()) < REPO_CONFIG_MAX_BYTES
    result = effective(text, engine_config, labels_config)
    problem = assert_defaults_with_problem(result, engine_config, labels_config, "k0: ")
    assert len(problem) <= PROBLEM_MAX_CHARS


def test_custom_source_name(engine_config: EngineConfig, labels_config: LabelsConfig) -> None:
    result = effective_config(
        "colour: red", engine_config.scoring, labels_config, engine_config.catalog, source="x.yml"
    )
    assert result.problem is not None and result.problem.startswith("x.yml: colour")


# --- hostile YAML ------------------------------------------------------------------------


def _exploits(marker: Path) -> list[str]:
    return [
        f'!!python/object/apply:os.system ["touch {marker}"]',
        f'scoring:\n  x: !!python/object/apply:os.system ["touch {marker}"]\n',
        f"!!python/object/new:subprocess.check_output [[touch, {marker}]]",
        f'labels: !!python/object/apply:subprocess.call [["touch", "{marker}"]]\n',
    ]


@pytest.mark.parametrize("index", range(4))
def test_unsafe_tags_are_refused_without_running(
    engine_config: EngineConfig, labels_config: LabelsConfig, tmp_path: Path, index: int
) -> None:
    marker = tmp_path / "pwned"
    text = _exploits(marker)[index]
    result = effective(text, engine_config, labels_config)
    assert_defaults_with_problem(result, engine_config, labels_config, "not valid YAML")
    assert not marker.exists()


def test_the_classic_payload_does_not_touch_tmp_pwned(
    engine_config: EngineConfig, labels_config: LabelsConfig
) -> None:
    marker = Path("/tmp/pwned")
    existed = marker.exists()
    text = '!!python/object/apply:os.system ["touch /tmp/pwned"]'
    result = effective(text, engine_config, labels_config)
    assert_defaults_with_problem(result, engine_config, labels_config, "line 1", "python/object")
    assert marker.exists() == existed


def test_the_exploit_is_real_on_an_unsafe_loader(tmp_path: Path) -> None:
    """Control: the same document does run code when loaded unsafely, so the
    test above would notice an unsafe loader."""
    marker = tmp_path / "pwned"
    yaml.unsafe_load(_exploits(marker)[0])
    assert marker.exists()


def test_python_name_tag_is_refused(
    engine_config: EngineConfig, labels_config: LabelsConfig
) -> None:
    result = effective("scoring: !!python/name:os.system\n", engine_config, labels_config)
    assert_defaults_with_problem(result, engine_config, labels_config, "not valid YAML")


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
scoring: {priority_weights: *i}
"""


def test_billion_laughs_is_refused_quickly(
    engine_config: EngineConfig, labels_config: LabelsConfig
) -> None:
    started = time.perf_counter()
    result = effective(BILLION_LAUGHS, engine_config, labels_config)
    assert time.perf_counter() - started < 1.0
    assert_defaults_with_problem(result, engine_config, labels_config, "line 2", "aliases")


@pytest.mark.parametrize(
    "text",
    [
        "base: &b {P0: 50}\nscoring:\n  priority_weights: *b\n",
        "base: &b {P0: 50}\nscoring:\n  priority_weights:\n    <<: *b\n",
    ],
)
def test_any_alias_is_refused(
    engine_config: EngineConfig, labels_config: LabelsConfig, text: str
) -> None:
    result = effective(text, engine_config, labels_config)
    assert_defaults_with_problem(result, engine_config, labels_config, "aliases")


def test_ten_megabytes_are_refused_by_size(
    engine_config: EngineConfig, labels_config: LabelsConfig
) -> None:
    text = "scoring:\n  complex_keywords:\n" + "    - refactor\n" * (10 * 1024 * 1024 // 15)
    assert len(text) > 10_000_000
    started = time.perf_counter()
    result = effective(text, engine_config, labels_config)
    assert time.perf_counter() - started < 0.5
    assert_defaults_with_problem(
        result, engine_config, labels_config, "larger than", f"{REPO_CONFIG_MAX_BYTES:,} bytes"
    )


def test_size_is_counted_in_bytes() -> None:
    at_limit = "#" + "x" * (REPO_CONFIG_MAX_BYTES - 1)
    assert parse_untrusted_yaml(at_limit, "f.yml") is None
    with pytest.raises(ConfigError, match="larger than"):
        parse_untrusted_yaml(at_limit + "x", "f.yml")
    wide = "# " + "é" * (REPO_CONFIG_MAX_BYTES // 2)  # fewer characters than the limit
    assert len(wide) < REPO_CONFIG_MAX_BYTES
    with pytest.raises(ConfigError, match="larger than"):
        parse_untrusted_yaml(wide, "f.yml")


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 30_000 + "]" * 30_000,
        "scoring: " + "{a: " * 5_000 + "1" + "}" * 5_000,
        "scoring:\n" + "".join(" " * n + f"k{n}:\n" for n in range(1, 200)),
    ],
    ids=["deep-flow-lists", "deep-flow-maps", "deep-block-maps"],
)
def test_deep_nesting_is_refused_not_a_crash(
    engine_config: EngineConfig, labels_config: LabelsConfig, text: str
) -> None:
    """PyYAML composes recursively: without a depth cap, 64 KiB of brackets
    raise RecursionError out of effective_config and fail every delivery."""
    assert len(text.encode()) <= REPO_CONFIG_MAX_BYTES
    started = time.perf_counter()
    result = effective(text, engine_config, labels_config)
    assert time.perf_counter() - started < 2.0
    assert_defaults_with_problem(result, engine_config, labels_config, "nested")


def test_reasonable_nesting_is_fine() -> None:
    text = "a: " + "[" * 20 + "1" + "]" * 20
    data = parse_untrusted_yaml(text, "f.yml")
    data = data["a"]
    for _ in range(20):
        data = data[0]
    assert data == 1


def test_parse_untrusted_yaml_reads_plain_yaml() -> None:
    assert parse_untrusted_yaml("scoring:\n  priority_weights: {P0: 45}\n", "f.yml") == {
        "scoring": {"priority_weights": {"P0": 45}}
    }
