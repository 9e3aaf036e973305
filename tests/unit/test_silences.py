"""Maintenance windows (`vigil silence`): set by a contact, in force for their window
only, ended early by one; bad ones refused in one line. What a window does to pages and
steps: test_incidents.py (the tracker) and tests/lab/test_zabbix.py (the daemon)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tests.conftest import OVERRIDE, ROOT, VigilRunner
from vigil.alerting import silences
from vigil.inventory import load_inventory
from vigil.store import Store

DEMO = str(ROOT / "inventory/demo")


def test_a_window_is_set_listed_in_force_then_ended_and_each_is_an_event(
        vigil: VigilRunner, store_path: Path) -> None:
    run = vigil("silence", "add", "-i", DEMO, "--system", "monitoring-server", "--until",
                "2h", "--reason", "更换硬盘", "--as", "ops-duty", "--override-identity",
                "--json")
    assert run.code == 0, run.err
    made = json.loads(run.out)
    listed = vigil("silence", "list", "-i", DEMO, "--lang", "en")
    assert made["id"] in listed.out and "in force" in listed.out and "CST" in listed.out
    store = Store(str(store_path))
    assert silences.active(store, dt.datetime.now(dt.UTC))[0]["reason"] == "更换硬盘"
    ended = vigil("silence", "end", made["id"], "-i", DEMO, "--as", "ops-duty",
                  *OVERRIDE)
    assert ended.code == 0, ended.err
    assert silences.active(store, dt.datetime.now(dt.UTC)) == []
    again = vigil("silence", "end", made["id"], "-i", DEMO, "--as", "ops-duty", *OVERRIDE,
                  "--lang", "en")
    assert again.code == 3 and "is over already" in again.err
    assert [(e.kind, e.data["by"]) for e in store.events() if e.kind.startswith("silence.")
            ] == [("silence.added", "ops-duty"), ("silence.ended", "ops-duty")]


def test_a_window_ends_by_itself(tmp_path: Path) -> None:
    inv = load_inventory(ROOT / "inventory/demo")
    store = Store(str(tmp_path / "s.db"))
    now = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)
    silences.add(store, inv, system="monitoring-server", start=now + dt.timedelta(hours=1),
                 until=now + dt.timedelta(hours=3), reason="割接", by="ops-duty",
                 steps=False, now=now)
    assert [bool(silences.active(store, now + dt.timedelta(hours=h))) for h in (0, 1, 2, 3)
            ] == [False, True, True, False]


def test_bad_windows_are_refused_in_one_line(vigil: VigilRunner, store_path: Path) -> None:
    for args, said in (
            (["--system", "nope", "--until", "2h", "--as", "ops-duty"], "no system 'nope'"),
            (["--system", "monitoring-server", "--until", "2h", "--as", "someone"],
             "'someone' is not a contact"),
            (["--system", "monitoring-server", "--until", "2020-01-01 08:00", "--as",
              "ops-duty"], "must end after it starts"),
            (["--system", "monitoring-server", "--until", "soon", "--as", "ops-duty"],
             "'soon' is not a time")):
        run = vigil("silence", "add", "-i", DEMO, "--reason", "r", *args, "--override-identity",
                    "--lang", "en")
        refused = 4 if "someone" in args else 3  # a stranger is an identity refused
        assert run.code == refused and said in run.err and run.err.count("\n") == 1, run.err
    assert not Store(str(store_path)).events(kind="silence.added")


def test_windows_over_for_30_days_leave_the_working_set_and_stay_in_the_log(
        tmp_path: Path) -> None:
    inv = load_inventory(ROOT / "inventory/demo")
    store = Store(str(tmp_path / "s.db"))
    now = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)

    def window(at: dt.datetime) -> str:
        return silences.add(store, inv, system="monitoring-server", start=at,
                            until=at + dt.timedelta(hours=2), reason="割接", by="ops-duty",
                            steps=False, now=at)["id"]

    old, recent = window(now), window(now + dt.timedelta(days=20))
    latest = window(now + dt.timedelta(days=31))
    assert [s["id"] for s in silences.load(store)] == [recent, latest]
    assert [e.subject for e in store.events(kind="silence.added")] == [old, recent, latest]
