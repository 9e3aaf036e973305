"""Drills (P3.2.3) as the tracker, the executor and the record see them: a real store and
the lab inventory; the fault is a stream of Results and the playbook runner a stand-in
(tests/lab/test_drill_runs.py runs whole drills on the lab)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.unit.test_executor import Drill as Harness
from vigil.alerting import drills as drill_state
from vigil.domain import FaultClass
from vigil.inventory import load_inventory
from vigil.model import Inventory
from vigil.remediations import drills
from vigil.store import Store


@pytest.fixture(scope="module")
def inv() -> Inventory:
    return load_inventory(ROOT / "inventory/lab")


@pytest.fixture
def h(inv: Inventory, tmp_path: Path) -> Harness:
    return Harness(inv, Store(str(tmp_path / "s.db")))


def _running(h: Harness, plan: drills.DrillPlan, inv: Inventory) -> drill_state.Drill:
    drill = drills.start(h.store, inv, plan, "lab-duty", h.now)
    h.tracker.drills = drill_state.running(h.store)  # what the daemon does each cycle
    drills.mark(h.store, drill["id"], "caused", {"action": plan.cause.text("en")})
    return drill


def test_a_drill_s_incident_is_tagged_told_to_participants_only_and_climbs_faster(
        h: Harness, inv: Inventory) -> None:
    plan = drills.load_plan("line-primary", inv).model_copy(update={"speed": 60})
    plan = plan.model_copy(update={"participants": ["lab-duty", "leadership_group"]})
    drill = _running(h, plan, inv)
    assert drill["participants"] == ["lab-duty", "lab-leader"]  # the role resolved
    h.fail("finance-router", FaultClass.INFRASTRUCTURE, "finance-router.links")
    (inc,) = h.tracker.open.values()
    assert inc["drill"] == drill["id"] and inc["mark"] == "IV"
    h.wait(23)  # 24 minutes of drill time are 24 hours of the plan's ladder
    assert h.tracker.open[inc["id"]]["mark"] == "III"
    msgs = [m for m in h.store.states("msg:").values() if m["incident"]]
    assert msgs and {m["contact"] for m in msgs} <= {"lab-duty", "lab-leader"}
    assert all(m["title"].startswith(("【演练】", "[DRILL]")) for m in msgs)
    # every party's stop-sending notice (P4.3.1(1)) reaches only the drill's participants
    assert {m["contact"] for m in msgs if m["kind"] == "step.notify"} == {"lab-duty",
                                                                          "lab-leader"}
    assert h.rec("/III/backup-line")["drill"] == drill["id"]
    # a real fault of another system at the same time is not the drill's
    h.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    real = [i for i in h.tracker.open.values() if i["system"] == "payment-db"]
    assert real and "drill" not in real[0]


def test_the_drill_s_record_evaluates_it_and_its_digest_is_in_the_chain(
        h: Harness, inv: Inventory, tmp_path: Path) -> None:
    plan = drills.load_plan("db-primary", inv)
    drill = _running(h, plan, inv)
    h.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    # what `vigil drill run` records when the standby takes its first write
    drills.mark(h.store, drill["id"], "writable", {"host": "lab-db-standby", "seconds": 2.5})
    assert drills.walked(h.store, plan, drill["id"])  # activate-standby finished
    drills.healing(h.store, drill["id"])
    h.recover("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    assert drills.settled(h.store, drill["id"])
    ended = drills.end(h.store, drill["id"], h.now, "done")
    # the vendor's call was people's work left open: closed with the drill, not run later
    assert h.rec("/IV/call-vendor")["status"] == "skipped"
    findings = drills.evaluate(h.store, inv, plan, drill["id"])
    by = {f.what_en: f for f in findings}
    assert by["fault detected"].ok and by["level IV reached"].ok
    assert by["step IV/activate-standby (P4.3.2) @ payment-db"].ok
    assert by["lab-vendor told"].ok and by["nobody outside the drill told"].ok
    # the plan states 3 s from the kill to the standby's first write
    wrote = by["lab-db-standby takes writes"]
    assert (wrote.expected, wrote.actual, wrote.ok) == ("≤ 3 s", "2.5 s", True)
    assert by["recovered by the drill's end"].ok and drills.passed(findings)
    files = drills.archive(h.store, inv, plan, ended, findings, tmp_path / "records")
    assert sorted(p.name for p in files) == sorted(
        f"{drill['id']}.{lang}.{ext}" for lang in ("zh", "en") for ext in ("md", "html"))
    zh = (tmp_path / "records" / f"{drill['id']}.zh.md").read_text()
    assert "# 应急演练记录" in zh and "vigil lab fault pg-primary" in zh
    assert "数据库厂商工程师 (lab-vendor): ________________" in zh  # sign-off lines
    assert "| 步骤 IV/activate-standby（P4.3.2）@ payment-db | ≤ 180 s |" in zh
    (recorded,) = h.store.events(kind="drill.recorded")
    for path in files:
        assert recorded.data["sha256"][path.name] == hashlib.sha256(
            path.read_bytes()).hexdigest()
    assert recorded.data["passed"] is True
    assert drills.overdue(h.store, inv, h.now) == sorted(
        {s.fault_class.value for s in inv.systems.values()} - {"database"})


def test_a_drill_that_misses_its_times_fails_its_evaluation(h: Harness,
                                                            inv: Inventory) -> None:
    plan = drills.load_plan("line-primary", inv)
    drill = _running(h, plan, inv)
    h.fail("finance-router", FaultClass.INFRASTRUCTURE, "finance-router.links")
    h.wait(10)  # nobody approves the backup line for ten minutes of drill time
    drills.end(h.store, drill["id"], h.now, "done")
    by = {f.what_en: f for f in drills.evaluate(h.store, inv, plan, drill["id"])}
    assert by["step III/backup-line (P4.3.1(2)) @ finance-router"].ok is False
    assert by["recovered by the drill's end"].ok is False


def test_a_standby_slower_to_take_writes_than_the_plan_states_fails_the_drill(
        h: Harness, inv: Inventory) -> None:
    plan = drills.load_plan("db-primary", inv)
    drill = _running(h, plan, inv)
    h.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    drills.mark(h.store, drill["id"], "writable", {"host": "lab-db-standby", "seconds": 3.5})
    drills.end(h.store, drill["id"], h.now, "done")
    findings = drills.evaluate(h.store, inv, plan, drill["id"])
    wrote = {f.what_en: f for f in findings}["lab-db-standby takes writes"]
    assert (wrote.expected, wrote.actual, wrote.ok) == ("≤ 3 s", "3.5 s", False)
    assert not drills.passed(findings)


def test_no_drill_over_a_real_fault_nor_two_on_one_system(h: Harness,
                                                          inv: Inventory) -> None:
    plan = drills.load_plan("db-primary", inv)
    h.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    with pytest.raises(drills.DrillRefused, match="real incident is open"):
        drills.start(h.store, inv, plan, "lab-duty", h.now)
    line = drills.load_plan("line-primary", inv)
    drills.start(h.store, inv, line, "lab-duty", h.now)
    with pytest.raises(drills.DrillRefused, match="in drill line-primary-"):
        drills.start(h.store, inv, line, "lab-duty", h.now)


@pytest.mark.parametrize(("change", "needle"), [
    ({"systems": ["nope"]}, "systems: no system 'nope'"),
    ({"systems": ["payment-db"]}, "'payment-db' is a database system, not infrastructure"),
    ({"participants": ["ghost"]}, "participants: 'ghost' is neither a contact nor a role"),
    ({"cause": {"lab": ["down"]}}, "lab: one of fault, line, up"),
    ({"cause": {"lab": ["up"], "playbook": "x.yml"}}, "exactly one of"),
    ({"levels": ["IV+"]}, "not one of the plan's levels"),
    ({"speed": 0}, "speed"),
    ({"expect": {"writable": {"lab-app1": 3}}},
     "expect.writable names 'lab-app1', not a database host"),
])
def test_a_bad_drill_plan_is_one_line_naming_the_file_and_field(
        inv: Inventory, tmp_path: Path, change: dict[str, object], needle: str) -> None:
    raw = yaml.safe_load((ROOT / "inventory/lab/drills/line-primary.yml").read_text())
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump({**raw, **change}, allow_unicode=True))
    with pytest.raises(drills.DrillRefused) as exc:
        drills.load_plan(str(path), inv)
    assert str(path) in str(exc.value) and needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_while_a_drill_heals_its_automatic_steps_wait_and_are_not_run_after_it(
        h: Harness, inv: Inventory) -> None:
    plan = drills.load_plan("db-primary", inv)
    drill = _running(h, plan, inv)
    drills.healing(h.store, drill["id"])
    h.tracker.drills = drill_state.running(h.store)
    h.executor.healing = {s for s, d in h.tracker.drills.items() if d["status"] == "healing"}
    # the pair is being rebuilt: the primary's port drops, but no failover fights it
    h.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    h.wait(5)
    assert h.runs == [] and h.rec("/IV/activate-standby")["status"] == "pending"
    drills.end(h.store, drill["id"], h.now, "done")
    h.executor.healing = set()
    h.wait(1)
    assert h.runs == [] and h.rec("/IV/activate-standby")["status"] == "skipped"
