"""Which issues the online strategy deferred and would now take.

As a reset nears (or when fewer issues arrive than forecast) the online
strategy's prices fall, and an issue it deferred may now be worth its price.
The queue's periodic catch-up (bot/queue/catchup.py) asks this module which, and
enqueues each as an ``edited`` delivery of its current state: it is then
decided again by the same handler and written back through the same path as
every other delivery. ``model-assigner plan OWNER/REPO --due --apply`` does
the same for one repository by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model_assigner.core.online import due_for_redecision
from model_assigner.core.quota import Ledger, roll_over

if TYPE_CHECKING:
    from model_assigner.bot.handling.handler import Handler


def due_issue_keys(handler: Handler) -> set[str]:
    """The deferred issues ``core.online.due_for_redecision`` says are due
    now, against the store's quota (the resets due now applied, nothing
    written); none when the configured strategy is not ``online``."""
    scoring = handler.engine.scoring
    if scoring.quota_strategy != "online":
        return set()
    now = handler.clock()
    subscriptions, budget, seen, deferred = handler.store.view(
        lambda state: (
            [sub.model_copy() for sub in state.subscriptions.values()],
            state.api_budget.model_copy(),
            list(state.seen.values()),
            dict(state.deferred),
        )
    )
    if not deferred:
        return set()
    ledger = Ledger(subscriptions, budget)
    roll_over(ledger, now)
    return set(due_for_redecision(deferred, seen, ledger, handler.engine.models, scoring, now))
