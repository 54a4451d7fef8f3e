"""The ``online`` strategy's history and its forecast (step 1 of core/online.py):
the period the prices plan for (up to the first reset ahead), what the history
keeps of an issue, and the issues expected in the rest of the period.
"""


from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from model_assigner.core.assessment import Assessment
from model_assigner.core.config import ScoringConfig
from model_assigner.core.quota import Ledger, add_months
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.types import Decision, Observation, as_utc

# --- the period ---------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The stretch of time the prices plan for: up to the first reset ahead."""

    start: datetime
    end: datetime
    now: datetime

    @property
    def elapsed(self) -> float:
        """The share of the period gone, 0..1."""
        length = (self.end - self.start).total_seconds()
        gone = (self.now - self.start).total_seconds()
        return min(1.0, max(0.0, gone / length)) if length > 0 else 1.0

    @property
    def hours_left(self) -> float:
        return max(0.0, (self.end - self.now).total_seconds() / 3600)

    def share_of(self, moment: datetime) -> float:
        """Where ``moment`` falls in the period before this one, 0..1."""
        before = add_months(self.start, -1)
        length = (self.start - before).total_seconds()
        return (as_utc(moment) - before).total_seconds() / length if length > 0 else 0.0


def period_of(ledger: Ledger, now: datetime) -> Period:
    """The period ends at the first reset ahead among the resources that
    have a monthly limit (the API budget always has one) and began a month
    before. Subscriptions resetting at another time are priced on this one
    clock (a documented simplification)."""
    now = as_utc(now)
    ends = [ledger.budget.reset_date]
    ends += [s.reset_date for s in ledger.subscriptions if s.token_limit_monthly is not None]
    end = min(as_utc(e) for e in ends)
    if end <= now:  # a ledger not rolled over: the reset is due now
        end = now + timedelta(seconds=1)
    return Period(start=add_months(end, -1), end=end, now=now)


def history_start(ledger: Ledger, now: datetime) -> datetime:
    """The oldest an issue of the history may have been seen and still count:
    the start of the last period (``forecast`` reads this period and the last,
    nothing older). A store reads only the history from here on."""
    return add_months(period_of(ledger, now).start, -1)


# --- the history --------------------------------------------------------------


def observe(assessment: Assessment, now: datetime) -> Observation:
    """What the history keeps of an issue seen at ``now``."""
    t = assessment.tokens
    return Observation(
        value=assessment.value,
        domain=assessment.domain,
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        working_set=t.working_set,
        seen_at=now,
    )


def observation_of(decision: Decision, now: datetime) -> Observation:
    """What the history keeps of an issue, from its decision."""
    t = decision.tokens
    return Observation(
        value=decision.value_score,
        domain=decision.breakdown.domain,
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        working_set=t.working_set,
        seen_at=now,
    )



def forecast(
    history: Iterable[Observation], period: Period, config: ScoringConfig
) -> tuple[list[tuple[Observation, float]], Reason, int, int]:
    """The issues expected in the rest of the period, each with a weight,
    where they come from (a PRICE_BASIS reason), and how many issues of
    this period and the last one were seen."""
    online = config.online
    this, last = [], []
    before = add_months(period.start, -1)
    # the same point of the last period: its issues from then on forecast ours
    same_point = before + (period.start - before) * period.elapsed
    had_last = False
    for item in history:
        seen = item.seen_at
        if period.start <= seen <= period.now:
            this.append(item)
        elif before <= seen < period.start:
            had_last = True
            if seen >= same_point:
                last.append(item)
    # The issues seen count as at least min_elapsed_hours' worth: a few
    # issues in the first hours say little about a month's arrival rate.
    length = (period.end - period.start).total_seconds()
    floor = online.min_elapsed_hours * 3600 / length if length > 0 else 1.0
    elapsed = min(1.0, max(period.elapsed, floor))
    weight_last = online.last_period_weight if had_last else 0.0
    scale = (1 - elapsed) / elapsed if elapsed > 0 else 0.0
    items = [(item, scale * (1 - weight_last)) for item in this]
    items += [(item, weight_last) for item in last]
    basis = reason(ReasonCode.PRICE_BASIS, seen=len(this),
                   last=len(last) if had_last else None, near_reset=False)
    return [(i, w) for i, w in items if w > 0], basis, len(this), int(had_last)
