"""The store's state: what one document (or database) holds, and the only
code that changes it.

Sections, each keyed by issue (``owner/repo#number``) unless said: the
subscriptions' and the API budget's counters, reservations, issue records
(``IssueRecord``: the bot's comment, its own label, the issue's last known
time), dependencies, delivery ids, reported usage, applied exports, and the
online strategy's history. Entries are frozen and replaced, never changed in
place: a store's parsed copy is shared between threads, and a commit finds
what it changed by identity (see bot/store/journal.py).

A reservation step and its exact undo are one object, ``ReservationStep``,
next to the state it changes.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import operator
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Annotated, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from model_assigner.core.config_subscriptions import SubscriptionsConfig
from model_assigner.core.quota import Ledger, release_charge, roll_over, update_quota_tracking
from model_assigner.core.types import ApiBudget, Observation, Payment, Subscription, as_utc
from model_assigner.core.usage import EstimateClass, EstimateSnapshot, IssueUsage

# Format 2: the issue records' section is ``records`` (format 1 called it
# ``comments``), and the JSON store keeps a journal next to the document.
STATE_VERSION = 2
# Formats read and upgraded on the way in.
OLD_VERSIONS = frozenset({1})
# GitHub lets a delivery be redelivered for three days; we remember ids a little
# longer, and never more than this many, so the document stays small.
DELIVERY_MEMORY = timedelta(days=4)
DELIVERY_LIMIT = 5000
# Usage records (bot/usage_store.py): past USAGE_HIGH, the oldest closed ones
# go until USAGE_KEEP are left (an estimate kept for a late report first, then
# finished issues with reports, the calibration's samples).
USAGE_HIGH = 6000
USAGE_KEEP = 5000
UNKNOWN_CLASS = "unknown"
# What one delivery id may be: GitHub sends a UUID; ids are not signed, so
# anything longer or stranger is refused before it can reach the store.
DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
# What one issue may keep of the issues it names as dependencies: a body can
# name ten thousand, and the store is shared by every repository.
MAX_DEPENDENCIES = 20
# An issue key: owner/name (100 characters each at most) '#' number.
MAX_ISSUE_KEY_CHARS = 220
# The online strategy learns from this period and the last: two months and a bit.
HISTORY_MEMORY = timedelta(days=64)

_NEVER = datetime.max.replace(tzinfo=UTC)


def _bounded_references(value: object) -> object:
    """At most MAX_DEPENDENCIES issue keys, each of a sane length: a store
    written before the bound was set is read, its overlong lists cut (they are
    worked out again from the issue's body on its next delivery)."""
    if isinstance(value, list):
        return [
            item for item in value if not isinstance(item, str) or len(item) <= MAX_ISSUE_KEY_CHARS
        ][:MAX_DEPENDENCIES]
    return value


# One issue's dependencies, bounded. Replaced, never changed in place: the
# store's parsed copy is shared between threads (see _writable_copy).
Dependencies = Annotated[list[str], BeforeValidator(_bounded_references)]


class StoreError(RuntimeError):
    """The store cannot be read or written; ``str()`` names the file and problem."""


class Reservation(BaseModel):
    """The quota one issue holds: replaced on re-assignment, released on
    deferral, 'not planned' or deletion, kept as usage on completion.
    Frozen: replaced, never changed in place (the store's parsed copy is
    shared between threads)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(max_length=200)
    payment: Payment
    charged_at: datetime
    override_by: str | None = Field(default=None, max_length=200)
    # The estimate's class, for usage reports and calibration (absent on
    # reservations made before them).
    estimated: EstimateClass | None = None

    @property
    def tokens(self) -> int:
        return self.payment.tokens

    def snapshot(self) -> EstimateSnapshot:
        """The estimate this reservation charged, as a usage report needs it."""
        known = self.estimated
        return EstimateSnapshot(
            model=self.model,
            payment=self.payment,
            charged_at=self.charged_at,
            complexity=known.complexity if known else UNKNOWN_CLASS,
            domain=known.domain if known else UNKNOWN_CLASS,
            base_tokens=known.base_tokens if known else self.payment.tokens,
            calibration=known.calibration if known else 1.0,
        )

    @property
    def cost_usd(self) -> float:
        return self.payment.cost_usd


def issue_time(value: object) -> datetime | None:
    """GitHub's ``updated_at`` (``2026-11-25T21:12:10Z``) as an aware time;
    None when absent or not a time."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


class IssueRecord(BaseModel):
    """What the bot knows of an issue on GitHub: where its comment is and a
    digest of its text, so an unchanged explanation costs no GitHub call at
    all (``id`` None: no comment known, find it by its marker). Frozen, like
    Reservation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int | None = None
    digest: str = ""
    # The model label the bot itself put on the issue (None when a person's
    # override label stands). Kept across a close, so that on reopen the
    # bot's own label is not mistaken for a person's choice.
    label: str | None = None
    # The issue's `updated_at` when it was last decided, closed or deleted: a
    # delivery whose payload is newer is decided from its payload, without
    # reading the issue; an older or equal one reads the issue from GitHub.
    issue_updated_at: str | None = None


class State(BaseModel):
    # Finite numbers only: what cannot be written back as JSON numbers
    # (1e400 becomes null) must not be read either.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    version: int = STATE_VERSION
    subscriptions: dict[str, Subscription] = Field(default_factory=dict)
    api_budget: ApiBudget
    reservations: dict[str, Reservation] = Field(default_factory=dict)
    records: dict[str, IssueRecord] = Field(default_factory=dict)
    dependencies: dict[str, Dependencies] = Field(default_factory=dict)

    deliveries: dict[str, datetime] = Field(default_factory=dict)
    # Reported usage per issue, and the provider exports applied by
    # `usage reconcile --apply` (bot/usage_store.py).
    usage: dict[str, IssueUsage] = Field(default_factory=dict)
    reconciled: dict[str, datetime] = Field(default_factory=dict)
    # The online strategy's history (core/online.py): each issue decided this
    # period or the last, first seen when; and the open issues it deferred,
    # to be decided again as prices fall.
    seen: dict[str, Observation] = Field(default_factory=dict)
    deferred: dict[str, Observation] = Field(default_factory=dict)

    # The format the document was read in, when older than STATE_VERSION
    # (never written: the document is written in the current format).
    read_version: int = Field(default=STATE_VERSION, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: object) -> object:
        """Format 1 -> 2: ``comments`` became ``records``."""
        if isinstance(data, dict) and data.get("version") in OLD_VERSIONS:
            data = dict(data)
            if "comments" in data:
                data["records"] = data.pop("comments")
            data["read_version"] = data["version"]
            data["version"] = STATE_VERSION
        return data

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        # A newer model-assigner's store may mean what this one cannot read.
        if value != STATE_VERSION:
            raise ValueError(
                f"store format {value}; this model-assigner reads format {STATE_VERSION}"
                f" (and upgrades {', '.join(map(str, sorted(OLD_VERSIONS)))})"
            )
        return value



    def ledger(self) -> Ledger:
        """A view whose charges change this state's counters."""
        return Ledger(list(self.subscriptions.values()), self.api_budget)

    def record(self, issue: str) -> IssueRecord | None:
        """What the bot knows of the issue on GitHub (None: nothing yet)."""
        return self.records.get(issue)

    def put_record(self, issue: str, record: IssueRecord) -> None:
        self.records[issue] = record

    def set_dependencies(self, issue: str, dependencies: list[str]) -> None:
        """Replace the issue's dependencies (none: the entry goes)."""
        if dependencies:
            self.dependencies[issue] = dependencies
        else:
            self.dependencies.pop(issue, None)

    def reserve(self, issue: str, reservation: Reservation) -> None:
        """Replace the issue's reservation: release the old charge, take the new."""
        self.release(issue)
        update_quota_tracking(self.ledger(), reservation.payment)
        self.reservations[issue] = reservation

    def release(self, issue: str) -> Reservation | None:
        old = self.reservations.pop(issue, None)
        if old is not None:
            release_charge(self.ledger(), old.payment, old.charged_at)
        return old

    def settle(self, issue: str) -> Reservation | None:
        """The work was done: the charge stays as usage, the record goes.
        Its reported usage, if any comes later, replaces it then."""
        held = self.reservations.pop(issue, None)
        if held is not None and (held.tokens or held.cost_usd):
            # Kept with its estimate, so that a report coming after the close
            # replaces the estimate then.
            record = self.usage.get(issue) or IssueUsage(estimate=held.snapshot())
            self.usage[issue] = record.model_copy(update={"estimate_held": True})
            if len(self.usage) > USAGE_HIGH:
                self.trim_usage(USAGE_KEEP)
        return held

    def trim_usage(self, keep: int) -> None:
        """Drop the oldest closed issues' usage records until ``keep`` are
        left: first those holding only an estimate, then finished issues
        with reports. Open issues' records and reports waiting for a
        decision stay (their number is bounded where they are recorded)."""
        def age(item: tuple[str, IssueUsage]) -> datetime:
            record = item[1]
            times = [run.reported_at for run in record.runs.values()]
            if record.estimate is not None:
                times.append(record.estimate.charged_at)
            return max(times, default=_NEVER)

        closed = [
            item for item in self.usage.items()
            if item[0] not in self.reservations and item[1].estimate is not None
        ]
        idle = sorted((i for i in closed if not i[1].charged_runs), key=age)
        finished = sorted((i for i in closed if i[1].charged_runs), key=age)
        excess = len(self.usage) - keep
        for key, _ in [*idle, *finished][: max(0, excess)]:
            del self.usage[key]

    def forget_issue(
        self, issue: str, deleted: bool = False, updated_at: str | None = None
    ) -> None:
        """A closed issue no longer blocks anything; a deleted one has no
        comment left to find again. ``updated_at``, the issue's time in the
        closing delivery, is kept: a late delivery of an older event is then
        checked against GitHub instead of being decided from its payload."""
        self.dependencies.pop(issue, None)
        self.deferred.pop(issue, None)
        record = None if deleted else self.records.get(issue)
        if issue_time(updated_at) is None:
            if deleted:
                self.records.pop(issue, None)
            return
        if record is None:
            self.records[issue] = IssueRecord(issue_updated_at=updated_at)
        else:
            known = issue_time(record.issue_updated_at)
            if known is None or known < (issue_time(updated_at) or known):
                self.records[issue] = record.model_copy(update={"issue_updated_at": updated_at})

    def observe(self, issue: str, seen: Observation, deferred: bool) -> None:
        """Record a decision in the online strategy's history: the issue keeps
        the time it was first seen; a deferred one waits to be decided again.
        Entries from before the last period are dropped (oldest first)."""
        first = self.seen.pop(issue, None)
        if first is not None:
            seen = seen.model_copy(update={"seen_at": first.seen_at})
        self.seen[issue] = seen
        if deferred:
            self.deferred[issue] = seen
        else:
            self.deferred.pop(issue, None)
        self.forget_history_before(seen.seen_at - HISTORY_MEMORY)

    def forget_history_before(self, cutoff: datetime) -> None:
        """Drop the history's entries seen before ``cutoff``, oldest first.
        The database's state overrides it: a delete now and then, not a
        read of the whole history per decision."""
        while self.seen:
            oldest = next(iter(self.seen))
            if self.seen[oldest].seen_at >= cutoff:
                break
            del self.seen[oldest]

    def dependents_of(self, issue: str) -> list[str]:
        """The issues whose stored dependencies name ``issue`` (each list is
        bounded). The database's state asks its index for just those rows."""
        return [other for other, deps in self.dependencies.items()
                if other != issue and issue in deps]

    def other_repositories_known(self, repo: str) -> bool:
        """Whether the store knows issues of a repository other than ``repo``
        (a live reservation, or an entry of the online history): then one
        repository's share of the quota is capped (``repository_share``)."""
        prefix = f"{repo}#"
        return any(not key.startswith(prefix) for key in self.reservations) or any(
            not key.startswith(prefix) for key in self.seen)

    def reservations_of(self, repo: str) -> list[Reservation]:
        """The live reservations of one repository's issues (its share of the
        quota). The database's state reads just those rows."""
        prefix = f"{repo}#"
        return [held for key, held in self.reservations.items() if key.startswith(prefix)]

    def history_since(self, since: datetime, but: str) -> list[Observation]:
        """The online strategy's history seen at or after ``since``, but the
        issue ``but``: what a decision reads of it (core.online_history.forecast
        ignores anything older). The database's state reads just those rows."""
        since = as_utc(since)
        return [seen for key, seen in self.seen.items()
                if key != but and as_utc(seen.seen_at) >= since]

    def remember_delivery(self, delivery_id: str, now: datetime) -> None:
        self.deliveries[delivery_id] = as_utc(now)

    def prune_deliveries(self, now: datetime) -> None:
        """Forget ids older than DELIVERY_MEMORY, then the oldest beyond
        DELIVERY_LIMIT (among equal times, the first recorded). This runs on
        every commit, with thousands of ids: the passes over them are C's,
        and the usual case (the oldest are the first recorded) looks at the
        few that go."""
        cutoff = as_utc(now) - DELIVERY_MEMORY
        deliveries = self.deliveries
        try:
            if deliveries and min(deliveries.values()) < cutoff:
                older = functools.partial(operator.gt, cutoff)
                for key in list(itertools.compress(deliveries, map(older, deliveries.values()))):
                    del deliveries[key]
            excess = len(deliveries) - DELIVERY_LIMIT
            if excess > 0:
                head = list(itertools.islice(deliveries.items(), excess))
                rest = itertools.islice(deliveries.values(), excess, None)
                if max(moment for _, moment in head) <= min(rest, default=_NEVER):
                    going = head
                else:
                    going = heapq.nsmallest(excess, deliveries.items(), key=operator.itemgetter(1))
                for key, _ in going:
                    del deliveries[key]
        except TypeError:
            # Naive and aware times mixed (a naive time is read as UTC, like
            # everywhere else, but cannot be compared with an aware one).
            kept = {k: v for k, v in deliveries.items() if as_utc(v) >= cutoff}
            if len(kept) > DELIVERY_LIMIT:
                newest = sorted(kept.items(), key=lambda item: as_utc(item[1]))[-DELIVERY_LIMIT:]
                kept = dict(newest)
            self.deliveries = kept


def apply_resets(state: State, now: datetime) -> None:
    """The daily and monthly resets due at ``now``, never undone by a clock that
    is behind. Workers take their time before they queue for the store's
    lock, so a change timed 23:59:59.9 can be written after one timed
    00:00:00.1 that has already moved the day on: the engine's roll-over would
    then see another day, zero today's usage again and move the day back
    (and the next change would zero it once more). Time in the store only
    moves forward: the day already reached stands for a clock behind it, so
    each reset happens exactly once, whichever worker gets there first."""
    moment = as_utc(now)
    for sub in state.subscriptions.values():
        if sub.usage_day is not None and sub.usage_day > moment.date():
            moment = datetime.combine(sub.usage_day, dt_time.min, tzinfo=UTC)
    roll_over(state.ledger(), moment)


def initial_state(defaults: SubscriptionsConfig, now: datetime) -> State:
    """The state a store starts from at ``now``: the config's counters, and
    first resets derived from its reset days (or its pinned reset dates)."""
    ledger = defaults.ledger_at(now)
    return State(
        subscriptions={s.model_family: s for s in ledger.subscriptions},
        api_budget=ledger.budget,
    )


def sync_with_config(state: State, defaults: SubscriptionsConfig, now: datetime) -> None:
    """Limits come from config (an operator edits them there); counters and
    reset dates come from the store. A family new in config starts fresh."""
    synced: dict[str, Subscription] = {}
    for configured in defaults.subscriptions:
        stored = state.subscriptions.get(configured.model_family)
        if stored is None:
            synced[configured.model_family] = configured.at(now)
        else:
            synced[configured.model_family] = stored.model_copy(
                update={
                    "monthly_cost": configured.monthly_cost,
                    "token_limit_daily": configured.token_limit_daily,
                    "token_limit_monthly": configured.token_limit_monthly,
                }
            )
    state.subscriptions = synced
    state.api_budget.monthly_limit_usd = defaults.api_budget.monthly_limit_usd


@dataclass(frozen=True)
class Counters:
    """The quota counters one reservation step can change."""

    subscriptions: dict[str, tuple[date | None, int, int]]
    spent_usd: float

    @classmethod
    def of(cls, state: State) -> Counters:
        return cls(
            {
                family: (sub.usage_day, sub.tokens_used_today, sub.tokens_used_month)
                for family, sub in state.subscriptions.items()
            },
            state.api_budget.spent_usd,
        )


@dataclass
class ReservationStep:
    """One issue's reservation, and its exact undo: what the step found
    before it changed anything, and the counters after. A write-back to
    GitHub that fails undoes exactly this step, keeping what other
    deliveries changed in between (their charges, other issues' entries).

    ``begin`` releases the issue's reservation (the decision is then made
    on the quota without it); ``charge`` takes the new one, records the
    issue's dependencies and marks its record as not yet matching GitHub;
    ``undo`` puts back what ``begin`` found."""

    issue: str
    before: Counters
    reservation: Reservation | None
    dependencies: list[str] | None
    record: IssueRecord | None
    seen: Observation | None
    deferred: Observation | None
    after: Counters | None = None

    @classmethod
    def begin(cls, state: State, issue: str) -> ReservationStep:
        step = cls(
            issue,
            Counters.of(state),
            state.reservations.get(issue),
            state.dependencies.get(issue),
            state.records.get(issue),
            state.seen.get(issue),
            state.deferred.get(issue),
        )
        state.release(issue)
        return step

    def charge(
        self, state: State, reservation: Reservation | None, dependencies: list[str]
    ) -> None:
        if reservation is not None:
            state.reserve(self.issue, reservation)
        state.set_dependencies(self.issue, dependencies)
        # Until the delivery's record is written, the issue's state on
        # GitHub is not known to match any payload: mark it so (a crash
        # in between leaves the mark); undo puts the record back.
        record = self.record
        state.records[self.issue] = (
            record.model_copy(update={"issue_updated_at": None})
            if record is not None
            else IssueRecord()
        )
        self.after = Counters.of(state)

    def undo(self, state: State, written: list[IssueRecord] | None = None) -> None:
        """Put back what ``begin`` found. ``written``: records of comments
        the failed write-back may have created; the last is kept, so the
        retry finds it (by its id, or by listing when its answer was lost)
        instead of posting a second one."""
        after = self.after or Counters.of(state)
        for family, sub in state.subscriptions.items():
            before = self.before.subscriptions.get(family)
            now = after.subscriptions.get(family)
            if before is None or now is None:
                continue
            if sub.usage_day == now[0]:  # else a daily reset has zeroed it since
                sub.tokens_used_today = max(0, sub.tokens_used_today + before[1] - now[1])
            sub.tokens_used_month = max(0, sub.tokens_used_month + before[2] - now[2])
        budget = state.api_budget
        if budget.spent_usd == after.spent_usd:
            budget.spent_usd = self.before.spent_usd  # exact, no float drift
        else:  # another issue was charged meanwhile: keep its share
            budget.spent_usd = max(0.0, budget.spent_usd + self.before.spent_usd - after.spent_usd)
        key = self.issue
        _put_back(state.reservations, key, self.reservation)
        _put_back(state.dependencies, key, self.dependencies)
        _put_back(state.records, key, self.record)
        _put_back(state.seen, key, self.seen)
        _put_back(state.deferred, key, self.deferred)
        if written:
            previous = state.records.get(key)
            state.records[key] = written[-1].model_copy(
                update={"label": previous.label if previous is not None else None}
            )


V = TypeVar("V")


def _put_back(section: dict[str, V], key: str, value: V | None) -> None:
    """The entry as it was: the same value (last in order), or none."""
    section.pop(key, None)
    if value is not None:
        section[key] = value
