"""The bot's comments, whole, as a maintainer reads them (snapshots in
tests/fixtures/comments/; after a deliberate change of wording, regenerate
them with UPDATE_SNAPSHOTS=1 and read the diff)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from model_assigner.bot.comment import Override, render_comment
from model_assigner.bot.config_files import load_engine_config
from model_assigner.core.assessment import assess
from model_assigner.core.batch import plan_assessed
from model_assigner.core.catalog import find_model
from model_assigner.core.config import EngineConfig
from model_assigner.core.idle import idle_reasons
from model_assigner.core.online import decide_online
from model_assigner.core.online_history import observe
from model_assigner.core.quota import Ledger, payment_for
from model_assigner.core.reasons import ReasonCode, reason
from model_assigner.core.selection import make_decision
from model_assigner.core.types import Decision, Task
from tests.helpers import NOW, build_ledger, build_task, seed_task

SNAPSHOTS = Path(__file__).resolve().parent.parent / "fixtures" / "comments"


@pytest.fixture(scope="module")
def engine() -> EngineConfig:
    return load_engine_config()


def p1_security() -> Task:
    """The sample P1 security issue: (30 x 1 + 0) x 1.1 x 1.3 = 42.9."""
    return build_task(id="o/r#1", priority="P1", labels=["security", "backend", "hotfix"],
                      estimated_files=3, estimated_loc=150)


def decided(engine: EngineConfig, task: Task, ledger: Ledger, strategy: str) -> Decision:
    """As the handler decides: the decision, and which subscription sat idle."""
    a = assess(task, engine.scoring, NOW)
    d = plan_assessed([a], ledger, engine.models, engine.scoring, NOW, strategy).decisions[0]
    return d.model_copy(update={"idle": idle_reasons(d, ledger, engine.models, engine.scoring)})


def check(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.md"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_api_paid_while_a_subscription_sits_idle(engine: EngineConfig) -> None:
    decision = decided(engine, p1_security(), build_ledger(), "maximize_subscription_usage")
    assert (decision.model, decision.paid_by) == ("glm-4.7", "api")
    text = render_comment(decision, "model:glm-4.7")
    assert "**Why not a subscription:** The claude subscription has 5,000,000 tokens left" in text
    check("api-paid-idle-subscription", text)


def test_paid_by_a_subscription(engine: EngineConfig) -> None:
    decision = decided(engine, seed_task(), build_ledger(), "maximize_subscription_usage")
    assert decision.paid_by == "subscription:claude" and not decision.idle
    check("subscription-paid", render_comment(decision, "model:sonnet-4.5"))


def test_deferred_by_the_online_prices(engine: EngineConfig) -> None:
    """Ten issues worth more per token seen this month, quota for two."""
    high = assess(seed_task(), engine.scoring, NOW)
    history = [observe(high, NOW - timedelta(days=3)) for _ in range(10)]
    ledger = build_ledger(claude_monthly=2 * high.total_tokens, budget=0)
    a = assess(p1_security(), engine.scoring, NOW)
    decision = decide_online(a, ledger, engine.models, engine.scoring, NOW, history)
    assert decision.model is None
    check("deferred-online", render_comment(decision, "model:deferred"))


def test_a_persons_override(engine: EngineConfig) -> None:
    """What the handler writes for a `model:opus-4.6` label on the sample issue."""
    ledger = build_ledger()
    own = decided(engine, p1_security(), ledger, "maximize_subscription_usage")
    a = assess(p1_security(), engine.scoring, NOW)
    opus = find_model(engine.models, "opus-4.6")
    assert opus is not None
    t = a.tokens
    decision = make_decision(
        a, opus, payment_for(opus, ledger, t.input_tokens, t.output_tokens), "standard",
        "override", reason(ReasonCode.OVERRIDE_SET, by="monalisa"),
    ).model_copy(update={"instead": reason(ReasonCode.INSTEAD_CHOSEN, model=own.model,
                                           payment=own.payment)})
    text = render_comment(decision, "model:opus-4.6",
                          Override(model="opus-4.6", by="monalisa", known=True))
    assert "@monalisa" not in text and "override band" not in text
    check("override", text)
