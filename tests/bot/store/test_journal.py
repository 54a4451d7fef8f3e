"""The JSON store's journal (bot/store/journal.py, bot/store/json_store.py):
a commit appends what it changed; a crash at any byte of an append loses no
acknowledged commit; compaction rewrites the document; a journal behind its
document is ignored; what a commit writes does not depend on what other
issues stored."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from model_assigner.bot.cli import main
from model_assigner.bot.store.codec import serialize
from model_assigner.bot.store.json_store import Store, load_files
from model_assigner.bot.store.state import (
    STATE_VERSION,
    IssueRecord,
    State,
    StoreError,
    initial_state,
)
from tests.bot.store.support import NOW, claude, held, quotas, sub_payment
from tests.helpers import store_text


def journal_of(store: Store) -> bytes:
    return store.journal_path.read_bytes()


def identity(path: Path) -> tuple[int, int, int]:
    found = path.stat()
    return found.st_ino, found.st_size, found.st_mtime_ns


def fresh_read(path: Path) -> State:
    """The store as a process that starts now reads it."""
    return Store(path, quotas()).read()


def committed(tmp_path: Path, commits: int = 3) -> Store:
    store = Store(tmp_path / "state.json", quotas())
    store.ensure_exists()
    for n in range(commits):
        store.apply(NOW, lambda state, n=n: state.reserve(f"o/r#{n}", held(sub_payment(100))))
    return store


def test_a_commit_appends_one_line_and_leaves_the_document_alone(tmp_path: Path) -> None:
    store = committed(tmp_path, 1)
    document = identity(store.path)
    before = journal_of(store)
    store.apply(NOW, lambda state: state.reserve("o/r#9", held(sub_payment(7))))
    after = journal_of(store)
    assert identity(store.path) == document, "the document is not rewritten"
    assert after.startswith(before) and after.endswith(b"\n")
    record = json.loads(after[len(before):])
    assert set(record["set"]) == {"reservations"}
    assert set(record["set"]["reservations"]) == {"o/r#9"}
    assert fresh_read(store.path).reservations.keys() == {"o/r#0", "o/r#9"}


def test_a_crash_at_any_byte_of_an_append_loses_no_acknowledged_commit(tmp_path: Path) -> None:
    store = committed(tmp_path)
    acknowledged = journal_of(store)
    kept = store_text(store.path)
    store.apply(NOW, lambda state: (state.reserve("o/r#new", held(sub_payment(5))),
                                    state.release("o/r#0")))
    complete = journal_of(store)
    for cut in range(len(acknowledged), len(complete)):
        store.journal_path.write_bytes(complete[:cut])  # the crash: a torn last record
        state = fresh_read(store.path)
        assert serialize(state) == kept, f"cut at {cut}: the torn record is ignored"
        assert claude(state).tokens_used_month == 300
    # The torn record is cut off by the next commit, which lands whole after it.
    store.journal_path.write_bytes(complete[: len(acknowledged) + 10])
    survivor = Store(store.path, quotas())
    survivor.apply(NOW, lambda state: state.reserve("o/r#after", held(sub_payment(1))))
    assert journal_of(survivor).startswith(acknowledged)
    state = fresh_read(store.path)
    assert set(state.reservations) == {"o/r#0", "o/r#1", "o/r#2", "o/r#after"}
    assert claude(state).tokens_used_month == 301


def test_a_last_record_of_zeros_is_an_unacknowledged_write(tmp_path: Path) -> None:
    """A crash can leave the file longer than what reached it (a block of
    zeros, even a newline): the last line is then not a record, and ignored."""
    store = committed(tmp_path)
    kept = store_text(store.path)
    with store.journal_path.open("ab") as journal:
        journal.write(b"\0" * 40 + b"\n")
    assert serialize(fresh_read(store.path)) == kept
    store.apply(NOW, lambda state: state.reserve("o/r#5", held(sub_payment(1))))
    assert b"\0" not in journal_of(store)
    assert "o/r#5" in fresh_read(store.path).reservations


def test_damage_before_the_last_record_is_refused(tmp_path: Path) -> None:
    store = committed(tmp_path)
    lines = journal_of(store).split(b"\n")
    lines[1] = lines[1].replace(b'"tokens":100', b'"tokens":"lots"')
    store.journal_path.write_bytes(b"\n".join(lines))
    with pytest.raises(StoreError) as caught:
        Store(store.path, quotas()).check()
    message = str(caught.value)
    assert str(store.journal_path) in message and "not valid" in message
    assert "\n" not in message


def test_compaction_rewrites_the_document_and_starts_the_journal_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.json", quotas(), journal_bytes=0)  # past the document's size
    store.ensure_exists()
    document = identity(store.path)
    n = 0
    while identity(store.path) == document:
        store.apply(NOW, lambda state, n=n: state.remember_delivery(f"d-{n}", NOW))
        n += 1
        assert n < 100, "the journal outgrew the document without a compaction"
    head = journal_of(store)
    assert head.count(b"\n") == 1, "only the header of a new journal"
    on_disk = json.loads(store.path.read_text())
    assert len(on_disk["deliveries"]) == n, "every commit is in the new document"
    assert len(fresh_read(store.path).deliveries) == n


def test_a_journal_behind_its_document_is_ignored(tmp_path: Path) -> None:
    """A crash between a compaction's two renames (the new document in
    place, the old journal still there), or a backup copied over the
    document by hand: the journal does not extend that document, and its
    records are not applied again."""
    store = committed(tmp_path, 2)
    old_journal = journal_of(store)  # reserves o/r#0 and o/r#1
    store.apply(NOW, lambda state: state.release("o/r#0"))
    state = store.read()
    store.path.write_text(serialize(state))  # the compacted document...
    store.journal_path.write_bytes(old_journal)  # ...and the journal it replaced
    again = fresh_read(store.path)
    assert set(again.reservations) == {"o/r#1"}, "o/r#0 is not reserved again"
    assert claude(again).tokens_used_month == 100
    # The next commit starts a journal that extends the document.
    Store(store.path, quotas()).apply(NOW, lambda state: state.release("o/r#1"))
    assert fresh_read(store.path).reservations == {}


def _crowded(tmp_path: Path, others: int) -> Store:
    """A store where ``others`` issues keep records, dependencies and
    delivery ids (no reservations: the counters stay those of an empty one)."""
    path = tmp_path / f"crowded-{others}" / "state.json"
    state = initial_state(quotas(), NOW)
    for n in range(others):
        key = f"crowd/repo#{n}"
        state.records[key] = IssueRecord(id=n, digest="d" * 16, label="model:sonnet-4.5")
        state.dependencies[key] = [f"crowd/repo#{m}" for m in range(20)]
        state.remember_delivery(f"delivery-{n}", NOW - timedelta(minutes=1))
    path.parent.mkdir()
    path.write_text(serialize(state))
    store = Store(path, quotas())
    store.ensure_exists()
    store.apply(NOW, lambda state: state.remember_delivery("first", NOW))  # starts the journal
    return store


def test_what_a_commit_writes_does_not_grow_with_other_issues_data(tmp_path: Path) -> None:
    empty, crowded = _crowded(tmp_path, 0), _crowded(tmp_path, 3000)
    assert crowded.path.stat().st_size > 1_000_000
    written = []
    for store in (empty, crowded):
        document = identity(store.path)
        before = (store.bytes_written, len(journal_of(store)))
        for n in range(3):
            def change(state: State, n: int = n) -> None:
                state.reserve(f"o/r#{n}", held(sub_payment(1_000)))
                state.remember_delivery(f"mine-{n}", NOW)
            store.apply(NOW, change)
        assert identity(store.path) == document, "the document is not rewritten"
        grown = len(journal_of(store)) - before[1]
        assert store.bytes_written - before[0] == grown
        written.append(grown)
    assert written[0] == written[1], "the same change writes the same bytes"
    assert written[0] < 3 * 2_000


def test_another_process_sees_appended_and_compacted_commits(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    writer = Store(path, quotas(), journal_bytes=0)
    reader = Store(path, quotas())
    writer.ensure_exists()
    for n in range(40):  # appends and, once the journal outgrows the document, compactions
        writer.apply(NOW, lambda state, n=n: state.reserve(f"o/r#{n}", held(sub_payment(10))))
        assert reader.view(lambda state: len(state.reservations)) == n + 1
        reader.apply(NOW, lambda state, n=n: state.remember_delivery(f"r-{n}", NOW))
        assert writer.view(lambda state: len(state.deliveries)) == n + 1
    assert claude(fresh_read(path)).tokens_used_month == 400


def test_backup_holds_the_journal_and_restore_replaces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = committed(tmp_path)
    monkeypatch.setenv("MODEL_ASSIGNER_STATE", str(store.path))
    backup = tmp_path / "backup.json"
    assert main(["state", "backup", str(backup), "--now", NOW.isoformat()]) == 0
    held_in_backup = State.model_validate_json(backup.read_text())
    assert set(held_in_backup.reservations) == {"o/r#0", "o/r#1", "o/r#2"}
    assert json.loads(store.path.read_text())["reservations"] == {}, "in the journal only"

    store.apply(NOW, lambda state: state.release("o/r#1"))
    assert main(["state", "restore", str(backup), "--now", NOW.isoformat()]) == 0
    restored = fresh_read(store.path)
    assert set(restored.reservations) == {"o/r#0", "o/r#1", "o/r#2"}
    assert journal_of(store).count(b"\n") == 1, "the journal starts again"


def test_a_format_1_document_is_upgraded_at_start_up(tmp_path: Path) -> None:
    state = initial_state(quotas(), NOW)
    state.reserve("o/r#1", held(sub_payment(10)))
    state.records["o/r#1"] = IssueRecord(id=3, digest="d")
    document = json.loads(serialize(state))
    document["version"] = 1
    document["comments"] = document.pop("records")
    path = tmp_path / "state.json"
    path.write_text(json.dumps(document, indent=1))
    store = Store(path, quotas())
    store.ensure_exists()
    upgraded = json.loads(path.read_text())
    assert upgraded["version"] == STATE_VERSION and "comments" not in upgraded
    assert upgraded["records"]["o/r#1"]["id"] == 3
    assert load_files(path).reservations.keys() == {"o/r#1"}


def test_a_reader_never_waits_for_the_file_lock_holding_the_parse_lock(tmp_path: Path) -> None:
    """A lock-free read that finds a journal not extending the document (a
    compaction half done) reads again under the shared file lock. It must
    not hold this process's parse lock while it waits: the writer holding
    the exclusive file lock needs the parse lock to read the state (this
    hung the test suite once)."""
    import threading

    from model_assigner.bot.store import journal

    store = committed(tmp_path, 1)
    store.journal_path.write_bytes(journal.header_line_for("0" * 64))  # extends nothing
    fresh = Store(store.path, quotas())
    answers: list[int] = []
    with fresh._locked():  # a writer of this process, between two steps
        reader = threading.Thread(
            target=lambda: answers.append(fresh.view(lambda state: len(state.reservations))),
            daemon=True,
        )
        reader.start()
        reader.join(0.5)  # now waiting for the shared file lock
        writer = threading.Thread(target=lambda: fresh._current(locked=True), daemon=True)
        writer.start()
        writer.join(10)
        assert not writer.is_alive(), "deadlocked: the reader held the parse lock"
    reader.join(10)
    assert answers == [0]  # the journal extends no document: its record is ignored
