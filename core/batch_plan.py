"""What planning a batch produces, whichever strategy made it.

Its own module so that the planners (core/batch.py, core/optimal.py) both
import it and neither has to import the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from model_assigner.core.quota import Ledger
from model_assigner.core.types import Decision


@dataclass
class BatchPlan:
    """Decisions in the order the tasks were given, and the ledger after them.

    ``upper_bound`` is the LP bound on the value any plan can capture: set by
    ``optimal`` (core/optimal.py), None for the greedy strategies. ``method``
    says how ``optimal`` found its plan ("milp" or "lp-round"), and
    ``proven_optimal`` whether HiGHS proved it the best possible."""

    decisions: list[Decision]
    ledger: Ledger
    upper_bound: float | None = None
    method: str | None = None
    proven_optimal: bool | None = None

    @property
    def value(self) -> float:
        """The total value score of the tasks the plan assigns."""
        return math.fsum(d.value_score for d in self.decisions if d.model is not None)

    @property
    def api_spend_usd(self) -> float:
        return math.fsum(d.payment.cost_usd for d in self.decisions if d.payment is not None)

    @property
    def gap(self) -> float | None:
        """How much value the bound leaves room for (never negative)."""
        return None if self.upper_bound is None else max(0.0, self.upper_bound - self.value)

    @property
    def gap_ratio(self) -> float | None:
        """The gap as a fraction of the bound (0 when the bound is 0)."""
        gap = self.gap
        if gap is None or self.upper_bound is None:
            return None
        return gap / self.upper_bound if self.upper_bound > 0 else 0.0
