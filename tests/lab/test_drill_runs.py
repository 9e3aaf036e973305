"""Whole drills through `vigil drill run` on the real lab (P3.2.3): the fault is caused for
real, the running daemon and the participants walk the plan, the fault is healed, and the
archived record is checked. Nothing of a drill pages anyone outside it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OVERRIDE, ROOT
from tests.lab.test_drills import _route, line_back, pair, psql  # noqa: F401 (fixtures)
from tests.lab.watcher import Watch, wait_until

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("restore_lab")]


def _drill(w: Watch, plan: str, records: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vigil", "drill", "run", plan, "--as", "lab-duty",
         *OVERRIDE, "--json",
         "--inventory", str(w.inventory), "--out-dir", str(records)],
        cwd=ROOT, env=w.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    stdout, stderr = proc.communicate(timeout=900)
    return proc.returncode, json.loads(stdout) if stdout.strip() else {}, stderr


def _nobody_else_paged(w: Watch, participants: set[str]) -> None:
    """Every message about an incident is the drill's, tagged, and reached participants
    only; no real incident opened."""
    store = w.store()
    incidents = list(store.states("incident:").values())
    assert incidents and all(i.get("drill") for i in incidents)
    msgs = [m for m in store.states("msg:").values() if m["incident"]]
    assert msgs and {m["contact"] for m in msgs} <= participants
    assert all(m["title"].startswith(("【演练】", "[DRILL]")) for m in msgs)


def test_a_database_drill_fails_over_heals_the_pair_and_archives_its_record(
        watches: Callable[..., Watch], tmp_path: Path, pair: None) -> None:  # noqa: F811
    w = watches(tmp_path, limit="payment-db*")
    w.start()
    wait_until("daemon leads", lambda: bool(w.store().events(kind="daemon.started")))
    code, result, stderr = _finished(_drill(w, "db-primary", tmp_path / "records"))
    assert code == 0, (result, stderr)
    assert result["passed"] is True
    # The first incident's standby activation ran; the heal's own faults remedied nothing.
    first = next(f for f in result["findings"]
                 if f["what_en"] == "step IV/activate-standby (P4.3.2) @ payment-db")
    assert first["actual"].startswith("succeeded") and first["ok"]
    # The drill's stated target: the standby took writes within 3 s of the kill.
    wrote = next(f for f in result["findings"] if f["what_en"] == "lab-db-standby takes writes")
    assert wrote["expected"] == "≤ 3 s" and wrote["ok"], wrote
    # Healed: the lab's shape again, 5433 the primary taking writes.
    assert psql(5433, "SELECT pg_is_in_recovery()").stdout.strip() == "f"
    assert psql(5434, "SELECT pg_is_in_recovery()").stdout.strip() == "t"
    _nobody_else_paged(w, {"lab-duty", "lab-vendor"})
    md = Path(next(f for f in result["files"] if f.endswith(".en.md"))).read_text()
    assert "Overall: passed" in md and "drill.caused" in md and "drill.healed" in md
    listed = w.vigil("drill", "list", "--json")
    assert json.loads(listed.stdout)[0]["passed"] is True
    status = json.loads(w.vigil("status", "--json").stdout)
    assert "database" not in status["undrilled_fault_classes"]
    assert status["open_incidents"] == []
    assert w.stop() == 0


def test_a_line_drill_walks_to_level_iii_on_its_fast_ladder_with_an_approval(
        watches: Callable[..., Watch], tmp_path: Path, line_back: None) -> None:  # noqa: F811
    w = watches(tmp_path, limit="finance-router*")
    w.start()
    wait_until("daemon leads", lambda: bool(w.store().events(kind="daemon.started")))
    proc = _drill(w, "line-primary", tmp_path / "records")
    # Level III (24 hours by the plan) comes a minute in; the leadership group approves.
    wait_until("backup line asked", lambda: (w.step("/III/backup-line") or {}).get(
        "status") == "awaiting", timeout=240)
    approved = w.vigil("approve", "backup-line", "--as", "lab-leader", *OVERRIDE)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    code, result, stderr = _finished(proc)
    assert code == 0, (result, stderr)
    found = {f["what_en"]: f for f in result["findings"]}  # one incident: names are unique
    assert found["level III reached"]["ok"] and found["lab-leader told"]["ok"]
    failback = found["step recovery/line-failback (P4.3.1(2)) @ finance-router"]
    assert failback["actual"].startswith("succeeded")
    assert "primary0" in _route("vgl-router")
    _nobody_else_paged(w, {"lab-duty", "lab-leader"})  # not the banks, not the pboc
    assert w.stop() == 0
