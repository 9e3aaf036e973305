"""The runbook's routines (P3.2.2: the backup business system kept ready): opened by the
leading daemon's executor when due, told to their roles, ticked off with a note, due again
a period later. A real store and the lab inventory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.unit.test_executor import Drill as Harness
from vigil.inventory import load_inventory
from vigil.model import Inventory
from vigil.remediations import routines
from vigil.store import Store


@pytest.fixture(scope="module")
def inv() -> Inventory:
    return load_inventory(ROOT / "inventory/lab")


def test_the_backup_system_readiness_check_is_opened_done_and_due_again(
        inv: Inventory, tmp_path: Path) -> None:
    h = Harness(inv, Store(str(tmp_path / "s.db")))
    h.wait(1)  # a site never on record: due at once
    (due,) = h.store.events(kind="routine.due")
    assert due.subject == "backup-system-ready" and due.data["clause"] == "P3.2.2"
    told = [m for m in h.store.states("msg:").values() if m["kind"] == "routine"]
    assert {m["contact"] for m in told} == {"lab-duty"}  # the implementation team
    assert "纸质凭证打印" in told[0]["title"] and "vigil routine done" in told[0]["body"]
    h.wait(5)
    assert len(h.store.events(kind="routine.due")) == 1  # open: not told again each cycle
    with pytest.raises(PermissionError, match="implementation_team"):
        routines.done(h.store, inv, "backup-system-ready", "lab-leader", "ok", h.now)
    with pytest.raises(routines.RoutineRefused, match="--note"):
        routines.done(h.store, inv, "backup-system-ready", "lab-duty", " ", h.now)
    routines.done(h.store, inv, "backup-system-ready", "lab-duty",
                  "纸质凭证打印正常，人行文件导出已试", h.now)
    (row,) = routines.state(h.store, inv, h.now)
    assert row["status"] == "done" and not row["overdue"]
    assert row["next_due"] == (h.now + dt.timedelta(days=30)).isoformat()
    h.wait(29 * 24 * 60)
    assert len(h.store.events(kind="routine.due")) == 1
    h.wait(2 * 24 * 60)  # thirty days on: due again, on record
    assert len(h.store.events(kind="routine.due")) == 2
    assert routines.state(h.store, inv, h.now)[0]["overdue"]
