"""The bot's comment (bot/comment.py), rendered from real engine decisions."""

from __future__ import annotations

import re

import pytest

from model_assigner.bot.comment import MARKER, Override, digest, render_comment
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.github.repo_config import PROBLEM_MAX_CHARS, LabelsConfig, effective_config
from model_assigner.core.assessment import assess
from model_assigner.core.batch import optimize_task_assignments
from model_assigner.core.catalog import find_model
from model_assigner.core.config import EngineConfig, ScoringConfig
from model_assigner.core.quota import Ledger, payment_for
from model_assigner.core.reasons import ReasonCode, reason
from model_assigner.core.selection import make_decision, select_model
from model_assigner.core.types import Decision, Task
from tests.helpers import NOW, build_ledger, build_task, seed_task

GITHUB_COMMENT_MAX_CHARS = 65_536
SCORE = re.compile(r"\*\*Value score: (\d{1,3}\.\d)/100\*\*")


@pytest.fixture(scope="module")
def engine() -> EngineConfig:
    """The real config, loaded the way the bot loads it."""
    return load_engine_config()


def select(engine: EngineConfig, task: Task, ledger: Ledger) -> Decision:
    return select_model(task, ledger, engine.models, engine.scoring, NOW)


def medium_high_task() -> Task:
    """(30 x 1 + 12) x 1.1 x 1.3 = 60.06: the medium-high band."""
    return build_task(priority="P1", labels=["api", "hotfix"], estimated_files=3, deadline_in=12)


def override_decision(
    engine: EngineConfig, task: Task, model_name: str, ledger: Ledger
) -> Decision:
    """What the handler builds for a person's `model:<name>` label (its
    value band, and what model-assigner would have chosen)."""
    assessment = assess(task, engine.scoring, NOW)
    model = find_model(engine.models, model_name)
    instead = reason(ReasonCode.INSTEAD_DEFERRED,
                     because=reason(ReasonCode.LOW_VALUE, value=12.0, floor=40.0))
    if model is None:
        return make_decision(
            assessment, None, None, "low", "override",
            reason(ReasonCode.OVERRIDE_UNKNOWN_MODEL, model=model_name),
        ).model_copy(update={"instead": instead})
    t = assessment.tokens
    payment = payment_for(model, ledger, t.input_tokens, t.output_tokens)
    return make_decision(
        assessment, model, payment, "low", "override",
        reason(ReasonCode.OVERRIDE_SET, by="octocat"),
    ).model_copy(update={"instead": instead})


def lines(text: str) -> list[str]:
    return text.splitlines()


def common_checks(text: str, decision: Decision) -> None:
    assert text.startswith(MARKER + "\n")
    assert text.count(MARKER) == 1
    assert text.endswith("\n")
    scores = SCORE.findall(text)
    assert scores == [f"{decision.value_score:.1f}"]
    assert "| term | value | signal |" in text
    for term in ("priority weight", "complexity", "time bonus", "domain", "risk"):
        rows = [line for line in lines(text) if line.startswith(f"| {term} | ")]
        assert len(rows) == 1, term
        assert rows[0].count(" | ") == 2 and rows[0].endswith(" |")
    t = decision.tokens
    assert f"{t.input_tokens:,} in + {t.output_tokens:,} out = {t.total:,}" in text
    # the arithmetic is collapsed, and the token total is said once
    details = text.index("<details>")
    assert text.index("**Value score:") > details and text.index("| term |") > details
    assert text[:details].count(f"{t.total:,}") <= 1
    assert len(text) < GITHUB_COMMENT_MAX_CHARS


# --- an assignment ----------------------------------------------------------------------


def test_assigned_to_a_subscription_model(engine: EngineConfig) -> None:
    decision = select(engine, seed_task(), build_ledger())
    assert decision.model == "sonnet-4.5"
    text = render_comment(decision, "model:sonnet-4.5")
    common_checks(text, decision)
    assert "### Model: `sonnet-4.5`" in lines(text)
    # The seed's worked example: (40 x 1.0 + 15) x 1.1 x 1.3 = 78.65.
    assert "**Value score: 78.7/100** (high band)" in text
    assert "(40 x 1 + 15) x 1.1 x 1.3 = 78.65" in text
    assert "| priority weight | 40 | P0 |" in lines(text)
    rows = "\n".join(line for line in lines(text) if line.startswith("| "))
    assert "| complexity | x1 | moderate: " in rows
    assert "| time bonus | +15 | " in rows
    assert "| domain | x1.1 | backend: " in rows
    assert "| risk | x1.3 | production: " in rows
    assert "Estimated tokens: 27,500 in + 3,500 out = 31,000" in text
    # 27,500 x $3/M + 3,500 x $15/M = $0.135
    assert decision.cost_usd == pytest.approx(0.135)
    assert (
        "**sonnet-4.5** will work on this issue. It is paid from the claude subscription, "
        "whose flat fee covers it: no extra money ($0.14 at API list price; 4,969,000 tokens "
        "left this month)."
    ) in lines(text)
    assert "**Why this model:** Its value, 78.7, puts it in the high band" in text
    assert "passed over" not in text
    assert "deferred" not in text.split("<sub>")[0]


def test_assigned_to_the_api_with_passed_over_models(engine: EngineConfig) -> None:
    decision = select(engine, medium_high_task(), build_ledger(budget=0.0))
    assert decision.model == "sonnet-4.5"
    text = render_comment(decision, "model:sonnet-4.5")
    common_checks(text, decision)
    assert "**Value score: 60.1/100** (medium-high band)" in text
    assert "Models passed over:" in lines(text)
    passed = [line for line in lines(text) if line.startswith("- `")]
    assert [line.split("`")[1] for line in passed] == ["deepseek-v3", "qwen2.5-coder"]
    assert "no deepseek subscription" in passed[0] and "$0.00 budget left" in passed[0]
    assert "tier budget is not among the medium-high band's tiers" in passed[1]


def test_batch_decision_paid_by_the_api_budget(engine: EngineConfig) -> None:
    plan = optimize_task_assignments(
        [seed_task()],
        build_ledger(claude_used=4_990_000),
        engine.models,
        engine.scoring,
        NOW,
        "maximize_subscription_usage",
    )
    decision = plan.decisions[0]
    assert decision.model == "gpt-4-turbo" and decision.paid_by == "api"
    text = render_comment(decision, "model:gpt-4-turbo")
    common_checks(text, decision)
    # 27,500 x $10/M + 3,500 x $30/M = $0.38, of a $100 budget.
    assert ("It is paid from the API budget: about $0.38 at list price ($99.62 left this "
            "month).") in text


# --- a deferral ----------------------------------------------------------------------------


def test_deferred_for_low_value_says_why_and_what_would_change_it(engine: EngineConfig) -> None:
    # (20 x 1.5 + 0) x 1.1 = 33: a higher priority or a deadline would lift it.
    task = build_task(priority="P2", estimated_files=6, labels=["api"])
    decision = select(engine, task, build_ledger())
    assert decision.deferred
    text = render_comment(decision, "model:deferred")
    common_checks(text, decision)
    assert "### Model: deferred" in lines(text)
    assert "**Value score: 33.0/100** (low band)" in text
    why = next(line for line in lines(text) if line.startswith("**Not assigned for now.**"))
    assert "33.0" in why and "below 40" in why
    change = next(line for line in lines(text) if line.startswith("**What would change it:**"))
    assert "higher priority" in change and "due date" in change
    assert "costs" not in text and "paid from" not in text


def test_deferred_beyond_any_label_says_so(engine: EngineConfig) -> None:
    """P4 with nothing to it: even P0 due now scores (40 x 0.5 + 15) = 35."""
    decision = select(engine, build_task(priority="P4"), build_ledger())
    text = render_comment(decision, "model:deferred")
    change = next(line for line in lines(text) if line.startswith("**What would change it:**"))
    assert "No label or deadline lifts it to 40" in change and "35.0" in change


def test_deferred_for_lack_of_quota_names_the_resets(engine: EngineConfig) -> None:
    decision = select(engine, seed_task(), build_ledger(claude_used=5_000_000, budget=0.0))
    assert decision.deferred
    text = render_comment(decision, "model:deferred")
    common_checks(text, decision)
    why = next(line for line in lines(text) if line.startswith("**Not assigned for now.**"))
    assert "claude quota 0 tokens left" in why
    change = next(line for line in lines(text) if line.startswith("**What would change it:**"))
    assert "More subscription quota" in change and "2026-03-01" in change
    passed = [line.split("`")[1] for line in lines(text) if line.startswith("- `")]
    assert passed == ["gpt-4-turbo", "sonnet-4.5", "deepseek-v3"]


# --- a person's override -------------------------------------------------------------------


def test_override_by_a_person_is_credited_and_explained(engine: EngineConfig) -> None:
    task = build_task(priority="P4")
    decision = override_decision(engine, task, "opus-4.6", build_ledger())
    assert decision.model == "opus-4.6" and decision.paid_by == "subscription:claude"
    override = Override(model="opus-4.6", by="octocat", known=True)
    text = render_comment(decision, "model:opus-4.6", override)
    common_checks(text, decision)
    assert "### Model: `opus-4.6` (set by octocat with a label)" in lines(text)
    assert "@" not in text  # a label is not worth a notification
    assert "The `model:opus-4.6` label was set by hand, so model-assigner keeps it." in text
    assert "paid from the claude subscription, whose flat fee covers it" in text
    assert "4,991,250 tokens left this month" in text
    assert ("model-assigner would have deferred it: value 12.0 is below 40: low-value work "
            "is deferred rather than spending tokens on it.") in lines(text)
    assert ("While the label stays, model-assigner does not choose for this issue; remove it "
            "to hand the choice back.") in lines(text)
    assert "the choice follows" not in text
    # The value's own band, not an "override band"
    assert "**Value score: 2.5/100** (low band)" in text
    assert "override band" not in text


def test_override_with_an_unknown_model(engine: EngineConfig) -> None:
    decision = override_decision(engine, build_task(), "gpt-9", build_ledger())
    override = Override(model="gpt-9", by=None, known=False)
    text = render_comment(decision, "model:gpt-9", override)
    common_checks(text, decision)
    assert "### Model: `gpt-9` (set by a label)" in lines(text)
    assert "`gpt-9` is not in the model catalog, so no quota is reserved for it." in text
    assert "paid from" not in text


# --- determinism -----------------------------------------------------------------------------


def test_same_decision_same_text(engine: EngineConfig) -> None:
    first = render_comment(select(engine, medium_high_task(), build_ledger(budget=0.0)), "l")
    # Recomputed from scratch: a re-assignment to the same answer.
    again = render_comment(select(engine, medium_high_task(), build_ledger(budget=0.0)), "l")
    assert first == again
    assert digest(first) == digest(again)
    assert re.fullmatch(r"[0-9a-f]{32}", digest(first))


def test_a_different_decision_changes_the_digest(engine: EngineConfig) -> None:
    base = render_comment(select(engine, seed_task(), build_ledger()), "model:sonnet-4.5")
    used = render_comment(
        select(engine, seed_task(), build_ledger(claude_used=1_000)), "model:sonnet-4.5"
    )
    assert base != used  # the quota left differs
    assert digest(base) != digest(used)
    overridden = render_comment(
        select(engine, seed_task(), build_ledger()),
        "model:sonnet-4.5",
        Override(model="sonnet-4.5", by="octocat", known=True),
    )
    assert digest(overridden) != digest(base)


# --- config problems and escaping ---------------------------------------------------------


def test_config_problem_is_shown_once(engine: EngineConfig, labels_config: LabelsConfig) -> None:
    settings = effective_config(
        "scoring:\n  priority_weight: {P0: 50}\n", engine.scoring, labels_config, engine.catalog
    )
    assert settings.problem is not None
    decision = select(engine, seed_task(), build_ledger())
    text = render_comment(decision, "model:sonnet-4.5", config_problem=settings.problem)
    common_checks(text, decision)
    warning = [line for line in lines(text) if line.startswith(">")]
    assert warning[0] == "> [!WARNING]"
    assert ".github/model-assigner.yml: scoring: priority_weight: " in warning[1]
    assert warning[1].endswith("The defaults applied.")
    assert text.count("priority_weight:") == 1


def test_longest_config_problem_still_fits_a_comment(
    engine: EngineConfig, labels_config: LabelsConfig
) -> None:
    text = "\n".join(f"key_{i}: 1" for i in range(5000))
    settings = effective_config(text, engine.scoring, labels_config, engine.catalog)
    assert settings.problem is not None and len(settings.problem) <= PROBLEM_MAX_CHARS
    decision = select(engine, seed_task(), build_ledger(claude_used=5_000_000, budget=0.0))
    body = render_comment(decision, "model:deferred", config_problem=settings.problem)
    assert len(body) < GITHUB_COMMENT_MAX_CHARS


def test_a_problem_cannot_break_out_of_its_quote(engine: EngineConfig) -> None:
    decision = select(engine, seed_task(), build_ledger())
    problem = "f.yml: a|b: bad\n# Injected heading\n| fake | row |"
    text = render_comment(decision, "model:sonnet-4.5", config_problem=problem)
    assert not any(line.startswith("# Injected") for line in lines(text))
    assert not any(line.startswith("| fake") for line in lines(text))
    assert "a\\|b" in text


def test_table_cells_are_escaped(engine: EngineConfig, labels_config: LabelsConfig) -> None:
    """A repository may name a domain label with a '|': the table must hold."""
    settings = effective_config(
        "scoring:\n  domain_labels:\n    frontend: ['ui|ux']\n",
        engine.scoring,
        labels_config,
        engine.catalog,
    )
    assert settings.problem is None
    scoring: ScoringConfig = settings.scoring
    task = build_task(labels=["ui|ux"])
    decision = select_model(task, build_ledger(), engine.models, scoring, NOW, "minimize_cost")
    text = render_comment(decision, "l")
    row = next(line for line in lines(text) if line.startswith("| domain | "))
    assert "ui\\|ux" in row
    assert len(re.findall(r"(?<!\\)\|", row)) == 4
