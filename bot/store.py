"""The JSON quota store: subscriptions, API spend, reservations, deliveries.

One small JSON document, rewritten whole under an exclusive file lock:
temporary file, fsync, rename, fsync of the folder. A crash at any instant
leaves the old document or the new one, never a torn one, and concurrent
workers never lose each other's updates.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.locks import file_lock
from core.config import SubscriptionsConfig
from core.loader import describe_validation_error
from core.quota import Ledger, release_charge, roll_over, update_quota_tracking
from core.types import ApiBudget, Payment, Subscription, as_utc

STATE_VERSION = 1
# GitHub lets a delivery be redelivered for three days; we remember ids a little
# longer, and never more than this many, so the document stays small.
DELIVERY_MEMORY = timedelta(days=4)
DELIVERY_LIMIT = 5000


class StoreError(RuntimeError):
    """The store cannot be read or written; ``str()`` names the file and problem."""


class Reservation(BaseModel):
    """The quota one issue holds: replaced on re-assignment, released on
    deferral, 'not planned' or deletion, kept as usage on completion."""

    model_config = ConfigDict(extra="forbid")

    model: str
    payment: Payment
    charged_at: datetime
    override_by: str | None = None

    @property
    def tokens(self) -> int:
        return self.payment.tokens

    @property
    def cost_usd(self) -> float:
        return self.payment.cost_usd


class CommentRecord(BaseModel):
    """Where the bot's comment is and a digest of its text, so an unchanged
    explanation costs no GitHub call at all."""

    model_config = ConfigDict(extra="forbid")

    id: int
    digest: str
    # The model label the bot itself put on the issue (None when a person's
    # override label stands). Kept across a close, so that on reopen the
    # bot's own label is not mistaken for a person's choice.
    label: str | None = None


class State(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = STATE_VERSION
    subscriptions: dict[str, Subscription] = Field(default_factory=dict)
    api_budget: ApiBudget
    reservations: dict[str, Reservation] = Field(default_factory=dict)
    comments: dict[str, CommentRecord] = Field(default_factory=dict)
    dependencies: dict[str, list[str]] = Field(default_factory=dict)
    deliveries: dict[str, datetime] = Field(default_factory=dict)

    def ledger(self) -> Ledger:
        """A view whose charges change this state's counters."""
        return Ledger(list(self.subscriptions.values()), self.api_budget)

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
        """The work was done: the charge stays as usage, the record goes."""
        return self.reservations.pop(issue, None)

    def forget_issue(self, issue: str, deleted: bool = False) -> None:
        """A closed issue no longer blocks anything; a deleted one has no
        comment left to find again."""
        self.dependencies.pop(issue, None)
        if deleted:
            self.comments.pop(issue, None)

    def remember_delivery(self, delivery_id: str, now: datetime) -> None:
        self.deliveries[delivery_id] = as_utc(now)

    def prune_deliveries(self, now: datetime) -> None:
        # as_utc on both sides: a naive time (read as UTC, like everywhere
        # else) compared with an aware one raises TypeError.
        cutoff = as_utc(now) - DELIVERY_MEMORY
        kept = {k: v for k, v in self.deliveries.items() if as_utc(v) >= cutoff}
        if len(kept) > DELIVERY_LIMIT:
            newest = sorted(kept.items(), key=lambda item: as_utc(item[1]))[-DELIVERY_LIMIT:]
            kept = dict(newest)
        if len(kept) != len(self.deliveries):
            self.deliveries = kept


def initial_state(defaults: SubscriptionsConfig) -> State:
    return State(
        subscriptions={s.model_family: s.model_copy() for s in defaults.subscriptions},
        api_budget=defaults.api_budget.model_copy(),
    )


def sync_with_config(state: State, defaults: SubscriptionsConfig) -> None:
    """Limits come from config (an operator edits them there); counters and
    reset dates come from the store. A family new in config starts fresh."""
    synced: dict[str, Subscription] = {}
    for configured in defaults.subscriptions:
        stored = state.subscriptions.get(configured.model_family)
        if stored is None:
            synced[configured.model_family] = configured.model_copy()
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


def parse_state(text: str, source: str) -> State:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    try:
        return State.model_validate_json(text)
    except ValidationError as exc:
        raise StoreError(describe_validation_error(source, exc)) from None


def serialize(state: State) -> str:
    return state.model_dump_json(indent=1) + "\n"


def write_atomically(path: Path, text: str) -> None:
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Store:
    def __init__(self, path: Path, defaults: SubscriptionsConfig) -> None:
        self.path = path
        self.defaults = defaults
        self.lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def _locked(self, exclusive: bool = True) -> Iterator[None]:
        """The store's lock; failing to take it (its folder is not a folder,
        or not writable) is a StoreError like any other store failure."""
        with ExitStack() as stack:
            try:
                stack.enter_context(file_lock(self.lock_path, exclusive=exclusive))
            except OSError as exc:
                raise StoreError(
                    f"{self.path}: cannot lock {self.lock_path} ({exc.strerror or exc})"
                ) from None
            yield

    def _load(self) -> tuple[State, str | None]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return initial_state(self.defaults), None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"{self.path}: cannot read ({exc})") from None
        state = parse_state(text, str(self.path))
        sync_with_config(state, self.defaults)
        return state, text

    def read(self) -> State:
        """A consistent snapshot, for reports; changes to it are not saved."""
        with self._locked(exclusive=False):
            return self._load()[0]

    @contextmanager
    def transaction(self, now: datetime) -> Iterator[State]:
        """Load, apply resets due at ``now``, let the caller change the state,
        save atomically; all under the exclusive lock. An exception inside
        leaves the file as it was."""
        with self._locked():
            state, before = self._load()
            roll_over(state.ledger(), now)
            state.prune_deliveries(now)
            yield state
            # Again after the caller's changes, so the saved document never
            # holds more than DELIVERY_LIMIT ids.
            state.prune_deliveries(now)
            after = serialize(state)
            if after != before:
                try:
                    write_atomically(self.path, after)
                except OSError as exc:
                    raise StoreError(
                        f"{self.path}: cannot write ({exc.strerror or exc}); "
                        "the previous document is intact"
                    ) from None

    def check(self) -> None:
        """Raise StoreError when the file on disk is not a valid store."""
        with self._locked(exclusive=False):
            self._load()

    def remove_stale_temporaries(self, older_than: float = 60.0) -> int:
        """Temporary files a crashed writer left behind (never a live one: a
        write takes milliseconds). Called at start-up."""
        removed = 0
        cutoff = time.time() - older_than
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
        return removed

    def ensure_writable(self) -> None:
        """Fail at start-up, not on the first delivery, when the folder is not writable."""
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe.") as _:
                pass
        except OSError as exc:
            raise StoreError(f"{folder}: not writable ({exc.strerror or exc})") from None
