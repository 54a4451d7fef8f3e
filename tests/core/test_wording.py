"""The words of every explanation (core/wording.py): each reason code's
sentence, and a whole decision as the CLI prints it."""

from __future__ import annotations

from typing import Any

import pytest

from model_assigner.core.config import ScoringConfig
from model_assigner.core.quota import INF
from model_assigner.core.reasons import Lever, Reason, ReasonCode, reason
from model_assigner.core.selection import select_model
from model_assigner.core.types import Decision, Model, Payment, Task
from model_assigner.core.wording import (
    WORDED,
    explain,
    format_payment,
    formula,
    score_rows,
    text,
)
from tests.helpers import NOW, build_ledger, build_task, seed_task, task_for


def decide(task: Task, models: list[Model], scoring: ScoringConfig, **ledger: Any) -> Decision:
    return select_model(task, build_ledger(**ledger), models, scoring, NOW)


def test_seed_example_explanation(models: list[Model], scoring: ScoringConfig) -> None:
    decision = decide(seed_task(), models, scoring, claude_used=1_200_000)
    lines = explain(decision)
    assert lines[0] == "model: sonnet-4.5"
    assert lines[1] == "value: 78.7/100 (high band)  (40 x 1 + 15) x 1.1 x 1.3 = 78.65"
    text = "\n".join(lines)
    assert "priority weight      40  P0" in text
    assert "complexity           x1  moderate: 3 files (estimated_files) >= 3" in text
    assert "time bonus          +15  due in 2.0 h (<= 4 h: immediate)" in text
    assert "domain             x1.1  backend: label 'backend'" in text
    assert "risk               x1.3  production: label 'hotfix'" in text
    assert "tokens: 27,500 in + 3,500 out = 31,000 (moderate: 27,500 in / 3,500 out)" in text
    assert "cost at list price: $0.14" in text
    assert "paid by: claude subscription, 31,000 tokens (3,769,000 tokens left this month)" in text
    assert ("why: its value, 78.7, puts it in the high band (75 and up), where sonnet-4.5 is "
            "the first choice; the claude subscription pays") in text
    assert "would change it" not in text


def test_score_rows_follow_the_formula(models: list[Model], scoring: ScoringConfig) -> None:
    rows = score_rows(decide(build_task(priority=None), models, scoring))
    assert [row[0] for row in rows] == [
        "priority weight",
        "complexity",
        "time bonus",
        "domain",
        "risk",
    ]
    assert rows[0] == ("priority weight", "20", "no priority label (default)")
    assert rows[2] == ("time bonus", "+0", "no deadline")


def test_formula_shows_the_clamp(models: list[Model], scoring: ScoringConfig) -> None:
    task = task_for("P0", "highly_complex", 15, "infrastructure", "production")
    decision = decide(task, models, scoring)
    assert formula(decision) == "(40 x 2 + 15) x 1.2 x 1.3 = 148.20 -> clamped to 100.0"


def test_deferred_explanation(models: list[Model], scoring: ScoringConfig) -> None:
    decision = decide(build_task(priority="P4"), models, scoring)
    lines = explain(decision)
    assert lines[0] == "model: deferred"
    text = "\n".join(lines)
    assert "paid by: nothing (deferred)" in text
    assert "cost at list price" not in text
    # P4, simple (no estimate), no labels: no label or deadline can lift it.
    assert "would change it: no label or deadline lifts it to 40" in text


def test_passed_over_models_are_listed(models: list[Model], scoring: ScoringConfig) -> None:
    decision = decide(seed_task(), models, scoring, claude_used=5_000_000, budget=0.1)
    text = "\n".join(explain(decision))
    assert "passed over gpt-4-turbo: claude quota" not in text  # turbo is openai
    assert (
        "passed over gpt-4-turbo: no openai subscription; API cost $0.38 is over the $0.10" in text
    )
    assert "passed over sonnet-4.5: claude quota has 0 tokens left, 31,000 needed" in text
    assert "passed over deepseek-v3: tier mid-range is not among the high band's tiers" in text
    assert "paid by: API budget, $0.01 ($0.09 left this month)" in text


@pytest.mark.parametrize(
    ("payment", "text"),
    [
        (None, "nothing (deferred)"),
        (
            Payment(kind="subscription", family="claude", tokens=1000, cost_usd=0),
            "claude subscription, 1,000 tokens (no limit)",
        ),
        (
            Payment(
                kind="subscription",
                family="claude",
                tokens=1000,
                cost_usd=0,
                remaining_daily=5,
                remaining_monthly=2_000_000,
            ),
            "claude subscription, 1,000 tokens "
            "(5 tokens left today, 2,000,000 tokens left this month)",
        ),
        (
            Payment(
                kind="api",
                family="openai",
                tokens=1000,
                cost_usd=1.2345,
                remaining_budget_usd=98.7655,
            ),
            "API budget, $1.23 ($98.77 left this month)",
        ),
    ],
)
def test_format_payment(payment: Payment | None, text: str) -> None:
    assert format_payment(payment) == text


# --- each reason's words (the sentences the algorithm tests asserted before the
# --- engine gave codes and values: the same expected text, now tested here) ---


def test_every_reason_code_has_words() -> None:
    assert set(ReasonCode) == WORDED


@pytest.mark.parametrize(
    ("why", "words"),
    [
        # the value score's signals
        (reason(ReasonCode.COMPLEXITY_KEYWORD, keyword="refactor"),
         "keyword 'refactor' in the description"),
        (reason(ReasonCode.COMPLEXITY_FILES, files=3, source="estimated_files", at_least=3),
         "3 files (estimated_files) >= 3"),
        (reason(ReasonCode.COMPLEXITY_LOC, loc=501, source="description", above=500),
         "501 LOC (description) > 500"),
        (reason(ReasonCode.COMPLEXITY_BELOW_THRESHOLDS, files=0, loc=0),
         "0 files, 0 LOC: below every threshold"),
        (reason(ReasonCode.DEADLINE_WITHIN, hours=2.0, limit=4.0, window="immediate"),
         "due in 2.0 h (<= 4 h: immediate)"),
        (reason(ReasonCode.DEADLINE_WITHIN, hours=-3.25, limit=4.0, window="immediate"),
         "overdue by 3.2 h (<= 4 h: immediate)"),
        (reason(ReasonCode.DEADLINE_FLEXIBLE, hours=1000.0), "due in 1000.0 h (flexible)"),
        (reason(ReasonCode.BLOCKS_OTHERS, because=reason(ReasonCode.NO_DEADLINE)),
         "blocks other tasks (no deadline)"),
        (reason(ReasonCode.SIGNAL_LABEL, label="k8s"), "label 'k8s'"),
        (reason(ReasonCode.SIGNAL_PATH_WORD, word="api"), "workspace path word 'api'"),
        (reason(ReasonCode.SIGNAL_KEYWORD, keyword="payment"), "'payment' in the description"),
        (reason(ReasonCode.SIGNAL_DEFAULT), "default"),
        # the token estimate
        (reason(ReasonCode.TOKENS_BASE, complexity="moderate", input=27500, output=3500),
         "moderate: 27,500 in / 3,500 out"),
        (reason(ReasonCode.TOKENS_DOMAIN, domain="infrastructure", input=1.2, output=1.0),
         "infrastructure: input x1.2, output x1"),
        (reason(ReasonCode.TOKENS_WORKSPACE, files=101, above=100, input=1.3, output=1.0),
         "workspace of 101 files (> 100): input x1.3"),
        (reason(ReasonCode.TOKENS_WORKSPACE, files=101, above=100, input=1.3, output=1.1),
         "workspace of 101 files (> 100): input x1.3, output x1.1"),
        (reason(ReasonCode.TOKENS_CALIBRATION, factor=1.4, domain_samples=37,
                domain="infrastructure", samples=37, complexity="moderate"),
         "calibration: x1.40 from 37 finished infrastructure issues (37 of them moderate)"),
        # chosen
        (reason(ReasonCode.CHOSEN_IN_BAND, value=78.65, band="high", band_min=75,
                model="sonnet-4.5", position=1, payer="subscription", family="claude"),
         "its value, 78.7, puts it in the high band (75 and up), where sonnet-4.5 is the first "
         "choice; the claude subscription pays"),
        (reason(ReasonCode.CHOSEN_IN_BAND, value=45.0, band="standard", band_min=40,
                model="qwen2.5-coder", position=2, payer="api", family="alibaba"),
         "its value, 45.0, puts it in the standard band (40 and up), where qwen2.5-coder is "
         "the choice #2 (why not the ones before it: see the details); the API budget pays"),
        (reason(ReasonCode.CHEAPEST_PAYABLE, value=60.1, band="medium-high",
                tiers=("mid-premium", "mid-range")),
         "value 60.1 is in the medium-high band; no preferred model could be paid for, so the "
         "cheapest payable model of tiers mid-premium, mid-range"),
        (reason(ReasonCode.DOWNGRADED, value=91.0, band="critical", tiers=("premium",),
                model="sonnet-4.5", tier="mid-premium"),
         "value 91.0 is in the critical band, but nothing of tiers premium could be paid for: "
         "downgraded to sonnet-4.5 (mid-premium)"),
        (reason(ReasonCode.FITS_SUBSCRIPTION, model="sonnet-4.5", family="claude", value=60.06),
         "sonnet-4.5 fits the claude subscription (value 60.1)"),
        (reason(ReasonCode.CHEAPEST_CAPABLE_API, band="high", model="deepseek-v3", floor=0.7,
                domain="infrastructure"),
         "no subscription can pay for a model the high band allows; deepseek-v3 is the "
         "cheapest model rated >= 0.7 for infrastructure that the API budget can pay for"),
        # deferred
        (reason(ReasonCode.LOW_VALUE, value=45.0, floor=50),
         "value 45.0 is below 50: low-value work is deferred rather than spending tokens on it"),
        (reason(ReasonCode.VALUE_LEVERS, floor=40,
                levers=(Lever.PRIORITY, Lever.DEADLINE, Lever.DEPENDANTS)),
         "a value of 40 or more would assign it: a higher priority label, a nearer milestone "
         "due date, or other issues depending on this one"),
        (reason(ReasonCode.VALUE_LEVERS, floor=40, levers=(Lever.PRIORITY,)),
         "a value of 40 or more would assign it: a higher priority label"),
        (reason(ReasonCode.VALUE_LEVERS, floor=50, levers=(Lever.PRIORITY_AND_DEADLINE,)),
         "a value of 50 or more would assign it: a higher priority label together with a "
         "nearer milestone due date"),
        (reason(ReasonCode.VALUE_CAPPED, floor=40, complexity="simple", domain="documentation",
                risk="sandbox", cap=33.04),
         "no label or deadline lifts it to 40: its complexity (simple), domain (documentation) "
         "and risk (sandbox) cap its value at 33.0; only a change to the scoring configuration "
         "would assign it"),
        (reason(ReasonCode.UNAFFORDABLE, tiers=("premium", "mid-premium"), tokens=31_000,
                quotas=(("claude", 1000),), budget_left=0.0),
         "no model of tiers premium, mid-premium or below can be paid for 31,000 tokens: "
         "claude quota 1,000 tokens left, API budget $0.00 left"),
        (reason(ReasonCode.UNAFFORDABLE, tiers=("budget",), tokens=10, quotas=(("claude", INF),),
                budget_left=-1.0),
         "no model of tiers budget or below can be paid for 10 tokens: claude quota unlimited "
         "left, API budget $0.00 left"),
        (reason(ReasonCode.QUOTA_RESETS, subscriptions=("2026-03-01",), budget="2026-03-01"),
         "more subscription quota, a larger API budget, or the next quota reset (subscription "
         "2026-03-01, API budget 2026-03-01) would assign it"),
        (reason(ReasonCode.QUOTA_RESETS, subscriptions=(), budget="2026-03-01"),
         "more subscription quota, a larger API budget, or the next quota reset (subscription "
         "none, API budget 2026-03-01) would assign it"),
        # passed over
        (reason(ReasonCode.NOT_IN_CATALOG), "not in the catalog"),
        (reason(ReasonCode.WINDOW_TOO_SMALL, window=8192, working_set=8193),
         "its context window of 8,192 tokens cannot hold this task's working set of 8,193 "
         "tokens per turn"),
        (reason(ReasonCode.TIER_NOT_IN_BAND, tier="mid-premium", band="critical",
                tiers=("premium",)),
         "tier mid-premium is not among the critical band's tiers (premium)"),
        (reason(ReasonCode.CANNOT_PAY, family="claude", quota_left=0, needed=94_000,
                api_cost=0.6652, budget_left=0.5),
         "claude quota has 0 tokens left, 94,000 needed; API cost $0.67 is over the $0.50 "
         "budget left"),
        (reason(ReasonCode.CANNOT_PAY, family="openai", quota_left=None, needed=10,
                api_cost=3.12, budget_left=0.0),
         "no openai subscription; API cost $3.12 is over the $0.00 budget left"),
        (reason(ReasonCode.NOT_IN_BAND_TIERS, band="medium-high",
                tiers=("mid-premium", "mid-range")),
         "not in the medium-high band's tiers (mid-premium, mid-range)"),
        (reason(ReasonCode.FIRST_SUBSCRIPTION_MODEL, taken="opus-4.6"),
         "opus-4.6 comes first among the band's subscription-paid models"),
        (reason(ReasonCode.ONLY_ON_API, family="claude", taken="sonnet-4.5"),
         "only on the API, while the claude subscription pays for sonnet-4.5"),
        (reason(ReasonCode.BELOW_CAPABILITY_FLOOR, rating=0.8, domain="backend", floor=0.99),
         "rated 0.8 for backend, below the capability floor 0.99"),
        (reason(ReasonCode.DEARER_THAN, taken="deepseek-v3", floor=0.7, domain="backend"),
         "dearer per token than deepseek-v3, the cheapest model rated >= 0.7 for backend"),
        (reason(ReasonCode.NOTHING_ASSIGNED), "nothing was assigned"),
        # the optimal plan
        (reason(ReasonCode.PLAN_SUBSCRIPTION, value=78.65, band="high", payer="claude",
                model="sonnet-4.5", rule="band", tiers=("premium", "mid-premium")),
         "value 78.7 is in the high band; the optimal plan pays it from the claude "
         "subscription, and sonnet-4.5 is the first claude model in the high band's preferred "
         "order (tiers premium, mid-premium)"),
        (reason(ReasonCode.PLAN_API, value=45.0, band="standard", model="glm-4.7",
                rule="downgrade", tiers=("mid-range",)),
         "value 45.0 is in the standard band; the optimal plan pays it from the API budget, "
         "and glm-4.7 is the first model of a lower band's tiers (downgraded from mid-range) "
         "that fits the budget the plan leaves"),
        (reason(ReasonCode.PLAN_API, value=45.0, band="standard", model="glm-4.7",
                rule="capable", tiers=("mid-range",)),
         "value 45.0 is in the standard band; the optimal plan pays it from the API budget, "
         "and glm-4.7 is the first model rated at or above the capability floor for its "
         "domain (minimize_cost's overflow) that fits the budget the plan leaves"),
        (reason(ReasonCode.PLAN_OTHER_SUBSCRIPTION, payer="claude", family="openai"),
         "the plan pays this task from the claude subscription, which does not cover openai "
         "models"),
        (reason(ReasonCode.PLAN_BUDGET_SHARE, cost=0.0125, kept=0.01),
         "API cost $0.0125 does not fit: the plan keeps $0.0100 of the budget for this task"),
        (reason(ReasonCode.NO_VALUE, value=0.0), "value 0.0: nothing to gain from assigning it"),
        (reason(ReasonCode.GIVE_IT_VALUE),
         "a priority label, a deadline or dependants would give it value"),
        (reason(ReasonCode.UNPAYABLE_ALONE, tokens=94_000, quotas=(("claude", 0),),
                budget_left=0.0),
         "no model it may use can be paid for 94,000 tokens, even alone: claude quota 0 tokens "
         "left, API budget $0.00 left"),
        (reason(ReasonCode.MORE_QUOTA),
         "more subscription quota, a larger API budget, or the next quota reset would assign "
         "it"),
        (reason(ReasonCode.OUTBID_BY_PLAN, value=50.0, tokens=94_000, api_cost=0.5,
                quotas=(("claude", 10),), budget_left=0.25),
         "value 50.0: the optimal plan spends the quota and budget it would need (94,000 "
         "tokens, or $0.5000 of API) on tasks worth more together; after the plan: claude "
         "quota 10 tokens left, API budget $0.25 left"),
        (reason(ReasonCode.PLAN_MORE_VALUE),
         "a higher value, or more quota or budget, would let the plan include it"),
        # the online strategy
        (reason(ReasonCode.COLD_START, seen=3, because=reason(ReasonCode.NOTHING_ASSIGNED)),
         "too few issues seen yet to price the quota (3 this period, none from the last), so "
         "it is decided as minimize_cost decides: nothing was assigned"),
        (reason(ReasonCode.PRICED_OUT, value=20.0, model="glm-4.7", payer="", usage=0.0242,
                price=24.2, rate=1000.0, reset="2026-03-01",
                basis=reason(ReasonCode.PRICE_BASIS, seen=12, last=None, near_reset=False)),
         "value 20.0 does not cover the price of what it would use: the cheapest way, glm-4.7 "
         "with $0.02 of the API budget, is priced at 24.2 (1e+03 value per dollar). The prices "
         "keep quota and budget for the higher-value issues expected before the reset on "
         "2026-03-01 (learned from 12 issues seen this period)"),
        (reason(ReasonCode.PRICES_FALL, reset="2026-03-01"),
         "prices fall as the reset on 2026-03-01 approaches, and the issue is decided again "
         "then; a higher priority label or a nearer milestone due date (more value), or more "
         "quota or budget, would assign it sooner"),
        (reason(ReasonCode.COVERS_PRICE, value=60.0, model="sonnet-4.5", payer="claude",
                usage=31_000.0, price=3.1, rate=0.0001),
         "value 60.0 covers the price of 31,000 tokens of the claude subscription, priced at "
         "3.1 (0.1 value per 1,000 tokens); sonnet-4.5 leaves the most value after prices "
         "among the models it may use"),
        (reason(ReasonCode.COVERS_PRICE, value=60.0, model="sonnet-4.5", payer="claude",
                usage=31_000.0, price=0.0, rate=0.0),
         "value 60.0 covers the price of 31,000 tokens of the claude subscription, free at "
         "current prices (nothing scarcer is expected before the reset); sonnet-4.5 leaves the "
         "most value after prices among the models it may use"),
        (reason(ReasonCode.PRICE_BASIS, seen=4, last=7, near_reset=True),
         "4 issues seen this period and the last period's issues from this point on (7); the "
         "reset is near, prices zero"),
        (reason(ReasonCode.NOT_ALLOWED), "not among the models this task may use"),
        (reason(ReasonCode.API_ONLY_COSTS, cost=0.14, best="sonnet-4.5"),
         "only on the API, where it would cost $0.14; sonnet-4.5 leaves more value after "
         "prices"),
        (reason(ReasonCode.LESS_AFTER_PRICES, net=12.04, payer="", usage=0.5, best="glm-4.7",
                best_net=20.0),
         "leaves 12.0 of value after the price of $0.50 of the API budget, less than "
         "glm-4.7's 20.0"),
        # a person's label
        (reason(ReasonCode.OVERRIDE_UNKNOWN_MODEL, model="gpt-9"),
         "'gpt-9' is not in the model catalog"),
        (reason(ReasonCode.OVERRIDE_SET, by="monalisa"), "set by monalisa with a label"),
        (reason(ReasonCode.INSTEAD_DEFERRED, because=reason(ReasonCode.NOTHING_ASSIGNED)),
         "model-assigner would have deferred it: nothing was assigned"),
        (reason(ReasonCode.INSTEAD_CHOSEN, model="glm-4.7", payment=None),
         "model-assigner would have chosen `glm-4.7`, nothing is charged"),
        (reason(ReasonCode.OVERRIDE_REFUSED, label="model:opus-4.6", via="label", by="mallory",
                needed="triage"),
         "The `model:opus-4.6` label (added by mallory) was not applied: choosing a model "
         "needs the triage role on this repository or above; model-assigner chose instead"),
        (reason(ReasonCode.OVERRIDE_REFUSED, label="model:x", via="opened", by="mallory",
                needed="write"),
         "The `model:x` label (on the issue as mallory opened it, so set by an issue template "
         "or an automation, not by them) was not applied: choosing a model needs the write "
         "role on this repository or above; model-assigner chose instead"),
        (reason(ReasonCode.OVERRIDE_REFUSED, label="model:x", via="unknown", by="",
                needed="triage"),
         "The `model:x` label was not applied: who added it is not known (it was on the issue "
         "without a `labeled` event model-assigner received, as when an issue template or an "
         "automation sets it); choosing a model needs the triage role on this repository or "
         "above, so someone with it may add the label again; model-assigner chose instead"),
    ],
    ids=lambda x: x.code.value if isinstance(x, Reason) else "",
)
def test_each_reason_in_words(why: Reason, words: str) -> None:
    assert text(why) == words


def test_an_idle_subscription_in_words() -> None:
    why = reason(ReasonCode.IDLE_SUBSCRIPTION, family="claude", left=5_000_000.0,
                 models=("opus-4.6", "sonnet-4.5"), value=42.9, band="standard",
                 tiers=("mid-range", "budget"), floor=60.0, levers=(Lever.PRIORITY,))
    assert text(why) == (
        "The claude subscription has 5,000,000 tokens left but is not used: its models "
        "(opus-4.6, sonnet-4.5) are kept for higher-value work by the configured value bands. "
        "This issue's value, 42.9, is in the standard band, which allows only mid-range and "
        "budget models. A value of 60 or more would let it use them (a higher priority label); "
        "so would the operator adding a claude model's tier to the standard band's `tiers` "
        "(`value_bands` in config/scoring.yaml)."
    )
    unlimited = reason(ReasonCode.IDLE_SUBSCRIPTION, **{**why.values, "left": INF,
                                                        "floor": None, "levers": ()})
    assert text(unlimited).startswith("The claude subscription has room without limit but")
    assert text(unlimited).endswith("which allows only mid-range and budget models.")


def test_the_engines_reasons_read_as_before(models: list[Model], scoring: ScoringConfig) -> None:
    """The words of real decisions, end to end (the sentences are the ones the
    comment and the CLI always showed)."""
    deferred = decide(task_for("P2", "complex", 0, "backend", "development"), models, scoring)
    assert deferred.unblock_hint is not None
    assert text(deferred.reason) == (
        "value 33.0 is below 40: low-value work is deferred rather than spending tokens on it"
    )
    assert text(deferred.unblock_hint) == (
        "a value of 40 or more would assign it: a higher priority label, a nearer milestone "
        "due date, or other issues depending on this one"
    )
