"""Builders shared by the tests: a fixed clock, tasks and ledgers.

They build real engine objects; no test mocks our own code.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from model_assigner.core.quota import Ledger
from model_assigner.core.types import ApiBudget, Subscription, Task

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "config"
EXAMPLES_DIR = REPO_ROOT / "examples"
SHIPPED_STRATEGY = "quota_strategy: online"


@functools.cache
def seed_strategy_config() -> Path:
    """A copy of config/ whose quota_strategy is the seed's own default,
    maximize_subscription_usage. The tests of the webhook's mechanics
    (labels, comments, reservations, faults, freshness) were written against
    that strategy's answers and are not about the strategy; the App's
    default, online, has its own tests (tests/core/test_online.py and the
    online tests of tests/bot/handling/test_assign_online.py)."""
    folder = Path(tempfile.mkdtemp(prefix="model-assigner-seed-config-"))
    atexit.register(shutil.rmtree, folder, True)
    for source in CONFIG_DIR.glob("*.yaml"):
        text = source.read_text(encoding="utf-8")
        if source.name == "scoring.yaml":
            assert SHIPPED_STRATEGY in text, "config/scoring.yaml: quota_strategy moved"
            text = text.replace(SHIPPED_STRATEGY, "quota_strategy: maximize_subscription_usage")
        (folder / source.name).write_text(text, encoding="utf-8")
    return folder

# The clock every test runs at (a Tuesday, mid-month, mid-day UTC).
NOW = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
# The seed's example subscription resets on 2026-03-01.
SEED_RESET = datetime(2026, 3, 1, tzinfo=UTC)

TaskFactory = Callable[..., Task]
LedgerFactory = Callable[..., Ledger]


def build_task(**fields: Any) -> Task:
    """A plain task that is simple/frontend/development with no deadline, so
    each test states only the fields it is about. ``deadline_in`` (hours from
    NOW) is a shorthand for ``deadline``."""
    hours = fields.pop("deadline_in", None)
    if hours is not None:
        fields["deadline"] = NOW + timedelta(hours=hours)
    data: dict[str, Any] = {
        "id": "t-1",
        "title": "A task",
        "description": "",
        "priority": "P2",
        "labels": ["frontend"],
        "estimated_files": 1,
        "estimated_loc": 10,
        "dependencies": [],
        "workspace_path": "",
    }
    data.update(fields)
    return Task.model_validate(data)


def build_ledger(
    *,
    claude_used: int = 0,
    claude_monthly: int | None = 5_000_000,
    claude_daily: int | None = None,
    claude_today: int = 0,
    claude: bool = True,
    budget: float = 100.0,
    spent: float = 0.0,
    extra: list[Subscription] | None = None,
    reset_date: datetime = SEED_RESET,
) -> Ledger:
    """The seed's example ledger by default: claude, 5M a month, none used, and
    a $100 API budget."""
    subs: list[Subscription] = []
    if claude:
        subs.append(
            Subscription(
                model_family="claude",
                monthly_cost=20.0,
                token_limit_daily=claude_daily,
                token_limit_monthly=claude_monthly,
                tokens_used_today=claude_today,
                tokens_used_month=claude_used,
                reset_date=reset_date,
            )
        )
    subs.extend(extra or [])
    return Ledger(subs, ApiBudget(monthly_limit_usd=budget, spent_usd=spent, reset_date=reset_date))


def seed_task(**overrides: Any) -> Task:
    """The seed's implementation example, its deadline 2 h after NOW."""
    data: dict[str, Any] = {
        "id": "po-123",
        "title": "Fix authentication vulnerability",
        "description": "Critical security fix in JWT validation",
        "priority": "P0",
        "labels": ["security", "backend", "hotfix"],
        "estimated_files": 3,
        "estimated_loc": 150,
        "dependencies": [],
        "workspace_path": "/home/coder/api-server",
        "deadline": NOW + timedelta(hours=2),
    }
    data.update(overrides)
    return Task.model_validate(data)


# The seed's own tables, copied from its pseudocode (not read from config/), so
# that a drift in config/scoring.yaml makes the tests fail.
SEED_PRIORITY = {"P0": 40, "P1": 30, "P2": 20, "P3": 10, "P4": 5}
SEED_DEFAULT_PRIORITY = 20
SEED_COMPLEXITY = {"simple": 0.5, "moderate": 1.0, "complex": 1.5, "highly_complex": 2.0}
SEED_DOMAIN = {
    "infrastructure": 1.2,
    "backend": 1.1,
    "ml": 1.1,
    "frontend": 1.0,
    "testing": 0.9,
    "documentation": 0.8,
}
SEED_RISK = {
    "production": 1.3,
    "staging": 1.1,
    "development": 1.0,
    "experimental": 0.9,
    "sandbox": 0.7,
}
SEED_TOKENS = {
    "simple": (7500, 1250),
    "moderate": (27500, 3500),
    "complex": (70000, 10000),
    "highly_complex": (150000, 27500),
}

# Task fields that produce each term of the score.
FILES_FOR = {"simple": 1, "moderate": 3, "complex": 6, "highly_complex": 10}
DEADLINE_FOR: dict[int, float | None] = {15: 2, 12: 12, 8: 100, 5: 500, 0: None}
DOMAIN_LABELS = {
    "infrastructure": ["k8s"],
    "backend": ["api"],
    "ml": ["ml"],
    "frontend": ["ui"],
    "testing": ["qa"],
    "documentation": ["docs"],
}
RISK_LABELS = {
    "production": ["hotfix"],
    "staging": ["staging"],
    "development": [],
    "experimental": ["prototype"],
    "sandbox": ["sandbox"],
}


def seed_formula(
    priority: str | None, complexity: str, bonus: float, domain: str, risk: str
) -> float:
    """The seed's score, unclamped."""
    base = SEED_PRIORITY.get(priority or "", SEED_DEFAULT_PRIORITY)
    return (base * SEED_COMPLEXITY[complexity] + bonus) * SEED_DOMAIN[domain] * SEED_RISK[risk]


def task_for(
    priority: str | None,
    complexity: str,
    bonus: int,
    domain: str,
    risk: str,
    **fields: Any,
) -> Task:
    """A task whose score terms are exactly the given ones."""
    data: dict[str, Any] = {
        "priority": priority,
        "estimated_files": FILES_FOR[complexity],
        "estimated_loc": 10,
        "labels": DOMAIN_LABELS[domain] + RISK_LABELS[risk],
        "deadline_in": DEADLINE_FOR[bonus],
    }
    data.update(fields)
    return build_task(**data)


def shifted_clock_env() -> dict[str, str]:
    """What a subprocess needs to share a shifted test clock (tests/conftest.py):
    tests that build a subprocess's environment from scratch add this."""
    import os

    names = ("MODEL_ASSIGNER_TEST_CLOCK_OFFSET", "PYTHONPATH")
    if "MODEL_ASSIGNER_TEST_CLOCK_OFFSET" not in os.environ:
        return {}
    return {name: os.environ[name] for name in names if name in os.environ}


def store_files(path: Path) -> bytes | None:
    """What a JSON store's files hold, byte for byte: its document and its
    journal (None: no document yet). Equal before and after: nothing written."""
    if not path.exists():
        return None
    journal = path.with_name(path.name + ".journal")
    return path.read_bytes() + b"\0" + (journal.read_bytes() if journal.exists() else b"")


def store_text(path: Path) -> str:
    """A JSON store as one document (its journal's records applied), read
    from its files independently of any running store."""
    from model_assigner.bot.store.codec import serialize
    from model_assigner.bot.store.json_store import load_files

    return serialize(load_files(path))
