"""The event log: hash-chained, and any alteration, deletion or insertion is found."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import VigilRunner
from vigil.store import Store


@pytest.fixture
def filled(store_path: Path) -> Store:
    store = Store(str(store_path))
    for i in range(1, 6):
        store.append("result", f"check-{i}", {"status": "ok", "n": i, "text": "正常"})
    return store


def test_chain_verifies_and_links(filled: Store) -> None:
    events = filled.events()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert filled.verify().ok and filled.verify().count == 5


def _sql(path: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(path) as db:
        db.execute(statement, args)


def test_edited_row_is_named(filled: Store, store_path: Path) -> None:
    _sql(store_path, "UPDATE events SET data=? WHERE seq=3",
         json.dumps({"n": 3, "status": "critical", "text": "正常"}))
    verdict = filled.verify()
    assert not verdict.ok and verdict.bad_seq == 3 and "altered" in verdict.reason


def test_deleted_middle_row_is_named(filled: Store, store_path: Path) -> None:
    _sql(store_path, "DELETE FROM events WHERE seq=2")
    verdict = filled.verify()
    assert not verdict.ok and verdict.bad_seq == 2 and "missing" in verdict.reason


def test_deleted_newest_rows_are_found(filled: Store, store_path: Path) -> None:
    _sql(store_path, "DELETE FROM events WHERE seq>=4")
    verdict = filled.verify()
    assert not verdict.ok and verdict.bad_seq == 4 and "deleted" in verdict.reason


def test_inserted_row_is_found(filled: Store, store_path: Path) -> None:
    for seq in (5, 4, 3):  # make room, as a forger would
        _sql(store_path, "UPDATE events SET seq=? WHERE seq=?", seq + 1, seq)
    _sql(store_path, "INSERT INTO events VALUES (3, '2026-01-01T00:00:00+00:00', 'result', "
                     "'forged', '{}', 'x', 'y')")
    verdict = filled.verify()
    assert not verdict.ok and verdict.bad_seq == 3


def test_appends_continue_the_chain_across_reopen(filled: Store, store_path: Path) -> None:
    again = Store(str(store_path))
    ev = again.append("note", "x", {})
    assert ev.seq == 6 and ev.prev_hash == filled.events()[4].hash
    assert again.verify().ok


def test_cli_verify_names_the_edited_event(vigil: VigilRunner, filled: Store,
                                           store_path: Path) -> None:
    assert vigil("events", "verify").code == 0
    _sql(store_path, "UPDATE events SET subject='check-x' WHERE seq=4")
    run = vigil("events", "verify", "--lang", "en")
    assert run.code == 2
    assert "event 4" in run.err
    as_json = json.loads(vigil("events", "verify", "--json").out)
    assert as_json["ok"] is False and as_json["bad_seq"] == 4


def test_revealed_secrets_never_reach_events(store_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.secrets import Secret

    monkeypatch.setenv("VIGIL_TEST_PW", "s3cret-value")
    Secret.parse("env:VIGIL_TEST_PW").reveal()
    store = Store(str(store_path))
    store.append("result", "db", {"message": "login as admin/s3cret-value failed"})
    assert "s3cret-value" not in store_path.read_bytes().decode("utf-8", "replace")
    assert store.events()[0].data["message"] == "login as admin/*** failed"
    assert store.verify().ok


def test_changed_states_reads_only_what_was_set_since_the_last_look(store_path: Path) -> None:
    store = Store(str(store_path))
    with store.transaction() as tx:
        tx.append("step.planned", "a")
        tx.set_state("step:a", {"status": "pending"})
        tx.set_state("step:b", {"status": "pending"})
    changed, since = store.changed_states("step:", 0)
    assert set(changed) == {"step:a", "step:b"} and since == 1
    with store.transaction() as tx:  # another process approves b
        tx.append("step.approved", "b")
        tx.set_state("step:b", {"status": "succeeded"})
        tx.set_state("incident:x", {"status": "open"})
    changed, since = store.changed_states("step:", since)
    assert changed["step:b"] == {"status": "succeeded"} and since == 2
    changed, since = store.changed_states("step:", since)
    assert changed == {"step:b": {"status": "succeeded"}}  # step:a is older: not read again
    with store.transaction() as tx:  # a state set without an event keeps the head's seq
        tx.set_state("step:a", {"status": "running"})
    changed, _ = store.changed_states("step:", since)
    assert changed["step:a"] == {"status": "running"}
