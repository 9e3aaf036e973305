"""One leader among the daemons sharing a store: the lease, its epoch as a fencing token,
and a SQLite store that holds one daemon only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from vigil import lease
from vigil.store import Fenced, Store


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < end, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def expired(store: Store) -> bool:
    held, now = lease.current(store)
    return held is not None and held.expires <= now


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "s.db"))


def test_one_holder_at_a_time_and_each_change_of_hands_raises_the_epoch(store: Store) -> None:
    a = lease.claim(store, "host-a:1")
    assert a and a.epoch == 1 and not a.taken_from
    assert lease.claim(store, "host-b:2") is None  # a lives
    again = lease.claim(store, "host-a:1")
    assert again and again.epoch == 1 and again.expires >= a.expires  # renewed, same epoch
    lease.release(store, a)
    b = lease.claim(store, "host-b:2")
    assert b and b.epoch == 2 and not b.taken_from  # handed over at a clean stop
    assert [(e.subject, e.data["epoch"]) for e in store.events(kind="monitor.leader")] == [
        ("host-a:1", 1), ("host-b:2", 2)]


def test_a_lease_run_out_is_taken_from_its_silent_holder(store: Store) -> None:
    assert lease.claim(store, "host-a:1", ttl_s=0.3)
    wait_for("the lease to run out", lambda: expired(store))
    b = lease.claim(store, "host-b:2")
    assert b and b.taken_from == "host-a:1"  # host-a may still be running: frozen, cut off
    (taken,) = [e for e in store.events(kind="monitor.leader") if e.subject == "host-b:2"]
    assert taken.data["taken_from"] == "host-a:1"


def test_a_leader_past_its_lease_writes_nothing(store: Store) -> None:
    a = lease.claim(store, "host-a:1", ttl_s=0.3)
    assert a
    store.fence = (a.holder, a.epoch)
    with store.transaction() as tx:
        tx.append("message.sent", "k1")  # while it leads: fine
    # Frozen past the expiry with nobody taking over: still refused.
    wait_for("the lease to run out", lambda: expired(store))
    with pytest.raises(Fenced), store.transaction() as tx:
        tx.append("message.sent", "k2")
    b = lease.claim(store, "host-b:2")
    assert b and b.epoch == 2
    with pytest.raises(Fenced), store.transaction() as tx:  # and after a takeover
        tx.append("message.sent", "k3")
    assert [e.subject for e in store.events(kind="message.sent")] == ["k1"]
    assert lease.claim(store, "host-a:1") is None  # it learns it lost, and stands by


def test_a_dead_holder_on_this_machine_is_replaced_at_once(store: Store) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert lease.claim(store, f"{socket.gethostname()}:{gone.pid}")
    b = lease.claim(store, "host-b:2")
    assert b and b.epoch == 2 and not b.taken_from  # nothing of the dead one is running


def _spawn(store: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vigil", "watch", "--observe-only", "-i",
         str(ROOT / "inventory/demo")], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "VIGIL_STORE": str(store)})


def test_a_second_daemon_on_one_sqlite_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = _spawn(path)
    try:
        wait_for("the first daemon to lead", lambda: path.exists() and
                 Store(str(path)).events(kind="daemon.started"), timeout=60)
        second = _spawn(path)
        _, errors = second.communicate(timeout=60)
        assert second.returncode == 3
        assert errors.count("\n") == 1 and "a SQLite store holds one daemon" in errors
        assert f":{first.pid}" in errors  # names the daemon that has it
        view = subprocess.run([sys.executable, "-m", "vigil", "monitors", "--json", "--store",
                               str(path)], cwd=ROOT, capture_output=True, text=True)
        assert f'"leader": "{socket.gethostname()}:{first.pid}"' in view.stdout
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    # Stopped cleanly, it handed the lease back: a new daemon leads at once.
    assert expired(Store(str(path)))
