"""The runbook executor's logic: steps planned per level, runs bounded and verified,
approvals by role (two people for P4.3.3(4)), expiry, people's tasks, notices to every
party. A real store and the real lab inventory; the playbook runner and the re-run of
checks are stand-ins here (the lab drills in tests/lab run the real ones)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ROOT
from vigil.alerting.incidents import Tracker
from vigil.domain import FaultClass
from vigil.inventory import load_inventory
from vigil.model import Inventory
from vigil.remediations import steps
from vigil.remediations.executor import Executor
from vigil.remediations.first_aid import Aid
from vigil.remediations.playbook_run import Outcome
from vigil.result import Result, Status
from vigil.runbook import Run, RunbookError, site_runbook
from vigil.store import Store

T0 = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)  # Wednesday 10:00 in Shanghai


@pytest.fixture(scope="module")
def inv() -> Inventory:
    return load_inventory(ROOT / "inventory/lab")


class Drill:
    def __init__(self, inv: Inventory, store: Store, *, verify_ok: bool = True,
                 observe_only: bool = False) -> None:
        self.store, self.now = store, T0
        self.runs: list[str] = []
        self.run_vars: list[dict[str, Any]] = []
        self.verify_ok = verify_ok
        self.tracker = Tracker(inv, store)
        self.aids: list[str] = []
        self.executor = Executor(inv, store, runner=self._runner, verifier=self._verifier,
                                 observe_only=observe_only, now=lambda: self.now,
                                 aid=self._aid)

    def _aid(self, name: str, inv: Inventory, run_vars: Any) -> Aid:
        self.aids.append(name)
        return Aid(True, "promoted", vars={"standby_activation_seen_wal_bytes": 123})

    def _runner(self, run: Run, inventory: str, ident: str, check: bool, timeout: float,
                on_task: Any) -> Outcome:
        self.runs.append(run.playbook)
        self.run_vars.append(dict(run.vars))
        on_task({"task": "Do it", "host": "lab", "status": "ok", "changed": True})
        return Outcome(status="successful", rc=0, changed=1)

    def _verifier(self, specs: list[Any]) -> list[Result]:
        status = Status.OK if self.verify_ok else Status.CRITICAL
        return [Result(check=s.name, kind=s.kind, system=s.system, target="t",
                       fault_class=s.fault_class, status=status, message="again",
                       observed_at=self.now) for s in specs]

    def fail(self, system: str, klass: FaultClass, check: str, times: int = 2) -> None:
        for _ in range(times):
            self.now += dt.timedelta(minutes=1)
            self.tracker.observe([Result(check=check, kind="tcp", system=system, target="t",
                                         fault_class=klass, status=Status.CRITICAL,
                                         message="down", observed_at=self.now)], self.now)
        self.step()

    def recover(self, system: str, klass: FaultClass, check: str) -> None:
        for _ in range(2):
            self.now += dt.timedelta(minutes=1)
            self.tracker.observe([Result(check=check, kind="tcp", system=system, target="t",
                                         fault_class=klass, status=Status.OK, message="up",
                                         observed_at=self.now)], self.now)
        self.step()

    def wait(self, minutes: float) -> None:
        self.now += dt.timedelta(minutes=minutes)
        self.tracker.tick(self.now)
        self.step()

    def step(self) -> None:
        self.executor.tick(self.now)
        self.executor.wait(10)

    def rec(self, suffix: str) -> dict[str, Any]:
        (hit,) = [r for k, r in self.store.states("step:").items() if k.endswith(suffix)]
        return hit

    def kinds(self, key: str) -> list[str]:
        return [e.kind for e in self.store.events() if e.subject == key]


@pytest.fixture
def drill(inv: Inventory, tmp_path: Path) -> Drill:
    return Drill(inv, Store(str(tmp_path / "s.db")))


def test_database_fault_activates_the_standby_at_once_and_lists_the_vendor_task(
        drill: Drill) -> None:
    drill.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    assert drill.runs == ["db-failover.yml"]  # P4.3.2: at once, at level IV
    assert drill.aids == ["promote-standby"]  # first aid before the playbook
    # what the first aid saw (where the old primary last wrote) the playbook holds to too
    assert drill.run_vars[0]["standby_activation_seen_wal_bytes"] == 123
    auto = drill.rec("/IV/activate-standby")
    assert auto["status"] == "succeeded" and auto["clause"] == "P4.3.2"
    assert drill.kinds(auto["key"]) == ["step.planned", "step.run.started", "step.first_aid",
                                        "step.run.task", "step.run.finished", "step.succeeded"]
    assert drill.rec("/IV/call-vendor")["status"] == "open"
    drill.wait(10)
    assert drill.runs == ["db-failover.yml"]  # planned once, run once


def test_a_silenced_system_s_automatic_step_waits_for_the_window_s_end(drill: Drill) -> None:
    drill.executor.held = {"payment-db"}  # the daemon's: a window without --steps
    drill.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    drill.wait(10)
    assert drill.runs == [] and drill.rec("/IV/activate-standby")["status"] == "pending"
    drill.executor.held = set()
    drill.wait(1)
    assert drill.runs == ["db-failover.yml"]


def test_a_held_failover_is_skipped_once_the_primary_is_back(drill: Drill) -> None:
    drill.executor.held = {"payment-db"}
    drill.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    drill.recover("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    drill.executor.held = set()
    drill.wait(1)
    assert drill.runs == []  # no failover of a primary that is healthy again
    rec = drill.rec("/IV/activate-standby")
    assert rec["status"] == "skipped"
    (skipped,) = [e for e in drill.store.events(kind="step.skipped") if e.subject == rec["key"]]
    assert skipped.data["why"] == steps.MOOT


def test_a_standby_fault_does_not_activate_the_standby(drill: Drill) -> None:
    drill.fail("payment-db-standby", FaultClass.DATABASE, "payment-db.standby-port")
    assert drill.runs == []
    rec = drill.rec("/IV/activate-standby")
    assert rec["status"] == "skipped"
    (skipped,) = [e for e in drill.store.events(kind="step.skipped") if e.subject == rec["key"]]
    assert skipped.data["failing"] == ["payment-db.standby-port@t"]


def test_a_remedy_that_fails_verification_is_tried_twice_then_given_to_people(
        inv: Inventory, tmp_path: Path) -> None:
    drill = Drill(inv, Store(str(tmp_path / "s.db")), verify_ok=False)
    drill.fail("voucher-library", FaultClass.VOUCHER_LIBRARY, "voucher-library.health")
    rec = drill.rec("/IV/restart-service")
    assert rec["status"] == "pending" and rec["attempts"] == 1
    assert "still failing" in rec["last"]
    drill.wait(0.2)
    assert drill.runs == ["restart-service.yml"]  # not before the retry delay
    for _ in range(5):
        drill.wait(5)
    rec = drill.rec("/IV/restart-service")
    assert drill.runs == ["restart-service.yml"] * 2 and rec["status"] == "failed"
    escalated = [e for e in drill.store.events(kind="step.escalated")]
    assert escalated and set(escalated[0].data["to"]) == {"lab-duty", "lab-leader"}
    titles = [m["title"] for m in drill.store.states("msg:").values()
              if m["kind"] == "step.escalated"]
    assert titles and all("自动处置未成功" in t and "P4.3.5(1)" in t for t in titles)


def test_every_party_is_told_to_stop_sending_and_to_resume_after_recovery(
        drill: Drill, inv: Inventory) -> None:
    drill.fail("finance-router", FaultClass.INFRASTRUCTURE, "finance-router.links")
    told = {m["contact"] for m in drill.store.states("msg:").values() if m["kind"] == "step.notify"}
    assert told == {"lab-duty", "lab-leader", "lab-pboc", "lab-bank-a"}  # not the supervisor
    english = [m["title"] for m in drill.store.states("msg:").values()
               if m["kind"] == "step.notify" and m["contact"] == "lab-bank-a"]
    assert english == ["[All parties] Tell every party at once to stop sending MQ data so the "
                       "queues do not jam (P4.3.1(1))"]
    assert drill.runs == []  # the backup line waits for level III
    drill.wait(24 * 60)
    # the lab's inventory has a person approve it (P6: a site adapts the plan)
    assert drill.rec("/III/backup-line")["status"] == "awaiting" and drill.runs == []
    steps.approve(drill.store, inv, drill.executor.runbook, "backup-line", "lab-leader",
                  drill.now)
    drill.step()
    assert drill.runs == ["line-failover.yml"]
    drill.recover("finance-router", FaultClass.INFRASTRUCTURE, "finance-router.links")
    resume = [m["title"] for m in drill.store.states("msg:").values()
              if m["kind"] == "step.notify" and "恢复" in m["title"]]
    assert len(resume) == 3 and all("P4.3.1(2)" in t for t in resume)
    assert drill.runs == ["line-failover.yml", "line-failback.yml"]


def _peripheral_at(drill: Drill, level_days: int) -> None:
    drill.fail("voucher-library", FaultClass.PERIPHERAL, "peripheral.probe")
    drill.wait(level_days * 24 * 60)


def test_denied_then_refused_for_the_wrong_role_then_approved(drill: Drill,
                                                              inv: Inventory) -> None:
    _peripheral_at(drill, 3)  # Wednesday + 2 working days: level II
    book = drill.executor.runbook
    key = drill.rec("/II/stop-auto-processing")["key"]
    with pytest.raises(PermissionError, match="needs leadership_group"):
        steps.deny(drill.store, inv, book, key, "lab-bank-a", "no", drill.now)
    assert drill.kinds(key)[-1] == "step.denial_refused"
    rec = steps.deny(drill.store, inv, book, "stop-auto-processing", "lab-leader",
                     "not yet", drill.now)
    assert rec["status"] == "denied"
    with pytest.raises(PermissionError, match="needs leadership_group"):
        steps.approve(drill.store, inv, book, key, "lab-pboc", drill.now)
    assert drill.kinds(key)[-1] == "step.approval_refused"
    assert drill.rec("/II/stop-auto-processing")["status"] == "denied"
    rec = steps.approve(drill.store, inv, book, key, "lab-leader", drill.now)
    assert rec["status"] == "done"  # nothing to run: the people carry it out
    assert [e.kind for e in drill.store.events() if e.subject == key][-4:] == [
        "step.denied", "step.approval_refused", "step.approved", "step.authorised"]


def test_back_end_data_work_needs_the_team_and_the_supervisor(drill: Drill,
                                                              inv: Inventory) -> None:
    _peripheral_at(drill, 9)  # level I: P4.3.3(4)
    book = drill.executor.runbook
    rec = steps.approve(drill.store, inv, book, "backend-data", "lab-duty", drill.now)
    assert rec["status"] == "awaiting"
    with pytest.raises(steps.StepError, match="somebody else"):
        steps.approve(drill.store, inv, book, "backend-data", "lab-duty", drill.now)
    rec = steps.approve(drill.store, inv, book, "backend-data", "lab-supervisor", drill.now)
    assert rec["status"] == "done" and [a["by"] for a in rec["approvals"]] == [
        "lab-duty", "lab-supervisor"]
    approvals = [e.data["by"] for e in drill.store.events(kind="step.approved")]
    assert approvals == ["lab-duty", "lab-supervisor"]


def test_approvals_expire(drill: Drill, inv: Inventory) -> None:
    _peripheral_at(drill, 3)
    drill.wait(5 * 60)
    rec = drill.rec("/II/stop-auto-processing")
    assert rec["status"] == "expired"
    with pytest.raises(steps.StepError):
        steps.approve(drill.store, inv, drill.executor.runbook, rec["key"], "lab-leader",
                      drill.now)
    # Those who could have approved it and the team running the incident are told, with
    # the expiry in the site's local time (10:00 UTC+8 on planning + 4 h).
    told = {m["contact"]: m for m in drill.store.states("msg:").values()
            if m["kind"] == "step.expired"}
    assert {"lab-leader", "lab-duty"} <= set(told)
    planned = dt.datetime.fromisoformat(rec["planned_at"]) + dt.timedelta(hours=4)
    assert f"{planned.astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%d %H:%M} CST" in \
        told["lab-leader"]["body"]


def test_people_tick_off_manual_steps(drill: Drill, inv: Inventory) -> None:
    drill.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    with pytest.raises(PermissionError):
        steps.done(drill.store, inv, drill.executor.runbook, "call-vendor", "nobody", "",
                   drill.now)
    # Another party's technician and a leader do not tick off the finance bureau's work.
    for person in ("lab-bank-a", "lab-leader"):
        with pytest.raises(PermissionError, match="owner of payment-db"):
            steps.done(drill.store, inv, drill.executor.runbook, "call-vendor", person, "",
                       drill.now)
    rec = steps.done(drill.store, inv, drill.executor.runbook, "call-vendor", "lab-duty",
                     "vendor on the phone", drill.now)
    assert rec["status"] == "done"
    assert drill.store.events(kind="step.done")[0].data["note"] == "vendor on the phone"


def test_a_system_s_owner_ticks_off_its_tasks(drill: Drill, inv: Inventory) -> None:
    drill.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    rec = steps.done(drill.store, inv, drill.executor.runbook, "call-vendor", "lab-vendor",
                     "on my way", drill.now)  # the database vendor owns payment-db
    assert rec["done_by"] == "lab-vendor"


def test_observe_only_runs_nothing_and_records_what_would_run(inv: Inventory,
                                                               tmp_path: Path) -> None:
    drill = Drill(inv, Store(str(tmp_path / "s.db")), observe_only=True)
    drill.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    assert drill.runs == []
    assert drill.rec("/IV/activate-standby")["status"] == "observed"
    assert drill.store.events(kind="step.observed")[0].data["would_run"] == "db-failover.yml"


def test_a_site_overrides_steps_and_bad_overrides_name_the_step() -> None:
    book = site_runbook({"database.IV.call-vendor": {"enabled": False},
                         "database.IV.activate-standby": {"run": {"vars": {"x": 1}}}}, {})
    assert [s.id for s in book.steps(FaultClass.DATABASE, "IV")] == ["activate-standby",
                                                                      "release-sync"]
    step = book.steps(FaultClass.DATABASE, "IV")[0]
    assert step.run and step.run.playbook == "db-failover.yml" and step.run.vars == {"x": 1}
    with pytest.raises(RunbookError, match=r"database\.IV\.no-such-step: no such step"):
        site_runbook({"database.IV.no-such-step": {"attempts": 1}}, {})
    with pytest.raises(RunbookError, match="attempts"):
        site_runbook({"database.IV.activate-standby": {"attempts": 0}}, {})


def test_the_summary_report_tells_the_leadership_what_the_plan_did(drill: Drill,
                                                                    inv: Inventory) -> None:
    from vigil.remediations import report

    drill.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    incident = drill.rec("/IV/activate-standby")["incident"]
    steps.done(drill.store, inv, drill.executor.runbook, "call-vendor", "lab-duty",
               "厂商已到场 <script>alert(1)</script>", drill.now)
    zh = report.incident_report(drill.store, inv, incident)
    assert "# 故障总结报告：支付系统数据库（主）" in zh and "尚未恢复" in zh
    assert "| IV/activate-standby | 立即按数据库保护方案启用备用数据库，同时修复生产库 | " \
        "P4.3.2 | auto | succeeded (verified by the playbook) | Vigil |" in zh
    assert "（尚未填写：vigil report edit）" in zh  # the analysis is people's to write
    # the level the plan gives, and when Vigil recorded it, in local time with the zone
    assert f"| 四级 | {T0 + dt.timedelta(minutes=1):%Y-%m-%d} 10:01 CST |" in zh
    report.save_analysis(drill.store, inv, incident, {"cause": "主库磁盘损坏",
                                                      "lessons": "增加磁盘监控"},
                         "lab-duty", drill.now)
    report.save_analysis(drill.store, inv, incident, {"responsibilities": "无人员责任"},
                         "lab-leader", drill.now)
    en = report.incident_report(drill.store, inv, incident, "en")
    assert "### Cause\n\n主库磁盘损坏" in en and "### Responsibilities\n\n无人员责任" in en
    (row,) = [r for r in en.splitlines() if r.startswith("| IV/call-vendor |")]
    assert "| No standby: call the software / hardware vendor | P4.3.2 | manual | done | " \
        "lab-duty |" in row
    assert "note: 厂商已到场" in en  # the task's note
    assert "| 实验值班员 (lab-duty) |" in en and "| 数据库厂商工程师 (lab-vendor) |" in en
    assert "Event-log hash chain: ok" in en
    assert "Done by Vigil at once (before the playbook):\n\n- " in en
    page = report.as_html(en, "en")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<table>" in page
    with pytest.raises(report.ReportRefused, match="unknown field"):
        report.save_analysis(drill.store, inv, incident, {"blame": "x"}, "lab-duty", drill.now)


def test_the_summary_report_is_sent_to_the_leadership_group(drill: Drill,
                                                            inv: Inventory) -> None:
    from vigil.remediations import report

    drill.fail("payment-db", FaultClass.DATABASE, "payment-db.primary-port")
    incident = drill.rec("/IV/activate-standby")["incident"]
    assert report.send(drill.store, inv, incident, "lab-duty", drill.now) == ["lab-leader"]
    (msg,) = [m for m in drill.store.states("msg:").values() if m["kind"] == "report"]
    assert msg["contact"] == "lab-leader" and msg["body"].startswith("# 故障总结报告")
    (sent,) = drill.store.events(kind="report.sent")
    assert sent.data["by"] == "lab-duty" and len(sent.data["sha256"]["zh"]) == 64


def test_a_silenced_system_s_notices_to_every_party_wait_for_the_window_s_end(
        drill: Drill) -> None:
    drill.executor.quiet = {"finance-router"}  # the daemon's: a window on the system
    drill.fail("finance-router", FaultClass.INFRASTRUCTURE, "finance-router.links")
    drill.wait(10)
    stop = drill.rec("/IV/stop-mq")
    assert stop["status"] == "held"
    assert not [m for m in drill.store.states("msg:").values() if m["kind"] == "step.notify"]
    drill.executor.quiet = set()
    drill.wait(1)  # the window ended: every party is told to stop sending now
    assert drill.rec("/IV/stop-mq")["status"] == "sent"
    told = {m["contact"] for m in drill.store.states("msg:").values()
            if m["kind"] == "step.notify"}
    assert told == {"lab-duty", "lab-leader", "lab-pboc", "lab-bank-a"}
    assert drill.kinds(stop["key"]) == ["step.planned", "step.held", "step.released"]
