"""The quota one repository's decision may see (``repository_share``)."""

from __future__ import annotations

from model_assigner.bot.store.state import State
from model_assigner.core.quota import Ledger


def repository_ledger(state: State, repo: str | None, share: float) -> Ledger:
    """The quota as one repository's decision may see it: with
    ``repository_share`` below 1, each subscription's monthly tokens and
    the API budget are cut to that share of their limit, less what this
    repository's live reservations already hold (the issue being decided
    has released its own). The store's counters are not changed: a copy.
    A person's override label is not capped (it is kept, as ever, and
    charged), only model-assigner's own choice. A repository alone in the
    store (no other repository's reservation or history known) is not cut:
    there is nobody to starve (docs/design-decisions.md)."""
    if repo is None or share >= 1 or not state.other_repositories_known(repo):
        return state.ledger()  # a repository alone has the whole quota
    tokens: dict[str, int] = {}
    spent = 0.0
    for held in state.reservations_of(repo):
        if held.payment.kind == "subscription" and held.payment.family:
            family = held.payment.family
            tokens[family] = tokens.get(family, 0) + held.payment.tokens
        else:
            spent += held.payment.cost_usd
    ledger = state.ledger().copy()
    for sub in ledger.subscriptions:
        limit = sub.token_limit_monthly
        if limit is not None:
            room = max(0.0, share * limit - tokens.get(sub.model_family, 0))
            sub.tokens_used_month = max(sub.tokens_used_month, int(limit - room))
    budget = ledger.budget
    room_usd = max(0.0, share * budget.monthly_limit_usd - spent)
    budget.spent_usd = max(budget.spent_usd, budget.monthly_limit_usd - room_usd)
    return ledger
