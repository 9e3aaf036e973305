"""`vigil plan show` renders the runbook with clause IDs, in Chinese and English."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import ROOT, VigilRunner
from vigil.domain import FaultClass
from vigil.runbook import load_runbook


def test_every_fault_class_has_steps_at_every_level() -> None:
    runbook = load_runbook()
    for klass in FaultClass:
        for level in ("IV", "III", "II", "I"):
            steps = runbook.steps(klass, level)
            assert steps, f"{klass} {level}"
            # A class's own section of the plan, or its preparations (P3: backups, the
            # pre-electronic backup system) that a level calls on.
            assert all(s.clause.startswith((klass.clause, "P3.")) for s in steps)


def test_database_level_iv_says_start_the_standby_at_once(vigil: VigilRunner) -> None:
    run = vigil("plan", "show", "--class", "database", "--level", "IV", "--json")
    assert run.code == 0, run.err
    steps = json.loads(run.out)
    assert steps[0]["clause"] == "P4.3.2" and steps[0]["kind"] == "auto"
    assert "立即" in steps[0]["text"] and "备用数据库" in steps[0]["text"]
    en = vigil("plan", "show", "--class", "mq_network", "--lang", "en")
    assert "handover record" in en.out and "P4.3.7" in en.out
    zh = vigil("plan", "show", "--class", "voucher_library", "--level", "recovery")
    assert "补录凭证" in zh.out and "恢复后" in zh.out
    assert vigil("plan", "show", "--level", "V").code == 3


def test_plan_coverage_lists_every_clause_and_flags_what_nothing_implements(
        vigil: VigilRunner, demo_copy: Path) -> None:
    run = vigil("plan", "coverage", "--inventory", "inventory/lab", "--json")
    assert run.code == 0, run.err
    rows = {r["clause"]: r for r in json.loads(run.out)}
    plan = (ROOT.parent / "shared/plan/emergency-plan.md")
    if plan.exists():  # every clause the plan's digest names in bold or as a heading
        named = set(re.findall(r"\*\*(P\d(?:\.\d)*(?:\(\d\))?)", plan.read_text()))
        assert named <= set(rows)
    assert "database.IV.activate-standby (auto)" in rows["P4.3.2"]["steps"]
    # A test credits a clause only by naming it (P4.3 is not P4.3.1), naming one of its
    # steps, or importing its code; a test file is never its code.
    assert "tests/unit/test_exchange.py" not in rows["P4.3"]["tests"]
    assert rows["P3.2.3"]["code"] == ["remediations/drills.py", "alerting/drills.py"]
    assert "tests/unit/test_drills.py" in rows["P3.2.3"]["tests"]
    assert rows["P3.2.3"]["state"] == "covered"
    assert "tests/unit/test_ladder.py" in rows["P4.1"]["tests"]  # imports alerting.ladder
    # A clause whose steps are all people's is shown apart from automated ones.
    assert rows["P4.3.3(1)"]["state"] == "people" and rows["P4.3.3(1)"]["implemented"]
    assert "payment-db.primary-port" in rows["P4.3.2"]["checks"]
    assert "tests/lab/test_drills.py" in rows["P4.3.1(2)"]["tests"]
    # The paper system is people's to keep; the runbook has them confirm it at core level
    # III, and a routine every 30 days opens the same check on record.
    assert rows["P3.2.2"]["steps"] == ["core.III.backup-system-ready (manual)"]
    assert rows["P3.2.2"]["code"] == ["remediations/routines.py"]
    assert "tests/unit/test_routines.py" in rows["P3.2.2"]["tests"]
    # code in the mapped folders is found where the package is (checks/ is vigil.checks)
    assert rows["P4.1"]["code"] == ["alerting/ladder.py", "alerting/calendar.py"]
    assert "checks/backups.py" in rows["P4.3.2"]["code"]
    assert vigil("plan", "coverage", "--inventory", "inventory/lab", "--strict").code == 0
    # A site that turns off the one step of P4.3.4(1) leaves it to nothing: flagged, and
    # --strict fails.
    with (demo_copy / "group_vars/all/site.yml").open("a") as fh:
        fh.write("vigil_runbook:\n  overrides:\n"
                 "    core.IV.s1: {enabled: false}\n")
    run = vigil("plan", "coverage", "--inventory", str(demo_copy), "--json")
    row = {r["clause"]: r for r in json.loads(run.out)}["P4.3.4(1)"]
    assert row["implemented"] is False and row["state"] == "missing"
    assert vigil("plan", "coverage", "--inventory", str(demo_copy), "--strict").code == 1
