"""The quota store on both back ends: the JSON file (bot/store/json_store.py,
with its file locks, bot/store/files.py) and PostgreSQL (bot/store/postgresql.py,
a real server).

The tests taking ``store`` run on each; those about the file itself (its
bytes, temporary files, rename) take ``file_store``. Everything runs against
real files or a real database; the crash and concurrency tests use real
processes and real signals.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from model_assigner.bot.backends import open_state_store
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.locks import ISSUE_LOCK_STRIPES, issue_lock, issue_lock_path
from model_assigner.bot.store.codec import parse_state, serialize
from model_assigner.bot.store.files import file_lock
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.pg_rows import PRUNE_EVERY
from model_assigner.bot.store.postgresql import PgStore
from model_assigner.bot.store.state import (
    DELIVERY_LIMIT,
    DELIVERY_MEMORY,
    STATE_VERSION,
    State,
    StoreError,
    initial_state,
)
from model_assigner.core.config_subscriptions import SubscriptionsConfig
from model_assigner.core.types import ApiBudget, Subscription
from tests.bot.store.support import (
    MP,
    NOW,
    RESET,
    api_payment,
    claude,
    held,
    quotas,
    sub_payment,
)
from tests.helpers import CONFIG_DIR, store_files, store_text


@pytest.fixture(params=["json", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store is: a file, or a database (emptied for each test)."""
    if request.param == "json":
        return str(tmp_path / "data" / "state.json")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(location: str) -> Iterator[Any]:
    opened = open_state_store(location if "://" in location else Path(location), quotas())
    yield opened
    release = getattr(opened, "release", None)
    if release is not None:
        release()


@pytest.fixture
def file_store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data" / "state.json", quotas())


def raw(store: Any) -> str:
    """What the store holds, as text, read independently of it: the file, or
    the rows read back by another store object (another process's view)."""
    if isinstance(store, Store):
        return store_text(store.path)
    other = PgStore(store.db.url, store.defaults, store.clock, pool_size=1)
    try:
        return other.export_text()
    finally:
        other.release()


def on_disk(store: Any) -> State:
    """The document as saved, parsed independently of the Store."""
    return State.model_validate_json(raw(store))


def temp_files(store: Any) -> list[str]:
    if not isinstance(store, Store):
        return []
    return sorted(p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp"))


# --- the initial state --------------------------------------------------------


def test_initial_state_comes_from_config(tmp_path: Path) -> None:
    config = load_engine_config(CONFIG_DIR).quotas
    store = Store(tmp_path / "state.json", config, lambda: NOW)
    state = store.read()
    assert not store.path.exists(), "reading must not create the document"
    assert set(state.subscriptions) == {s.model_family for s in config.subscriptions}
    for configured in config.subscriptions:
        stored = state.subscriptions[configured.model_family]
        assert stored.token_limit_monthly == configured.token_limit_monthly
        assert stored.token_limit_daily == configured.token_limit_daily
        assert stored.tokens_used_month == configured.tokens_used_month
        # The shipped config names a reset day, not a date: the first reset
        # is the next such day after the store was first read.
        assert stored.reset_date == RESET
    assert state.api_budget.reset_date == RESET
    assert state.api_budget.monthly_limit_usd == config.api_budget.monthly_limit_usd
    assert state.reservations == {} and state.deliveries == {} and state.records == {}


def test_first_transaction_saves_the_config_state(store: Any) -> None:
    with store.transaction(NOW):
        pass
    saved = on_disk(store)
    assert claude(saved).token_limit_monthly == 5_000_000
    assert claude(saved).tokens_used_month == 0
    assert claude(saved).usage_day == NOW.date()
    assert saved.api_budget.monthly_limit_usd == 100.0
    # The file is what the Store would write for it: one JSON document.
    assert json.loads(raw(store))["version"] == STATE_VERSION


def test_initial_state_does_not_share_objects_with_config() -> None:
    config = quotas()
    state = initial_state(config, NOW)
    claude(state).tokens_used_month = 123
    state.api_budget.spent_usd = 4.0
    assert config.subscriptions[0].tokens_used_month == 0
    assert config.api_budget.spent_usd == 0.0


# --- reserve, replace, release, settle -------------------------------------------


def test_reserve_charges_the_subscription(store: Any) -> None:
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(40_000)))
    saved = on_disk(store)
    assert claude(saved).tokens_used_month == 40_000
    assert claude(saved).tokens_used_today == 40_000
    assert saved.reservations["o/r#1"].tokens == 40_000
    assert saved.reservations["o/r#1"].model == "sonnet-4.5"


def test_re_reserving_replaces_and_never_charges_twice(store: Any) -> None:
    for tokens in (40_000, 40_000, 25_000, 90_000):
        with store.transaction(NOW) as state:
            state.reserve("o/r#1", held(sub_payment(tokens)))
    saved = on_disk(store)
    assert claude(saved).tokens_used_month == 90_000
    assert claude(saved).tokens_used_today == 90_000
    assert list(saved.reservations) == ["o/r#1"]


def test_replacing_moves_the_charge_between_payers(store: Any) -> None:
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(api_payment(2.5), model="gpt-4-turbo"))
    assert on_disk(store).api_budget.spent_usd == pytest.approx(2.5)
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(30_000)))
    saved = on_disk(store)
    assert saved.api_budget.spent_usd == pytest.approx(0.0)
    assert claude(saved).tokens_used_month == 30_000


def test_reservations_of_different_issues_add_up(store: Any) -> None:
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(10_000)))
        state.reserve("o/r#2", held(sub_payment(20_000)))
        state.reserve("other/repo#1", held(api_payment(1.25)))
    saved = on_disk(store)
    assert claude(saved).tokens_used_month == 30_000
    assert saved.api_budget.spent_usd == pytest.approx(1.25)


def test_release_gives_the_charge_back(store: Any) -> None:
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(10_000)))
        state.reserve("o/r#2", held(sub_payment(20_000)))
        state.reserve("o/r#3", held(api_payment(3.0)))
    with store.transaction(NOW) as state:
        released = state.release("o/r#2")
        api = state.release("o/r#3")
        nothing = state.release("o/r#404")
    assert released is not None and released.tokens == 20_000
    assert api is not None and api.cost_usd == pytest.approx(3.0)
    assert nothing is None
    saved = on_disk(store)
    assert claude(saved).tokens_used_month == 10_000
    assert claude(saved).tokens_used_today == 10_000
    assert saved.api_budget.spent_usd == pytest.approx(0.0)
    assert set(saved.reservations) == {"o/r#1"}


def test_release_of_yesterdays_charge_leaves_today_alone(store: Any) -> None:
    day1 = datetime(2026, 2, 10, 23, 0, tzinfo=UTC)
    day2 = datetime(2026, 2, 11, 1, 0, tzinfo=UTC)
    with store.transaction(day1) as state:
        state.reserve("o/r#1", held(sub_payment(10_000), at=day1))
    with store.transaction(day2) as state:
        assert claude(state).tokens_used_today == 0
        state.reserve("o/r#2", held(sub_payment(3_000), at=day2))
        state.release("o/r#1")
    saved = on_disk(store)
    assert claude(saved).tokens_used_today == 3_000, "yesterday's charge is not in today's count"
    assert claude(saved).tokens_used_month == 3_000


def test_release_after_the_monthly_reset_gives_nothing_back(store: Any) -> None:
    before = datetime(2026, 2, 20, tzinfo=UTC)
    after = datetime(2026, 3, 2, tzinfo=UTC)
    with store.transaction(before) as state:
        state.reserve("o/r#1", held(sub_payment(10_000), at=before))
        state.reserve("o/r#2", held(api_payment(4.0), at=before))
    with store.transaction(after) as state:
        state.reserve("o/r#3", held(sub_payment(7_000), at=after))
        state.release("o/r#1")
        state.release("o/r#2")
    saved = on_disk(store)
    assert claude(saved).tokens_used_month == 7_000
    assert saved.api_budget.spent_usd == pytest.approx(0.0)


def test_settle_keeps_the_usage(store: Any) -> None:
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(10_000)))
        state.records["o/r#1"] = state.records.get("o/r#1") or _comment()
        state.dependencies["o/r#1"] = ["o/r#7"]
    with store.transaction(NOW) as state:
        settled = state.settle("o/r#1")
        state.forget_issue("o/r#1")
    assert settled is not None and settled.tokens == 10_000
    saved = on_disk(store)
    assert claude(saved).tokens_used_month == 10_000, "completed work stays as usage"
    assert saved.reservations == {} and saved.dependencies == {}
    assert set(saved.records) == {"o/r#1"}, "a closed issue keeps its issue record"
    with store.transaction(NOW) as state:
        state.forget_issue("o/r#1", deleted=True)
    assert on_disk(store).records == {}
    # A later release (say, a deletion after closing) finds nothing to give back.
    with store.transaction(NOW) as state:
        assert state.release("o/r#1") is None
    assert claude(on_disk(store)).tokens_used_month == 10_000


def _comment() -> Any:
    from model_assigner.bot.store.state import IssueRecord

    return IssueRecord(id=1, digest="abc")


def test_exception_inside_a_transaction_saves_nothing(store: Any) -> None:
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(10_000)))
    before = raw(store)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.transaction(NOW) as state:
        state.reserve("o/r#2", held(sub_payment(99_000)))
        raise Boom
    assert raw(store) == before
    assert temp_files(store) == []


# --- resets ---------------------------------------------------------------------


def test_daily_usage_resets_at_utc_midnight(store: Any) -> None:
    last_second = datetime(2026, 2, 10, 23, 59, 59, tzinfo=UTC)
    with store.transaction(last_second) as state:
        state.reserve("o/r#1", held(sub_payment(10_000), at=last_second))
    with store.transaction(last_second + timedelta(microseconds=999_999)) as state:
        assert claude(state).tokens_used_today == 10_000
    with store.transaction(datetime(2026, 2, 11, tzinfo=UTC)) as state:
        assert claude(state).tokens_used_today == 0
        assert claude(state).tokens_used_month == 10_000
    saved = on_disk(store)
    assert claude(saved).tokens_used_today == 0
    assert claude(saved).usage_day == datetime(2026, 2, 11).date()


def test_midnight_is_utc_midnight_whatever_the_clocks_offset(store: Any) -> None:
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(10_000)))
    # 23:30 UTC on the same day, written with a +01:00 offset: no reset yet.
    same_day = datetime(2026, 2, 11, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    with store.transaction(same_day) as state:
        assert claude(state).tokens_used_today == 10_000
    # 20:00 at -05:00 is 01:00 UTC the next day: reset.
    next_day = datetime(2026, 2, 10, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    with store.transaction(next_day) as state:
        assert claude(state).tokens_used_today == 0
        assert claude(state).tokens_used_month == 10_000


def test_monthly_reset_is_applied_exactly_once(store: Any) -> None:
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(10_000)))
        state.reserve("o/r#2", held(api_payment(7.5)))
    at_reset = RESET
    with store.transaction(at_reset) as state:
        assert claude(state).tokens_used_month == 0
        assert state.api_budget.spent_usd == 0.0
        assert claude(state).reset_date == datetime(2026, 4, 1, tzinfo=UTC)
        assert state.api_budget.reset_date == datetime(2026, 4, 1, tzinfo=UTC)
        state.reserve("o/r#3", held(sub_payment(5_000), at=at_reset))
        state.reserve("o/r#4", held(api_payment(2.0), at=at_reset))
    saved = on_disk(store)
    assert claude(saved).reset_date == datetime(2026, 4, 1, tzinfo=UTC)
    # The same instant again, and later that month: the reset is not repeated.
    for later in (at_reset, at_reset + timedelta(days=30, hours=23)):
        with store.transaction(later) as state:
            assert claude(state).tokens_used_month == 5_000
            assert state.api_budget.spent_usd == pytest.approx(2.0)
            assert claude(state).reset_date == datetime(2026, 4, 1, tzinfo=UTC)


def test_a_store_asleep_for_months_resets_once_to_the_next_date(store: Any) -> None:
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(10_000)))
    woken = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
    with store.transaction(woken) as state:
        assert claude(state).tokens_used_month == 0
        state.reserve("o/r#2", held(sub_payment(1_000), at=woken))
    saved = on_disk(store)
    assert claude(saved).reset_date == datetime(2026, 7, 1, tzinfo=UTC)
    assert saved.api_budget.reset_date == datetime(2026, 7, 1, tzinfo=UTC)
    assert claude(saved).tokens_used_month == 1_000


def test_the_reset_date_comes_from_the_store_not_the_config(location: str) -> None:
    where = location if "://" in location else Path(location)
    with open_state_store(where, quotas()).transaction(RESET) as state:  # rolls to 1 April
        state.reserve("o/r#1", held(sub_payment(10_000), at=RESET))
    # The operator never touched config: it still says 1 March.
    with open_state_store(where, quotas()).transaction(RESET + timedelta(days=1)) as state:
        assert claude(state).reset_date == datetime(2026, 4, 1, tzinfo=UTC)
        assert claude(state).tokens_used_month == 10_000


# --- sync with config -----------------------------------------------------------


def test_limits_come_from_config_and_counters_from_the_store(location: str) -> None:
    april = datetime(2026, 4, 1, tzinfo=UTC)
    old = State(
        subscriptions={
            "claude": Subscription(
                model_family="claude",
                monthly_cost=5.0,
                token_limit_daily=10,
                token_limit_monthly=1_000_000,
                tokens_used_today=1_000,
                tokens_used_month=300_000,
                reset_date=april,
                usage_day=NOW.date(),
            ),
            "retired": Subscription(model_family="retired", tokens_used_month=9, reset_date=april),
        },
        api_budget=ApiBudget(monthly_limit_usd=10.0, spent_usd=6.5, reset_date=april),
    )
    openai = Subscription(model_family="openai", token_limit_monthly=2_000_000, reset_date=RESET)
    config = quotas(monthly=5_000_000, daily=None, budget=250.0, extra=(openai,))
    store = open_state_store(location if "://" in location else Path(location), config)
    seed(store, old)
    for state in (store.read(), _in_transaction(store)):
        assert set(state.subscriptions) == {"claude", "openai"}
        c = claude(state)
        assert (c.token_limit_monthly, c.token_limit_daily, c.monthly_cost) == (
            5_000_000,
            None,
            20.0,
        )
        assert (c.tokens_used_month, c.tokens_used_today) == (300_000, 1_000)
        assert c.reset_date == april
        assert state.subscriptions["openai"].tokens_used_month == 0
        assert state.subscriptions["openai"].token_limit_monthly == 2_000_000
        assert state.api_budget.monthly_limit_usd == 250.0
        assert state.api_budget.spent_usd == 6.5
        assert state.api_budget.reset_date == april
    saved = on_disk(store)
    assert "retired" not in saved.subscriptions
    assert claude(saved).token_limit_monthly == 5_000_000


def seed(store: Any, state: State) -> None:
    """Put a document in place, as a restore would."""
    if isinstance(store, Store):
        store.path.parent.mkdir(parents=True, exist_ok=True)
        store.path.write_text(serialize(state))
    else:
        store.replace(state)


def _in_transaction(store: Any) -> State:
    with store.transaction(NOW) as state:
        return state.model_copy(deep=True)


# --- corrupt documents -----------------------------------------------------------


VALID = serialize(initial_state(quotas(), NOW))
SCHEMA_INVALID = {
    "negative tokens": (
        VALID.replace('"tokens_used_month": 0', '"tokens_used_month": -5'),
        "subscriptions.claude.tokens_used_month",
    ),
    "wrong type": (
        VALID.replace('"tokens_used_month": 0', '"tokens_used_month": "lots"'),
        "subscriptions.claude.tokens_used_month",
    ),
    "unknown key": (VALID.replace(f'"version": {STATE_VERSION}',
                                  f'"version": {STATE_VERSION}, "extra": true'), "extra"),
    "missing budget": (f'{{"version": {STATE_VERSION}, "subscriptions": {{}}}}', "api_budget"),
    "a newer format": (
        VALID.replace(f'"version": {STATE_VERSION}', f'"version": {STATE_VERSION + 1}'),
        f"version: store format {STATE_VERSION + 1}; this model-assigner reads format "
        f"{STATE_VERSION}",
    ),
    "top-level list": ("[]", ""),
    "null": ("null", ""),
}
NOT_JSON = {
    "garbage": "{this is not json",
    "truncated": VALID[: len(VALID) // 2],
    "empty": "",
    "trailing comma": VALID.rstrip().rstrip("}") + ",}",
}


def _corrupt_cases() -> Iterator[Any]:
    for name, text in NOT_JSON.items():
        yield pytest.param(text.encode(), "not valid JSON", id=name)
    for name, (text, key) in SCHEMA_INVALID.items():
        yield pytest.param(text.encode(), key, id=name)
    yield pytest.param(b"\xff\xfe{\x00", "cannot read", id="not utf-8")


@pytest.mark.parametrize(("content", "says"), list(_corrupt_cases()))
def test_corrupt_document_is_refused_and_left_untouched(
    file_store: Store, content: bytes, says: str
) -> None:
    store = file_store
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    stamp = store.path.stat().st_mtime_ns
    ran = []

    with pytest.raises(StoreError) as on_read:
        store.read()
    with pytest.raises(StoreError):
        store.check()
    with pytest.raises(StoreError) as on_write, store.transaction(NOW) as state:
        ran.append(state)
        state.reserve("o/r#1", held(sub_payment(1)))

    for caught in (on_read, on_write):
        message = str(caught.value)
        assert str(store.path) in message
        assert says in message
        assert "\n" not in message
    assert ran == [], "the transaction body must not run on a corrupt document"
    assert store.path.read_bytes() == content
    assert store.path.stat().st_mtime_ns == stamp
    assert temp_files(store) == []


def test_parse_state_names_the_source() -> None:
    with pytest.raises(StoreError, match=r"^somewhere/state\.json: not valid JSON \(line 1"):
        parse_state("{", "somewhere/state.json")


# --- write failures ---------------------------------------------------------------


def _fail_with(code: int) -> Any:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("function", "code"),
    [("pwrite", errno.ENOSPC), ("fsync", errno.EIO), ("pwrite", errno.EROFS)],
)
def test_write_failure_keeps_the_previous_document(
    file_store: Store, monkeypatch: pytest.MonkeyPatch, function: str, code: int
) -> None:
    store = file_store
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(10_000)))
    before = store_files(store.path)

    monkeypatch.setattr(os, function, _fail_with(code))
    with pytest.raises(StoreError) as caught, store.transaction(NOW) as state:
        state.reserve("o/r#2", held(sub_payment(20_000)))
    monkeypatch.undo()

    message = str(caught.value)
    assert str(store.path) in message
    assert "cannot write" in message and os.strerror(code) in message
    assert store_files(store.path) == before, "nothing half-written stays"
    assert temp_files(store) == [], "the temporary file is cleaned up"
    assert claude(store.read()).tokens_used_month == 10_000


def test_state_folder_that_is_a_file_is_a_store_error(tmp_path: Path) -> None:
    """Root ignores chmod, so an unwritable folder is made by putting a file
    where the folder should be."""
    (tmp_path / "data").write_text("not a folder")
    store = Store(tmp_path / "data" / "state.json", quotas())
    with pytest.raises(StoreError) as caught, store.transaction(NOW):
        pass
    assert str(store.path) in str(caught.value)
    with pytest.raises(StoreError):
        store.read()
    with pytest.raises(StoreError, match="not writable"):
        store.ensure_writable()
    assert (tmp_path / "data").read_text() == "not a folder"


def test_write_failure_when_the_folder_is_replaced_midway(
    file_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real mkstemp failing (the folder gone under us) is a StoreError
    too: on the first commit, which writes the document whole."""
    store = file_store
    store.path.parent.mkdir(parents=True)
    before = store_files(store.path)
    import tempfile

    real = tempfile.mkstemp

    def no_space(*args: Any, **kwargs: Any) -> tuple[int, str]:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tempfile, "mkstemp", no_space)
    with pytest.raises(StoreError, match="No space left"), store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(5)))
    monkeypatch.setattr(tempfile, "mkstemp", real)
    assert store_files(store.path) == before


def test_ensure_writable_passes_on_a_fresh_folder(tmp_path: Path) -> None:
    store = Store(tmp_path / "new" / "deeper" / "state.json", quotas())
    store.ensure_writable()
    assert store.path.parent.is_dir()
    assert list(store.path.parent.iterdir()) == []


# --- delivery memory --------------------------------------------------------------


def test_deliveries_are_remembered_and_pruned_by_age(file_store: Store) -> None:
    store = file_store
    ages = {
        "five-days": timedelta(days=5),
        "just-too-old": DELIVERY_MEMORY + timedelta(seconds=1),
        "exactly-at-cutoff": DELIVERY_MEMORY,
        "yesterday": timedelta(days=1),
    }
    with store.transaction(NOW - timedelta(days=6)) as state:
        for name, age in ages.items():
            state.remember_delivery(name, NOW - age)
    with store.transaction(NOW) as state:
        state.remember_delivery("now", NOW)
    assert set(on_disk(store).deliveries) == {"exactly-at-cutoff", "yesterday", "now"}


def test_deliveries_are_bounded_in_count(file_store: Store) -> None:
    store = file_store
    extra = 25
    start = NOW - timedelta(days=1)
    state = initial_state(quotas(), NOW)
    for i in range(DELIVERY_LIMIT + extra):
        state.remember_delivery(f"d{i:05d}", start + timedelta(seconds=i))
    store.path.parent.mkdir(parents=True)
    store.path.write_text(serialize(state))

    with store.transaction(NOW) as live:
        assert len(live.deliveries) <= DELIVERY_LIMIT
        live.remember_delivery("newest", NOW)
    saved = on_disk(store).deliveries
    assert len(saved) == DELIVERY_LIMIT
    assert "newest" in saved
    assert f"d{DELIVERY_LIMIT + extra - 1:05d}" in saved
    assert "d00000" not in saved and f"d{extra:05d}" not in saved


def test_naive_clock_is_read_as_utc(store: Any) -> None:
    with store.transaction(NOW) as state:
        state.remember_delivery("aware", NOW)
    naive = datetime(2026, 2, 10, 13, 0)
    with store.transaction(naive) as state:
        state.remember_delivery("naive", naive)
    with store.transaction(NOW + timedelta(hours=2)):
        pass
    saved = on_disk(store).deliveries
    assert saved["naive"] == datetime(2026, 2, 10, 13, 0, tzinfo=UTC)
    assert set(saved) == {"aware", "naive"}


def test_naive_and_aware_times_on_disk_are_pruned_together(file_store: Store) -> None:
    """A document holding both kinds (naive = UTC) is pruned by age and count."""
    store = file_store
    deliveries = {
        f"n{i:05d}": (NOW - timedelta(seconds=i)).replace(tzinfo=None).isoformat()
        for i in range(0, 2 * DELIVERY_LIMIT, 2)
    } | {f"a{i:05d}": (NOW - timedelta(seconds=i)).isoformat() for i in range(1, 60, 2)}
    deliveries["n-old"] = (NOW - timedelta(days=5)).replace(tzinfo=None).isoformat()
    document = json.loads(serialize(initial_state(quotas(), NOW)))
    document["deliveries"] = deliveries
    store.path.parent.mkdir(parents=True)
    store.path.write_text(json.dumps(document))

    with store.transaction(NOW):
        pass
    saved = on_disk(store).deliveries
    assert len(saved) == DELIVERY_LIMIT
    assert "n-old" not in saved
    assert {"n00000", "a00001", "a00059"} <= set(saved)


# --- locks ------------------------------------------------------------------------


def test_issue_locks_are_striped_and_stable(tmp_path: Path) -> None:
    paths = {issue_lock_path(tmp_path, f"o/r#{n}") for n in range(5000)}
    assert len(paths) <= ISSUE_LOCK_STRIPES
    assert issue_lock_path(tmp_path, "o/r#1") == issue_lock_path(tmp_path, "o/r#1")
    assert all(p.parent == tmp_path for p in paths)


def test_file_lock_excludes_other_holders(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "x.lock"
    with file_lock(lock):
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    finally:
        os.close(fd)


def test_shared_locks_coexist_and_exclude_writers(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with file_lock(lock, exclusive=False):
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def _hold_issue_lock(lock_dir: str, key: str, acquired: Any, release: Any) -> None:
    with issue_lock(Path(lock_dir), key):
        acquired.set()
        release.wait(10)


def test_issue_lock_serializes_across_processes(tmp_path: Path) -> None:
    acquired, release = MP.Event(), MP.Event()
    child = MP.Process(target=_hold_issue_lock, args=(str(tmp_path), "o/r#1", acquired, release))
    child.start()
    try:
        assert acquired.wait(10)
        fd = os.open(issue_lock_path(tmp_path, "o/r#1"), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        release.set()
        child.join(10)
    assert child.exitcode == 0
    with issue_lock(tmp_path, "o/r#1"):
        pass


# --- concurrency: no lost update ----------------------------------------------------


WORKERS = 16
PER_WORKER = 20


def tokens_for(worker: int, i: int) -> int:
    return 1_000 + worker * 100 + i


def _reserve_many(location: str, config_json: str, worker: int, start: Any) -> None:
    config = SubscriptionsConfig.model_validate_json(config_json)
    store = open_state_store(location if "://" in location else Path(location), config)
    start.wait(30)
    for i in range(PER_WORKER):
        with store.transaction(NOW) as state:
            state.reserve(f"o/r#{worker}-{i}", held(sub_payment(tokens_for(worker, i))))
            # Every worker also re-reserves one shared issue: replaced, never added.
            state.reserve("o/r#hot", held(sub_payment(500 + worker)))
            state.remember_delivery(f"delivery-{worker}-{i}", NOW)
        if i % 3 == 0:
            store.read()


def test_concurrent_transactions_lose_no_update(store: Any, location: str) -> None:
    """Processes, each with its own store object (on the database: its own
    connections), reserve together: no update is lost, nothing is counted twice."""
    start = MP.Event()
    config_json = store.defaults.model_dump_json()
    release = getattr(store, "release", None)
    if release is not None:
        release()  # no connection of this process crosses the fork
    children = [
        MP.Process(target=_reserve_many, args=(location, config_json, w, start))
        for w in range(WORKERS)
    ]
    for child in children:
        child.start()
    start.set()
    for child in children:
        child.join(60)
    assert [c.exitcode for c in children] == [0] * WORKERS

    state = on_disk(store)
    expected = sum(tokens_for(w, i) for w in range(WORKERS) for i in range(PER_WORKER))
    hot = state.reservations["o/r#hot"].tokens
    assert 500 <= hot < 500 + WORKERS
    assert claude(state).tokens_used_month == expected + hot
    assert claude(state).tokens_used_today == expected + hot
    assert len(state.reservations) == WORKERS * PER_WORKER + 1
    assert len(state.deliveries) == WORKERS * PER_WORKER
    assert temp_files(store) == []


# --- crashes: a valid document whatever the instant ----------------------------------


def _write_forever(path: str, config_json: str) -> None:
    # Compacted whenever the journal outgrows the document: kills land in
    # appends and in compactions alike.
    store = Store(Path(path), SubscriptionsConfig.model_validate_json(config_json),
                  journal_bytes=0)
    i = 0
    while True:
        with store.transaction(NOW) as state:
            state.reserve(f"o/r#{i}", held(sub_payment(1_000 + i % 997)))
            if i % 5 == 0:
                state.release(f"o/r#{i - 3}")
            state.remember_delivery(f"crash-{i}", NOW)
        i += 1


def _assert_consistent(store: Store) -> State:
    text = store_text(store.path)  # the document and its journal's records
    json.loads(text)
    state = parse_state(text, str(store.path))
    store.check()
    # The document is one committed state: its counters match its reservations.
    assert claude(state).tokens_used_month == sum(r.tokens for r in state.reservations.values())
    return state


def _lock_is_free(store: Store) -> bool:
    fd = os.open(store.lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_sigkill_at_any_instant_leaves_a_valid_document(file_store: Store) -> None:
    store = file_store
    # A bigger document makes each compaction take longer, so more kills land
    # in one (not so big that the ids written meanwhile reach DELIVERY_LIMIT:
    # then the oldest would go, and the test counts on none going).
    bulk = initial_state(quotas(), NOW)
    for n in range(1500):
        bulk.remember_delivery(f"old-{n}", NOW - timedelta(hours=1))
    store.path.parent.mkdir(parents=True)
    store.path.write_text(serialize(bulk))

    rng = random.Random(20260210)
    config_json = store.defaults.model_dump_json()
    seen_reservations = 0
    committed: set[str] = set()
    for _ in range(30):
        before = store_files(store.path)
        child = MP.Process(target=_write_forever, args=(str(store.path), config_json))
        child.start()
        deadline = time.monotonic() + 10
        while store_files(store.path) == before and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.03))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL

        state = _assert_consistent(store)
        # Every committed write adds its delivery id, and nothing here drops
        # one. (The number of reservations is no measure: each writer starts
        # over at o/r#0 and re-adds, then releases again, what the one before
        # it released, so a kill between the two sees one more than the next.)
        assert committed <= set(state.deliveries), "a committed write was lost"
        committed = set(state.deliveries)
        seen_reservations = len(state.reservations)
        assert _lock_is_free(store), "the kernel drops a killed writer's lock"
    assert seen_reservations > 0
    # And the store goes on working after all of that.
    with store.transaction(NOW) as state:
        state.reserve("o/r#after", held(sub_payment(1)))
    _assert_consistent(store)


def _stall_before_rename(path: str, config_json: str, stalled: Any) -> None:
    """Commit a change big enough to compact the store (the journal outgrows
    the document), then stop just before the new document's rename."""
    real_replace = os.replace

    def stall(src: Any, dst: Any) -> None:
        stalled.set()
        time.sleep(60)
        real_replace(src, dst)

    os.replace = stall  # type: ignore[assignment]  # this child only
    store = Store(Path(path), SubscriptionsConfig.model_validate_json(config_json),
                  journal_bytes=0)
    with store.transaction(NOW) as state:
        state.reserve("o/r#2", held(sub_payment(99_999)))
        for n in range(100, 120):
            state.remember_delivery(f"bulk-{n}", NOW)


def test_sigkill_between_temp_file_and_rename_keeps_the_old_document(file_store: Store) -> None:
    store = file_store
    with store.transaction(NOW) as state:
        state.reserve("o/r#1", held(sub_payment(10_000)))
    before = store.path.read_bytes()

    stalled = MP.Event()
    child = MP.Process(
        target=_stall_before_rename,
        args=(str(store.path), store.defaults.model_dump_json(), stalled),
    )
    child.start()
    try:
        assert stalled.wait(10)
        leftovers = temp_files(store)
        assert len(leftovers) == 1
        # The new document is complete in the temporary file, not yet in place.
        assert '"o/r#2"' in (store.path.parent / leftovers[0]).read_text()
    finally:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    assert store.path.read_bytes() == before
    _assert_consistent(store)
    assert _lock_is_free(store)


def test_delivery_ids_are_capped_by_count_on_both_back_ends(store: Any) -> None:
    """Ids are not signed: a flood of fresh ones must not grow the store
    without end on either back end. The newest DELIVERY_LIMIT are kept (the
    database as the file: by time, then by the order recorded)."""
    flood = DELIVERY_LIMIT + 300
    with store.transaction(NOW) as state:
        for n in range(flood):
            state.remember_delivery(f"flood-{n:05d}", NOW - timedelta(seconds=flood - n))
    kept = on_disk(store).deliveries
    assert len(kept) == DELIVERY_LIMIT
    assert set(kept) == {f"flood-{n:05d}" for n in range(300, flood)}
    assert store.seen_delivery(f"flood-{flood - 1:05d}")
    assert not store.seen_delivery("flood-00299")


def test_database_forgets_delivery_ids_by_age(pg_url: str) -> None:
    """The database keeps ids for DELIVERY_MEMORY, like the file; it prunes
    them now and then (every PRUNE_EVERY ids a process records), not on every
    transaction (the count cap is tested with the file's above)."""
    store = PgStore(pg_url, quotas())
    ages = {"five-days": timedelta(days=5), "exactly-at-cutoff": DELIVERY_MEMORY,
            "yesterday": timedelta(days=1)}
    with store.transaction(NOW - timedelta(days=6)) as state:
        for name, age in ages.items():
            state.remember_delivery(name, NOW - age)
    assert store.seen_delivery("five-days")
    assert store.prune_deliveries(NOW) == 1
    assert set(on_disk(store).deliveries) == {"exactly-at-cutoff", "yesterday"}
    with store.transaction(NOW + timedelta(days=5)) as state:
        for n in range(PRUNE_EVERY + 1):
            state.remember_delivery(f"burst-{n}", NOW + timedelta(days=5))
    assert not store.seen_delivery("yesterday"), "pruned with the burst that passed the count"
    store.release()
