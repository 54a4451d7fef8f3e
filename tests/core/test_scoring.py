"""Phase 1: the value score and each of its terms, at every boundary."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from model_assigner.core.config import ScoringConfig
from model_assigner.core.reasons import ReasonCode, reason
from model_assigner.core.scoring import (
    assess_risk,
    calculate_task_value,
    clamp,
    classify_domain,
    depended_on_ids,
    estimate_complexity,
    estimate_files_from_description,
    estimate_loc_from_description,
    is_blocking_tasks,
    time_sensitivity,
)
from tests.helpers import (
    NOW,
    SEED_COMPLEXITY,
    SEED_DOMAIN,
    SEED_PRIORITY,
    SEED_RISK,
    TaskFactory,
    build_task,
    seed_formula,
    seed_task,
    task_for,
)

# --- the seed's example -------------------------------------------------------


def test_seed_example_scores_78_65(scoring: ScoringConfig) -> None:
    breakdown = calculate_task_value(seed_task(), scoring, NOW)

    assert breakdown.priority_weight == 40
    assert breakdown.complexity == "moderate"
    assert breakdown.complexity_multiplier == 1.0
    assert breakdown.time_bonus == 15
    assert breakdown.domain == "backend"
    assert breakdown.domain_modifier == 1.1
    assert breakdown.risk == "production"
    assert breakdown.risk_modifier == 1.3
    assert breakdown.value_score == pytest.approx(78.65, abs=1e-9)
    assert breakdown.value_score == pytest.approx((40 * 1.0 + 15) * 1.1 * 1.3)
    assert f"{breakdown.value_score:.1f}" == "78.7"


# --- 1. priority --------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "weight"),
    [("P0", 40), ("P1", 30), ("P2", 20), ("P3", 10), ("P4", 5), (None, 20)],
)
def test_priority_weight(scoring: ScoringConfig, priority: str | None, weight: float) -> None:
    # simple (x0.5), no deadline, frontend (x1.0), development (x1.0)
    breakdown = calculate_task_value(build_task(priority=priority), scoring, NOW)
    assert breakdown.priority_weight == weight
    assert breakdown.value_score == weight * 0.5


def test_priority_missing_from_config_uses_default_weight(scoring: ScoringConfig) -> None:
    config = scoring.model_copy(
        update={"priority_weights": {"P0": 40}, "default_priority_weight": 17}
    )
    assert calculate_task_value(build_task(priority="P3"), config, NOW).priority_weight == 17
    assert calculate_task_value(build_task(priority="P0"), config, NOW).priority_weight == 40


# --- 2. complexity ------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "loc", "expected"),
    [
        (1, 1, "simple"),
        (2, 1, "simple"),
        (3, 1, "moderate"),
        (5, 1, "moderate"),
        (6, 1, "complex"),
        (9, 1, "complex"),
        (10, 1, "highly_complex"),
        (1, 100, "simple"),
        (1, 101, "moderate"),
        (1, 500, "moderate"),
        (1, 501, "complex"),
        (1, 1500, "complex"),
        (1, 1501, "highly_complex"),
        # the stronger signal wins
        (3, 1501, "highly_complex"),
        (10, 1, "highly_complex"),
        (2, 501, "complex"),
    ],
)
def test_complexity_thresholds(scoring: ScoringConfig, files: int, loc: int, expected: str) -> None:
    task = build_task(estimated_files=files, estimated_loc=loc)
    level, _signal = estimate_complexity(task, scoring)
    assert level == expected
    assert (
        calculate_task_value(task, scoring, NOW).complexity_multiplier == SEED_COMPLEXITY[expected]
    )


@pytest.mark.parametrize("keyword", ["refactor", "migrate", "redesign", "architecture", "breaking"])
def test_complex_keyword_makes_highly_complex(scoring: ScoringConfig, keyword: str) -> None:
    task = build_task(description=f"Please {keyword.upper()} the thing", estimated_files=1)
    level, signal = estimate_complexity(task, scoring)
    assert level == "highly_complex"
    assert signal == reason(ReasonCode.COMPLEXITY_KEYWORD, keyword=keyword)


def test_no_complex_keyword_stays_simple(scoring: ScoringConfig) -> None:
    task = build_task(description="Fix a typo in the footer")
    assert estimate_complexity(task, scoring)[0] == "simple"


@pytest.mark.parametrize(
    ("description", "files", "loc", "expected"),
    [
        ("Touches 12 files", 0, 10, "highly_complex"),
        ("Change 10 python files", 0, 10, "highly_complex"),
        ("Update 9 files", 0, 10, "complex"),
        ("Update 6 files", 0, 10, "complex"),
        ("Update 5 files", 0, 10, "moderate"),
        ("Edit src/a.py, src/b.py and docs/c.md", 0, 10, "moderate"),
        ("Edit src/a.py and src/b.py", 0, 10, "simple"),
        ("About 600 lines of code", 1, 0, "complex"),
        ("Roughly 1,501 LOC", 1, 0, "highly_complex"),
        ("Roughly 1,500 LOC", 1, 0, "complex"),
        ("101 lines", 1, 0, "moderate"),
        ("100 lines", 1, 0, "simple"),
        ("Nothing said about size", 0, 0, "simple"),
        # a field that is set wins over the description
        ("Touches 12 files", 1, 10, "simple"),
        ("About 600 lines of code", 1, 10, "simple"),
    ],
)
def test_complexity_estimated_from_description_when_fields_are_zero(
    scoring: ScoringConfig, description: str, files: int, loc: int, expected: str
) -> None:
    task = build_task(description=description, estimated_files=files, estimated_loc=loc)
    assert estimate_complexity(task, scoring)[0] == expected


@pytest.mark.parametrize(
    ("description", "files"),
    [
        ("", 0),
        ("touches 3 files", 3),
        ("touches 1,200 files", 1200),
        ("see src/app/main.py and README.md", 2),
        ("see src/app/main.py twice: src/app/main.py", 1),
        ("version 2.5 of the api", 0),
        ("see https://example.com for details", 0),
    ],
)
def test_estimate_files_from_description(description: str, files: int) -> None:
    assert estimate_files_from_description(description) == files


@pytest.mark.parametrize(
    ("description", "loc"),
    [("", 0), ("about 250 lines", 250), ("2,000 LOC", 2000), ("one line", 0), ("1 line", 1)],
)
def test_estimate_loc_from_description(description: str, loc: int) -> None:
    assert estimate_loc_from_description(description) == loc


def test_dependency_count_does_not_change_complexity(scoring: ScoringConfig) -> None:
    # The seed computes len(dependencies) and never uses it.
    task = build_task(dependencies=[f"d{i}" for i in range(20)])
    assert estimate_complexity(task, scoring)[0] == "simple"


# --- 3. time sensitivity ------------------------------------------------------

SECOND = 1 / 3600


@pytest.mark.parametrize(
    ("hours", "bonus"),
    [
        (-1000, 15),  # long past: still immediate
        (-1, 15),
        (0, 15),
        (4, 15),
        (4 + SECOND, 12),
        (24, 12),
        (24 + SECOND, 8),
        (168, 8),
        (168 + SECOND, 5),
        (720, 5),
        (720 + SECOND, 0),
        (10_000, 0),
        (None, 0),
    ],
)
def test_time_bonus_boundaries(scoring: ScoringConfig, hours: float | None, bonus: float) -> None:
    task = build_task(deadline_in=hours)
    time_bonus, _reason = time_sensitivity(task, scoring, NOW, blocking=False)
    assert time_bonus == bonus
    assert calculate_task_value(task, scoring, NOW).time_bonus == bonus


def test_time_bonus_uses_the_given_clock_not_the_wall_clock(scoring: ScoringConfig) -> None:
    task = build_task(deadline_in=3)
    assert time_sensitivity(task, scoring, NOW, blocking=False)[0] == 15
    assert time_sensitivity(task, scoring, NOW - timedelta(days=2), blocking=False)[0] == 8


@pytest.mark.parametrize(
    ("hours", "blocking", "bonus"),
    [
        (None, False, 0),
        (None, True, 12),
        (2, True, 15),  # immediate beats the blocking bonus
        (12, True, 12),
        (100, True, 12),  # this week (8) raised to 12
        (500, True, 12),
        (5000, True, 12),
    ],
)
def test_blocking_raises_time_bonus_to_12(
    scoring: ScoringConfig, hours: float | None, blocking: bool, bonus: float
) -> None:
    task = build_task(deadline_in=hours)
    time_bonus, why = time_sensitivity(task, scoring, NOW, blocking=blocking)
    assert time_bonus == bonus
    if blocking and bonus == 12 and hours is None:
        assert why == reason(ReasonCode.BLOCKS_OTHERS, because=reason(ReasonCode.NO_DEADLINE))


def test_task_blocks_field_makes_it_blocking(scoring: ScoringConfig) -> None:
    task = build_task(blocks=["t-2"])
    assert is_blocking_tasks(task)
    assert calculate_task_value(task, scoring, NOW).time_bonus == 12


def test_task_depended_on_by_another_is_blocking(scoring: ScoringConfig) -> None:
    task = build_task(id="base")
    other = build_task(id="child", dependencies=["base"])
    depended_on = depended_on_ids([task, other])
    assert depended_on == {"base"}
    assert is_blocking_tasks(task, depended_on)
    assert not is_blocking_tasks(other, depended_on)
    assert calculate_task_value(task, scoring, NOW, depended_on).time_bonus == 12
    assert calculate_task_value(task, scoring, NOW).time_bonus == 0


def test_self_dependency_does_not_block() -> None:
    task = build_task(id="loop", dependencies=["loop"])
    assert not is_blocking_tasks(task, depended_on_ids([task]))


# --- 4. domain ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "path", "domain"),
    [
        (["kubernetes"], "", "infrastructure"),
        (["k8s"], "", "infrastructure"),
        (["infra"], "", "infrastructure"),
        (["devops"], "", "infrastructure"),
        (["deployment"], "", "infrastructure"),
        (["ci/cd"], "", "infrastructure"),
        (["api"], "", "backend"),
        (["backend"], "", "backend"),
        (["database"], "", "backend"),
        (["server"], "", "backend"),
        (["auth"], "", "backend"),
        (["ml"], "", "ml"),
        (["machine-learning"], "", "ml"),
        (["data"], "", "ml"),
        (["model"], "", "ml"),
        (["training"], "", "ml"),
        (["frontend"], "", "frontend"),
        (["ui"], "", "frontend"),
        (["react"], "", "frontend"),
        (["vue"], "", "frontend"),
        (["css"], "", "frontend"),
        (["html"], "", "frontend"),
        (["test"], "", "testing"),
        (["testing"], "", "testing"),
        (["qa"], "", "testing"),
        (["e2e"], "", "testing"),
        (["unit-test"], "", "testing"),
        (["docs"], "", "documentation"),
        (["documentation"], "", "documentation"),
        (["readme"], "", "documentation"),
        (["guide"], "", "documentation"),
        # case-insensitive labels
        (["K8S"], "", "infrastructure"),
        (["Frontend"], "", "frontend"),
        # the seed's order decides, not the order of the labels
        (["docs", "k8s"], "", "infrastructure"),
        (["ui", "database"], "", "backend"),
        (["test", "data"], "", "ml"),
        (["guide", "css"], "", "frontend"),
        (["documentation", "qa"], "", "testing"),
        # labels beat the workspace path
        (["docs"], "/srv/infra/cluster", "documentation"),
        # workspace path words
        ([], "/srv/infra/cluster", "infrastructure"),
        ([], "/home/coder/k8s-manifests", "infrastructure"),
        ([], "/home/coder/api-server", "backend"),
        ([], "/srv/server", "backend"),
        ([], "/web/frontend/app", "frontend"),
        ([], "/web/ui", "frontend"),
        (["unrelated"], "/web/ui", "frontend"),
        # path hints in the seed's order: infra before api before frontend
        ([], "/srv/ui/api/infra", "infrastructure"),
        ([], "/srv/ui/api", "backend"),
        # default
        ([], "", "backend"),
        (["bug"], "/home/coder/project", "backend"),
    ],
)
def test_classify_domain(scoring: ScoringConfig, labels: list[str], path: str, domain: str) -> None:
    task = build_task(labels=labels, workspace_path=path)
    assert classify_domain(task, scoring)[0] == domain
    assert calculate_task_value(task, scoring, NOW).domain_modifier == SEED_DOMAIN[domain]


def test_domain_reason_names_the_signal(scoring: ScoringConfig) -> None:
    assert classify_domain(build_task(labels=["k8s"]), scoring)[1] == reason(
        ReasonCode.SIGNAL_LABEL, label="k8s"
    )
    by_path = build_task(labels=[], workspace_path="/srv/api")
    assert classify_domain(by_path, scoring)[1] == reason(ReasonCode.SIGNAL_PATH_WORD, word="api")
    assert classify_domain(build_task(labels=[]), scoring)[1] == reason(ReasonCode.SIGNAL_DEFAULT)


def test_path_hints_match_whole_words(scoring: ScoringConfig) -> None:
    # The seed's substring test would read "build" as frontend ('ui') and
    # "capital" as backend ('api'); we match words (docs/design-decisions.md, decision 6).
    task = build_task(labels=[], workspace_path="/home/coder/build/capital")
    assert classify_domain(task, scoring) == ("backend", reason(ReasonCode.SIGNAL_DEFAULT))


# --- 5. risk ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "path", "description", "risk"),
    [
        (["production"], "", "", "production"),
        (["hotfix"], "", "", "production"),
        (["security"], "", "", "production"),
        (["Security"], "", "", "production"),
        ([], "/srv/prod/app", "", "production"),
        ([], "/repo/main", "", "production"),
        ([], "", "Deploy to Production tonight", "production"),
        ([], "", "This is a breaking change", "production"),
        ([], "", "Run the database migration", "production"),
        (["staging"], "", "", "staging"),
        (["integration"], "", "", "staging"),
        (["experimental"], "", "", "experimental"),
        (["prototype"], "", "", "experimental"),
        ([], "", "An experiment with caching", "experimental"),
        ([], "", "Prototype a parser", "experimental"),
        (["sandbox"], "", "", "sandbox"),
        (["learning"], "", "", "sandbox"),
        ([], "", "", "development"),
        (["bug"], "/home/coder/project", "Fix the footer", "development"),
        # levels in the seed's order
        (["sandbox", "staging"], "", "", "staging"),
        (["experimental"], "", "fixes production", "production"),
        (["staging"], "", "an experiment", "staging"),
        (["learning"], "", "a prototype", "experimental"),
        (["staging"], "/srv/prod", "", "production"),
    ],
)
def test_assess_risk(
    scoring: ScoringConfig, labels: list[str], path: str, description: str, risk: str
) -> None:
    task = build_task(labels=labels, workspace_path=path, description=description)
    assert assess_risk(task, scoring)[0] == risk
    assert calculate_task_value(task, scoring, NOW).risk_modifier == SEED_RISK[risk]


# --- the whole formula, clamp -------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "complexity", "bonus", "domain", "risk", "expected"),
    [
        ("P0", "complex", 15, "infrastructure", "development", 90.0),
        ("P1", "highly_complex", 15, "infrastructure", "development", 90.0),
        ("P0", "complex", 8, "infrastructure", "staging", 89.76),
        ("P0", "complex", 15, "frontend", "development", 75.0),
        ("P1", "highly_complex", 12, "documentation", "production", 74.88),
        ("P0", "complex", 0, "frontend", "development", 60.0),
        ("P1", "complex", 5, "infrastructure", "development", 60.0),
        ("P0", "highly_complex", 15, "testing", "sandbox", 59.85),
        ("P0", "moderate", 0, "frontend", "development", 40.0),
        ("P1", "complex", 5, "documentation", "development", 40.0),
        ("P1", "complex", 12, "frontend", "sandbox", 39.9),
        ("P4", "simple", 0, "documentation", "sandbox", 1.4),
        (None, "highly_complex", 0, "frontend", "development", 40.0),
    ],
)
def test_score_formula(
    scoring: ScoringConfig,
    priority: str | None,
    complexity: str,
    bonus: int,
    domain: str,
    risk: str,
    expected: float,
) -> None:
    task = task_for(priority, complexity, bonus, domain, risk)
    breakdown = calculate_task_value(task, scoring, NOW)
    assert breakdown.value_score == pytest.approx(
        seed_formula(priority, complexity, bonus, domain, risk)
    )
    assert breakdown.value_score == pytest.approx(expected, abs=1e-9)
    if expected in (90.0, 75.0, 60.0, 40.0):
        # exact at the band boundaries: float noise must not cross a band
        assert breakdown.value_score == expected


def test_score_is_clamped_at_100(scoring: ScoringConfig) -> None:
    task = task_for("P0", "highly_complex", 15, "infrastructure", "production")
    breakdown = calculate_task_value(task, scoring, NOW)
    assert breakdown.raw_score == pytest.approx((40 * 2.0 + 15) * 1.2 * 1.3)  # 148.2
    assert breakdown.value_score == 100


def test_clamp_range_comes_from_config(scoring: ScoringConfig) -> None:
    config = scoring.model_copy(update={"score_max": 50.0, "score_min": 5.0})
    high = calculate_task_value(
        task_for("P0", "complex", 15, "frontend", "development"), config, NOW
    )
    low = calculate_task_value(task_for("P4", "simple", 0, "documentation", "sandbox"), config, NOW)
    assert high.value_score == 50.0
    assert low.value_score == 5.0


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [(-1, 0, 100, 0), (0, 0, 100, 0), (55.5, 0, 100, 55.5), (100, 0, 100, 100), (101, 0, 100, 100)],
)
def test_clamp(value: float, low: float, high: float, expected: float) -> None:
    assert clamp(value, low, high) == expected


def test_breakdown_reasons_name_their_signals(scoring: ScoringConfig) -> None:
    breakdown = calculate_task_value(seed_task(), scoring, NOW)
    assert breakdown.complexity_signal == reason(
        ReasonCode.COMPLEXITY_FILES, files=3, source="estimated_files", at_least=3
    )
    assert breakdown.time_reason.code == ReasonCode.DEADLINE_WITHIN
    assert breakdown.time_reason.values["window"] == "immediate"
    assert breakdown.domain_reason == reason(ReasonCode.SIGNAL_LABEL, label="backend")
    assert breakdown.risk_reason.code == ReasonCode.SIGNAL_LABEL


def test_modifiers_from_config_are_used(scoring: ScoringConfig, make_task: TaskFactory) -> None:
    priorities: dict[str, Any] = dict(SEED_PRIORITY) | {"P2": 33}
    config = scoring.model_copy(
        update={
            "priority_weights": priorities,
            "domain_modifiers": dict(scoring.domain_modifiers) | {"frontend": 2.0},
        }
    )
    task = make_task(priority="P2", estimated_files=3)  # moderate, frontend
    assert calculate_task_value(task, config, NOW).value_score == pytest.approx(33 * 1.0 * 2.0)


def test_float_noise_does_not_cross_a_band(scoring: ScoringConfig) -> None:
    # (15 x 1 + 0) x 3.0 x 1.4 is 62.99999999999999 in binary floating point; a
    # band starting at 63 must still take it.
    assert (15 * 1.0 + 0) * 3.0 * 1.4 < 63
    config = scoring.model_copy(
        update={
            "priority_weights": dict(scoring.priority_weights) | {"P0": 15},
            "domain_modifiers": dict(scoring.domain_modifiers) | {"frontend": 3.0},
            "risk_modifiers": dict(scoring.risk_modifiers) | {"development": 1.4},
        }
    )
    task = build_task(priority="P0", estimated_files=3)  # moderate, frontend, development
    assert calculate_task_value(task, config, NOW).value_score == 63.0


def test_naive_clock_is_utc(scoring: ScoringConfig) -> None:
    # The seed's example builds its deadline from a naive datetime.now().
    naive_now = NOW.replace(tzinfo=None)
    task = build_task(deadline=naive_now + timedelta(hours=2))
    breakdown = calculate_task_value(task, scoring, naive_now)
    assert breakdown.time_bonus == 15
    assert breakdown == calculate_task_value(task, scoring, NOW)
