"""What one decision costs on PostgreSQL: its round trips and the rows it
reads must not grow with what other issues stored (issue 11: "a decision
reads only what it needs"; issue 12, item 1: "a delivery's cost independent
of how much other issues stored").

A real server (tests/pg_support.py), the real services in dry-run: a
delivery accepted into the queue and decided by a worker, counted by
bot.pg.STATEMENTS (round trips) and bot.pg.ROWS_READ (entry rows read).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from model_assigner.bot.pg import ROWS_READ, STATEMENTS
from model_assigner.bot.settings import Settings
from model_assigner.bot.store.state import IssueRecord, Reservation, State
from model_assigner.bot.web.app import accept
from model_assigner.bot.wiring import Services, build_services
from model_assigner.core.types import Observation, Payment
from tests.bot.support import SECRET, webhook
from tests.helpers import CONFIG_DIR

NOW = datetime.now(UTC)
OTHERS = 300  # issues of another repository, each with as much as one may store


@pytest.fixture
def services(pg_url: str, tmp_path: Path) -> Iterator[Services]:
    settings = Settings(app_id=None, private_key=None, webhook_secret=SECRET,
                        api_url="https://api.github.com", state_path=tmp_path / "s.json",
                        config_dir=CONFIG_DIR, bot_login=None, database_url=pg_url)
    built = build_services(settings)
    yield built
    getattr(built.store, "release", lambda: None)()


def opened(number: int) -> dict[str, Any]:
    return webhook("issues.opened", number=number, labels=["P1", "backend"],
                   body="Fix the API's pagination: the last page is dropped.")


def cost(services: Services, number: int) -> tuple[int, int]:
    """Round trips and rows read to accept and decide one delivery."""
    worker = services.worker(threads=0)
    statements, rows = STATEMENTS.count, ROWS_READ.count
    outcome = accept(services, "issues", str(uuid.uuid4()), opened(number))
    assert outcome.status == 202, outcome.body
    worker.drain()
    return STATEMENTS.count - statements, ROWS_READ.count - rows


def fill(state: State, seen_at: datetime) -> None:
    """What 300 busy issues of another repository leave in the store: the
    most dependencies one may keep, a reservation, an issue record, an entry
    in the online strategy's history."""
    for n in range(OTHERS):
        key = f"attacker/repo#{n}"
        state.dependencies[key] = [f"attacker/repo#{1000 + m}" for m in range(20)]
        state.reserve(key, Reservation(
            model="sonnet-4.5", charged_at=NOW,
            payment=Payment(kind="subscription", family="claude", tokens=1000, cost_usd=0.0)))
        state.records[key] = IssueRecord(id=n + 1, label="model:sonnet-4.5")
        state.seen[key] = Observation(value=10.0, domain="backend", working_set=1,
                                      input_tokens=10_000, output_tokens=2_000, seen_at=seen_at)


def test_a_decisions_cost_does_not_grow_with_other_issues_rows(services: Services) -> None:
    """A store with 300 other issues' dependencies, reservations and comments,
    and their history from before the period the online strategy reads: a
    decision sends as many statements and reads as many rows as on an empty
    store. (Before: every decision read the whole dependency table and the
    whole history, with FOR UPDATE: 600 more rows here.)"""
    # Another repository known from the start: the share of the quota is
    # capped (repository_share) in both measurements.
    services.store.apply(NOW, lambda state: state.reserve("bystander/repo#1", Reservation(
        model="sonnet-4.5", charged_at=NOW,
        payment=Payment(kind="subscription", family="claude", tokens=1000, cost_usd=0.0))))
    cost(services, 1)  # the pool, the ledger, the first prunes
    empty_statements, empty_rows = cost(services, 2)
    services.store.apply(NOW, lambda state: fill(state, NOW - timedelta(days=100)))
    full_statements, full_rows = cost(services, 3)
    # One row more: issue 2 joined this period's history, which issue 3 reads.
    assert (full_statements, full_rows) == (empty_statements, empty_rows + 1)
    assert empty_rows <= 8, "the issue's own rows, its delivery id, this period's history"


def test_the_online_history_read_is_the_window_it_uses(services: Services) -> None:
    """Issues seen this period are what the online strategy prices with: a
    decision reads those (and no other issue's dependencies or reservations)."""
    cost(services, 1)
    _, empty_rows = cost(services, 2)
    services.store.apply(NOW, lambda state: fill(state, NOW - timedelta(hours=1)))
    _, full_rows = cost(services, 3)
    assert full_rows == empty_rows + 1 + OTHERS  # (+1: issue 2, as above)


def test_an_issue_named_as_a_dependency_is_found_by_the_index(services: Services) -> None:
    """The rows that name an issue are found without reading the others: the
    blocking bonus still applies (the JSON store's answer)."""
    def depend(state: State) -> None:
        fill(state, NOW - timedelta(days=100))
        state.dependencies["Codertocat/Hello-World#7"] = ["Codertocat/Hello-World#9"]

    services.store.apply(NOW, depend)
    found = services.store.view(lambda state: state.dependents_of("Codertocat/Hello-World#9"))
    assert found == ["Codertocat/Hello-World#7"]
    assert services.store.view(lambda s: s.dependents_of("attacker/repo#1005")) == [
        f"attacker/repo#{n}" for n in range(OTHERS)]
