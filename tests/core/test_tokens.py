"""Phase 2: token estimates by complexity, domain and workspace size."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_assigner.core.config import ScoringConfig
from model_assigner.core.reasons import ReasonCode
from model_assigner.core.scoring import calculate_task_value
from model_assigner.core.tokens import estimate_token_usage, workspace_size
from model_assigner.core.types import Task, TokenEstimate
from tests.helpers import NOW, SEED_TOKENS, build_task, seed_task


def estimate(task: Task, scoring: ScoringConfig) -> TokenEstimate:
    """Through Phase 1, as the engine does: complexity and domain from the task."""
    breakdown = calculate_task_value(task, scoring, NOW)
    return estimate_token_usage(task, scoring, breakdown.complexity, breakdown.domain)


def test_seed_example_tokens(scoring: ScoringConfig) -> None:
    tokens = estimate(seed_task(), scoring)
    assert (tokens.input_tokens, tokens.output_tokens) == (27500, 3500)
    assert tokens.total == 31000


@pytest.mark.parametrize(
    ("files", "complexity"),
    [(1, "simple"), (3, "moderate"), (6, "complex"), (10, "highly_complex")],
)
def test_base_estimate_by_complexity(scoring: ScoringConfig, files: int, complexity: str) -> None:
    task = build_task(estimated_files=files, labels=["frontend"])
    tokens = estimate(task, scoring)
    assert (tokens.input_tokens, tokens.output_tokens) == SEED_TOKENS[complexity]
    assert tokens.adjustments[0].code == ReasonCode.TOKENS_BASE
    assert tokens.adjustments[0].values["complexity"] == complexity


@pytest.mark.parametrize("complexity", ["simple", "moderate", "complex", "highly_complex"])
@pytest.mark.parametrize(
    ("label", "input_factor", "output_factor"),
    [
        ("k8s", 1.2, 1.0),  # infrastructure: verbose YAML
        ("docs", 1.0, 1.3),  # documentation: more text
        ("qa", 1.0, 1.4),  # testing: test files add output
        ("api", 1.0, 1.0),  # backend
        ("ml", 1.0, 1.0),
        ("ui", 1.0, 1.0),  # frontend
    ],
)
def test_domain_factors(
    scoring: ScoringConfig, complexity: str, label: str, input_factor: float, output_factor: float
) -> None:
    files = {"simple": 1, "moderate": 3, "complex": 6, "highly_complex": 10}[complexity]
    task = build_task(estimated_files=files, labels=[label])
    base_in, base_out = SEED_TOKENS[complexity]
    tokens = estimate(task, scoring)
    assert tokens.input_tokens == round(base_in * input_factor)
    assert tokens.output_tokens == round(base_out * output_factor)


@pytest.mark.parametrize(
    ("workspace_files", "factor"),
    [(0, 1.0), (50, 1.0), (51, 1.15), (100, 1.15), (101, 1.3), (100_000, 1.3)],
)
def test_workspace_size_factor_from_field(
    scoring: ScoringConfig, workspace_files: int, factor: float
) -> None:
    task = build_task(estimated_files=3, workspace_files=workspace_files)  # moderate
    tokens = estimate(task, scoring)
    assert tokens.input_tokens == round(27500 * factor)
    assert tokens.output_tokens == 3500
    assert tokens.workspace_files == workspace_files


def test_workspace_factor_is_not_lost_to_float_noise(scoring: ScoringConfig) -> None:
    # 7500 * 1.15 is 8624.999999999999 in binary floating point; the seed's int()
    # would say 8624. We round the noise away first.
    task = build_task(estimated_files=1, workspace_files=60)
    assert estimate(task, scoring).input_tokens == 8625


def test_domain_and_workspace_factors_multiply(scoring: ScoringConfig) -> None:
    task = build_task(estimated_files=1, labels=["k8s"], workspace_files=101)
    tokens = estimate(task, scoring)
    assert tokens.input_tokens == round(7500 * 1.2 * 1.3)  # 11700
    assert tokens.output_tokens == 1250
    assert len(tokens.adjustments) == 3


def test_a_workspace_path_alone_is_only_a_name(
    scoring: ScoringConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine never reads a disk: a task that names a folder but gives
    no size counts as an empty workspace, even when the folder is there
    (the caller measures it: bot/local_workspace.py for the CLI)."""
    root = tmp_path / "octo" / "repo"
    for index in range(150):
        (root / f"d{index % 5}").mkdir(parents=True, exist_ok=True)
        (root / f"d{index % 5}" / f"f{index}.py").write_text("x")
    monkeypatch.chdir(tmp_path)
    for path in ("octo/repo", str(root)):
        task = build_task(estimated_files=3, workspace_path=path)
        assert workspace_size(task) == 0
        tokens = estimate(task, scoring)
        assert (tokens.workspace_files, tokens.input_tokens) == (0, 27500)


def test_token_numbers_come_from_config(scoring: ScoringConfig) -> None:
    config = scoring.model_copy(
        update={"token_estimates": dict(scoring.token_estimates) | {"moderate": (1000, 200)}}
    )
    task = build_task(estimated_files=3)
    breakdown = calculate_task_value(task, config, NOW)
    tokens = estimate_token_usage(task, config, breakdown.complexity, breakdown.domain)
    assert (tokens.input_tokens, tokens.output_tokens) == (1000, 200)
