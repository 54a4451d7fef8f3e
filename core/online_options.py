"""How an issue may be paid under the ``online`` strategy: what it needs
(``Need``) and each way of paying for it (``Option``: a payer, the model it
buys, what it uses and what it is worth), remembered per catalog and config.
"""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from model_assigner.core.allowed_models import ranked_models
from model_assigner.core.assessment import Assessment
from model_assigner.core.catalog import price_key
from model_assigner.core.config import ScoringConfig
from model_assigner.core.objective import worth
from model_assigner.core.quota import calculate_cost
from model_assigner.core.types import Model, Observation, Subscription

API = ""  # the payer key of the API budget, as in core/optimal_knapsack.py
# Net values this close to zero count as zero: an issue exactly at the price is taken.
NET_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Need:
    """What an issue needs, whether just assessed or only remembered."""

    value: float
    domain: str
    working_set: int
    input_tokens: int
    output_tokens: int

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, item: Assessment | Observation) -> Need:
        if isinstance(item, Assessment):
            t = item.tokens
            return cls(item.value, item.domain, t.working_set, t.input_tokens, t.output_tokens)
        return cls(item.value, item.domain, item.working_set, item.input_tokens,
                   item.output_tokens)


@dataclass(frozen=True)
class Option:
    """One way of paying for an issue: a payer, the model it buys, how much
    of the payer's resource it uses, and the value it brings."""

    payer: str  # a subscription family, or API
    model: Model
    usage: float  # tokens, or USD for the API
    worth: float
    rank: int  # the model's place in the seed's order for this issue


class _Memo:
    """options_for's answers for the last catalog and config it was asked
    with: a month's history repeats a few hundred kinds of issue, and the
    prices are re-solved at every decision."""

    def __init__(self) -> None:
        self.key: tuple[object, ...] = ()
        self.answers: dict[tuple[object, ...], list[Option]] = {}

    def for_owners(self, owners: tuple[object, ...]) -> dict[tuple[object, ...], list[Option]]:
        """The answers for this catalog and config (forgotten when they change)."""
        if len(owners) != len(self.key) or any(a is not b for a, b in zip(owners, self.key,
                                                                             strict=True)):
            self.key, self.answers = owners, {}
        if len(self.answers) > 50_000:
            self.answers = {}
        return self.answers

    def get(
        self, owners: tuple[object, ...], key: tuple[object, ...]
    ) -> list[Option] | None:
        return self.for_owners(owners).get(key)


# options_for's memory; core/online_prices.py reads it to re-solve prices fast.
MEMO = _Memo()


def options_for(
    need: Need,
    models: list[Model],
    config: ScoringConfig,
    subscriptions: Sequence[Subscription],
    available: Sequence[Subscription] = (),
) -> list[Option]:
    """options_for_uncached, remembered for the same catalog and config
    (objects, compared by identity: a changed config is a new object)."""
    owners = (models, config)
    key = (need, tuple(s.model_family for s in subscriptions),
           tuple(s.model_family for s in available))
    found = MEMO.get(owners, key)
    if found is None:
        found = options_for_uncached(need, models, config, subscriptions, available)
        MEMO.answers[key] = found
    return found


def options_for_uncached(
    need: Need,
    models: list[Model],
    config: ScoringConfig,
    subscriptions: Sequence[Subscription],
    available: Sequence[Subscription] = (),
) -> list[Option]:
    """Every way ``need`` may be paid, among the models any strategy may give
    it (``ranked_models``: band, downgrade, capable; window permitting):

    - per subscription family, its best model there: the first in the seed's
      order, or under the ``fit`` objective the best rated;
    - from the API budget, the cheapest model (under ``fit``, each model
      not both dearer and no better rated than another).

    ``available``: the subscriptions with room (the 75 band's order reads it)."""
    if need.value <= 0:
        return []
    ranked = ranked_models(need, models, config, list(available))
    options: list[Option] = []
    for sub in subscriptions:
        family = [
            (rank, r.model) for rank, r in enumerate(ranked) if r.model.family == sub.model_family
        ]
        if not family:
            continue
        if config.objective == "fit":
            rank, model = max(family, key=lambda x: (worth(need.value, x[1], need.domain, config),
                                                     -x[0]))
        else:
            rank, model = family[0]
        options.append(Option(sub.model_family, model, float(need.total),
                              worth(need.value, model, need.domain, config), rank))
    priced = [
        (calculate_cost(r.model, need.input_tokens, need.output_tokens), rank, r.model)
        for rank, r in enumerate(ranked)
    ]
    if config.objective == "fit":
        kept: list[tuple[float, int, Model]] = []
        best = -1.0
        for cost, rank, model in sorted(priced, key=lambda x: (x[0], price_key(x[2]))):
            gain = worth(need.value, model, need.domain, config)
            if gain > best + NET_TOLERANCE:
                kept.append((cost, rank, model))
                best = gain
        priced = kept
    elif priced:
        priced = [min(priced, key=lambda x: (x[0], price_key(x[2])))]
    options += [
        Option(API, model, cost, worth(need.value, model, need.domain, config), rank)
        for cost, rank, model in priced
    ]
    return options
