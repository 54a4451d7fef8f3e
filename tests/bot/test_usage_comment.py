"""The usage part of the bot's comment, and the calibration in its token line."""

from __future__ import annotations

from model_assigner.bot.comment import render_comment
from model_assigner.bot.usage_comment import END, START, render_usage, with_usage
from model_assigner.core.calibration import Sample, learn, with_learned
from model_assigner.core.config import EngineConfig
from model_assigner.core.selection import select_model
from model_assigner.core.types import Payment
from model_assigner.core.usage import Charge, EstimateSnapshot, IssueUsage, Run, TokenUsage
from tests.helpers import NOW, build_ledger, seed_task


def record(*runs: tuple[str, int, str | None]) -> IssueUsage:
    estimate = EstimateSnapshot(
        model="sonnet-4.5",
        payment=Payment(kind="subscription", family="claude", tokens=31_000, cost_usd=0.0),
        charged_at=NOW, complexity="moderate", domain="backend", base_tokens=31_000,
    )
    made = {}
    for run_id, tokens, note in runs:
        charge = Charge(model="sonnet-4.5", payment=Payment(
            kind="subscription", family="claude", tokens=tokens, cost_usd=0.0),
            list_cost_usd=0.12, reported_cost_usd=0.2, note=note)
        made[run_id] = Run(reported_at=NOW, ended_at=NOW, source="workflow",
                           lines=[TokenUsage(input_tokens=tokens)], charges=[charge])
    return IssueUsage(estimate=estimate, runs=made)


def test_the_section_shows_estimated_vs_actual_and_notes() -> None:
    text = render_usage(record(("r1", 40_000, None), ("r2", 6_500, "ran on x, not the assigned")))
    assert text.startswith(START) and text.rstrip().endswith(END)
    assert "Estimated 31,000 tokens; used 46,500 (x1.50) in 2 runs" in text
    assert "(the agents reported $0.40)" in text
    assert "- ran on x, not the assigned" in text
    assert render_usage(None) == "" and render_usage(IssueUsage()) == ""


def test_the_section_is_replaced_not_added(engine_config: EngineConfig) -> None:
    decision = select_model(seed_task(), build_ledger(), engine_config.models,
                            engine_config.scoring, NOW)
    body = render_comment(decision, "model:sonnet-4.5")
    once = with_usage(body, record(("r1", 40_000, None)))
    assert once.count(START) == 1 and body.rstrip() in once
    twice = with_usage(once, record(("r1", 40_000, None), ("r2", 1_000, None)))
    assert twice.count(START) == 1 and "used 41,000" in twice and "used 40,000" not in twice
    assert with_usage(twice, record(("r1", 40_000, None), ("r2", 1_000, None))) == twice
    assert with_usage(twice, None).rstrip() == body.rstrip()


def test_the_comment_says_where_the_estimate_was_calibrated(
    engine_config: EngineConfig,
) -> None:
    table = learn([Sample("moderate", "backend", 31_000, 62_000)] * 37,
                  engine_config.scoring.calibration)
    scoring = with_learned(engine_config.scoring, table)
    decision = select_model(seed_task(), build_ledger(), engine_config.models, scoring, NOW)
    text = render_comment(decision, f"model:{decision.model}")
    factor = table["moderate/backend"].factor
    assert 1.8 < factor < 2.0  # the ratio 2, shrunk a little toward 1 with 37 samples
    assert (f"calibration: x{factor:.2f} from 37 finished backend issues (37 of them moderate)"
            in text)
