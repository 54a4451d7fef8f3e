"""Reported usage in the store: recording a run, charging it, keeping estimates.

Every function here changes a ``State`` inside the caller's transaction, so a
report is recorded and charged in one atomic write, or not at all.

The rules (docs/usage-reports.md):
- The first charged report of an issue replaces its estimate: the
  reservation's charge is given back and the reported usage charged; later
  runs add up. A re-decision of an issue that already reported usage
  reserves nothing more (what it uses is what its reports say).
- A report for an issue with no decision is kept and charged once one exists.
- A run is charged in the periods it ended in (a run of last month does not
  count against this month's quota).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from model_assigner.bot.store.state import UNKNOWN_CLASS, USAGE_HIGH, USAGE_KEEP, State
from model_assigner.core.calibration import Sample, learn, with_learned
from model_assigner.core.config import CalibrationConfig, LearnedFactor, ScoringConfig
from model_assigner.core.quota import add_months, release_charge
from model_assigner.core.types import Decision, Model, as_utc
from model_assigner.core.usage import (
    Charge,
    EstimateSnapshot,
    IssueUsage,
    Run,
    UsageReport,
    charge_run,
    estimate_class,
)

UNKNOWN = UNKNOWN_CLASS
# A reporter is authenticated, but its numbers are not ours to trust: these
# bound what it can make the store hold.
MAX_RUNS_PER_ISSUE = 500
MAX_WAITING_ISSUES = 1000  # issues with reports and no decision yet


class TooManyReports(ValueError):
    """A report the store will not keep (``str()`` says which limit)."""


@dataclass
class ReportOutcome:
    """What recording a report did: ``status`` is ``charged``, ``pending``
    (no decision yet) or ``duplicate`` (this run was already recorded)."""

    status: str
    issue: str
    charges: list[Charge] = field(default_factory=list)
    record: IssueUsage | None = None


def snapshot(decision: Decision, now: datetime) -> EstimateSnapshot | None:
    if decision.model is None or decision.payment is None:
        return None
    known = estimate_class(decision)
    return EstimateSnapshot(
        model=decision.model,
        payment=decision.payment,
        charged_at=as_utc(now),
        complexity=known.complexity,
        domain=known.domain,
        base_tokens=known.base_tokens,
        calibration=known.calibration,
    )


def _give_back_estimate(state: State, key: str, record: IssueUsage) -> IssueUsage:
    """The estimate stops counting: its reservation's charge is released
    (the reservation stays, at zero, so the issue's model is still known as
    the bot's own), or, for a closed issue whose estimate was kept as usage,
    the snapshot's charge."""
    held = state.reservations.get(key)
    if held is not None:
        if held.payment.tokens or held.payment.cost_usd:
            release_charge(state.ledger(), held.payment, held.charged_at)
            zero = held.payment.model_copy(update={"tokens": 0, "cost_usd": 0.0})
            state.reservations[key] = held.model_copy(update={"payment": zero})
    elif record.estimate_held and record.estimate is not None:
        release_charge(state.ledger(), record.estimate.payment, record.estimate.charged_at)
    return record.model_copy(update={"estimate_held": False})


def _estimate_from_reservation(state: State, key: str) -> EstimateSnapshot | None:
    """The decision an open issue's reservation holds (its class is unknown
    when it was made before usage reports existed)."""
    held = state.reservations.get(key)
    if held is None or not (held.payment.tokens or held.payment.cost_usd):
        return None
    return held.snapshot()


def _charge_pending(
    state: State, key: str, record: IssueUsage, models: Sequence[Model]
) -> tuple[IssueUsage, list[Charge]]:
    estimate = record.estimate
    pending = sorted(record.pending_runs.items(), key=lambda item: item[1].reported_at)
    if estimate is None or not pending:
        return record, []
    record = _give_back_estimate(state, key, record)
    runs = dict(record.runs)
    charged: list[Charge] = []
    for run_id, run in pending:
        charges = charge_run(estimate, run.lines, state.ledger(), models, run.ended_at)
        runs[run_id] = run.model_copy(update={"charges": charges})
        charged += charges
    return record.model_copy(update={"runs": runs}), charged


def record_report(
    state: State, key: str, report: UsageReport, models: Sequence[Model], now: datetime
) -> ReportOutcome:
    """Record one run for issue ``key`` and charge it when the issue has a
    decision. The same run id twice is recorded once."""
    now = as_utc(now)
    record = state.usage.get(key) or IssueUsage()
    if report.run_id in record.runs:
        return ReportOutcome("duplicate", key, record=record)
    if len(record.runs) >= MAX_RUNS_PER_ISSUE:
        raise TooManyReports(f"{key} already has {MAX_RUNS_PER_ISSUE} runs reported")
    if record.estimate is None:
        current = _estimate_from_reservation(state, key)
        if current is not None:
            record = record.model_copy(update={"estimate": current})
    ended = min(report.ended_at or now, now)
    run = Run(reported_at=now, ended_at=ended, source=report.source, lines=report.lines)
    record = record.model_copy(update={"runs": {**record.runs, report.run_id: run}})
    if record.estimate is None:
        waiting = sum(1 for r in state.usage.values() if r.estimate is None)
        if key not in state.usage and waiting >= MAX_WAITING_ISSUES:
            raise TooManyReports(
                f"{MAX_WAITING_ISSUES} issues already wait for a decision with reports"
            )
        state.usage[key] = record
        prune_usage(state)
        return ReportOutcome("pending", key, record=record)
    record, charges = _charge_pending(state, key, record, models)
    state.usage[key] = record
    prune_usage(state)
    return ReportOutcome("charged", key, charges=charges, record=record)


def note_decision(
    state: State, key: str, decision: Decision, models: Sequence[Model], now: datetime
) -> list[Charge]:
    """After a decision is written back, for an issue with reports: charge
    the reports that were waiting for it; and when the issue already
    reported usage, give the new reservation back (reported usage is its
    charge from now on). Other issues need nothing: their reservation holds
    the estimate."""
    snap = snapshot(decision, now)
    record = state.usage.get(key)
    if snap is None or record is None:  # the reservation holds the estimate
        return []
    record = record.model_copy(update={"estimate": snap, "estimate_held": False})
    if record.charged_runs:
        record = _give_back_estimate(state, key, record)
    record, charges = _charge_pending(state, key, record, models)
    state.usage[key] = record
    return charges


def prune_usage(state: State) -> None:
    """Past USAGE_HIGH records, the oldest closed ones go (State.trim_usage)."""
    if len(state.usage) > USAGE_HIGH:
        state.trim_usage(USAGE_KEEP)


def learned_table(state: State, scoring: ScoringConfig) -> dict[str, LearnedFactor]:
    """The calibration the store's finished issues teach (empty when off).
    Asked on every decision: the last table is kept while its samples are
    the same (see calibration_samples)."""
    global _LAST_TABLE
    if not scoring.calibration.enabled:
        return {}
    samples = calibration_samples(state)
    settings = scoring.calibration
    last = _LAST_TABLE
    if last is not None and last[0] == settings and last[1] == samples:
        return last[2]
    table = learn(samples, settings)
    _LAST_TABLE = (settings, samples, table)
    return table


def calibrated(state: State, scoring: ScoringConfig) -> ScoringConfig:
    """``scoring`` whose token estimates use what the store has learned."""
    return with_learned(scoring, learned_table(state, scoring))


# Per process: each usage record's sample (None: not one), by the record's
# identity. Records are frozen and the store's codec hands out the same
# object for an unchanged entry, so on each decision only the records that
# changed are looked at again; the record itself is held, so its id cannot
# be reused by another while it is in here.
_SAMPLES: dict[int, tuple[IssueUsage, Sample | None]] = {}
_LAST_TABLE: tuple[CalibrationConfig, list[Sample], dict[str, LearnedFactor]] | None = None


def _sample(record: IssueUsage) -> Sample | None:
    cached = _SAMPLES.get(id(record))
    if cached is not None and cached[0] is record:
        return cached[1]
    estimate = record.estimate
    sample = None
    if (
        estimate is not None
        and estimate.complexity != UNKNOWN
        and estimate.base_tokens > 0
        and record.charged_runs
    ):
        sample = Sample(
            estimate.complexity, estimate.domain, estimate.base_tokens, record.actual_tokens
        )
    _SAMPLES[id(record)] = (record, sample)
    return sample


def calibration_samples(state: State) -> list[Sample]:
    """Finished issues (closed: no reservation left) that reported usage."""
    if len(_SAMPLES) > 2 * len(state.usage) + 1024:
        keep = {id(record) for record in state.usage.values()}
        for stale in [key for key in _SAMPLES if key not in keep]:
            _SAMPLES.pop(stale, None)
    reservations = state.reservations
    samples = []
    for key, record in state.usage.items():
        if key in reservations:
            continue
        sample = _sample(record)
        if sample is not None:
            samples.append(sample)
    return samples


def usage_summary(state: State) -> dict[str, Any]:
    """Estimated vs actual this month, over the issues whose runs reported:
    per payer, the tokens their estimates reserved and the tokens reported;
    and the API dollars both ways."""
    start = add_months(state.api_budget.reset_date, -1)
    by_payer: dict[str, dict[str, float]] = defaultdict(
        lambda: {"estimated_tokens": 0, "actual_tokens": 0}
    )
    issues = 0
    estimated_usd = actual_usd = 0.0
    for record in state.usage.values():
        runs = [run for run in record.charged_runs if as_utc(run.ended_at) >= start]
        if not runs or record.estimate is None:
            continue
        issues += 1
        by_payer[record.estimate.payment.label]["estimated_tokens"] += record.estimate.tokens
        estimated_usd += record.estimate.payment.cost_usd
        for run in runs:
            for charge in run.charges:
                by_payer[charge.payment.label]["actual_tokens"] += charge.payment.tokens
                actual_usd += charge.payment.cost_usd
    return {
        "issues_reported": issues,
        "since": start.isoformat(),
        "by_payer": {label: {k: int(v) for k, v in row.items()} for label, row in
                     sorted(by_payer.items())},
        "estimated_api_usd": round(estimated_usd, 6),
        "actual_api_usd": round(actual_usd, 6),
    }
