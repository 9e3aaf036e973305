"""The incident tracker's logic, driven by Results and a moving clock (real store, real
policy and messages; the sender records instead of delivering)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vigil.alerting.incidents import Tracker, acknowledge
from vigil.delivery.outbox import Outbox
from vigil.domain import FaultClass
from vigil.inventory import load_inventory
from vigil.model import Inventory
from vigil.result import Result, Status
from vigil.store import Store

T0 = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)  # Wednesday 10:00 in Shanghai


@pytest.fixture(scope="module")
def inv() -> Inventory:
    return load_inventory(ROOT / "inventory/lab")


class Harness:
    def __init__(self, inv: Inventory, store: Store) -> None:
        self.inv, self.store = inv, store
        self.tracker = Tracker(inv, store)
        self.sent: list[tuple[str, str]] = []  # (key, title)
        self.bodies: list[str] = []
        self.outbox = Outbox(inv, store, sender=self._send)
        self.now = T0

    def _send(self, url: str, title: str, body: str, key: str) -> str | None:
        self.sent.append((key, title))
        self.bodies.append(body)
        return None

    def see(self, system: str, status: Status, minutes: float = 1,
            check: str | None = None, fault_class: FaultClass = FaultClass.DATABASE) -> None:
        self.now += dt.timedelta(minutes=minutes)
        r = Result(check=check or f"{system}.probe", kind="tcp", system=system,
                   target="t", fault_class=fault_class, status=status, message="seen",
                   message_zh="看到", observed_at=self.now)
        self.tracker.observe([r], self.now)
        self.outbox.deliver(self.now)

    def wait(self, minutes: float) -> None:
        self.now += dt.timedelta(minutes=minutes)
        self.tracker.tick(self.now)
        self.outbox.deliver(self.now)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.store.events() if e.kind.startswith("incident.")]


@pytest.fixture
def h(inv: Inventory, tmp_path: Path) -> Harness:
    return Harness(inv, Store(str(tmp_path / "s.db")))


def test_opens_after_n_failures_with_onset_at_the_first(h: Harness) -> None:
    h.see("payment-db", Status.CRITICAL)
    assert h.tracker.open == {}
    first = h.now
    h.see("payment-db", Status.CRITICAL)
    (inc,) = h.tracker.open.values()
    assert dt.datetime.fromisoformat(inc["onset"]) == first and inc["mark"] == "IV"
    titles = [t for _, t in h.sent]
    assert titles and all("四级" in t and "支付系统数据库（主）" in t for t in titles)
    # "whoever finds it reports it": the implementation team is told at once (P4.2)
    assert any("lab-duty" in k for k, _ in h.sent)
    assert not any("lab-leader" in k for k, _ in h.sent)  # leadership only from III
    # the database vendor owns payment-db: told at level IV, not only from II
    assert any("/lab-vendor#" in k for k, _ in h.sent)
    h.see("payment-db-standby", Status.CRITICAL)
    h.see("mq-broker", Status.CRITICAL, fault_class=FaultClass.MQ_NETWORK)
    h.see("mq-broker", Status.CRITICAL, fault_class=FaultClass.MQ_NETWORK)
    assert not any("mq-broker" in k and "/lab-vendor#" in k for k, _ in h.sent)


def test_flapping_opens_once_and_does_not_recover_while_flapping(h: Harness) -> None:
    for _ in range(6):
        h.see("payment-db", Status.CRITICAL)
        h.see("payment-db", Status.OK)
    assert h.kinds().count("incident.opened") == 1
    assert h.kinds().count("incident.recovered") == 0
    for _ in range(12):
        h.see("payment-db", Status.OK)
    assert h.kinds().count("incident.recovered") == 1


def test_escalation_reminders_ack_and_recovery(h: Harness) -> None:
    h.see("payment-db", Status.CRITICAL)
    h.see("payment-db", Status.CRITICAL)
    (inc_id,) = h.tracker.open
    h.wait(61)  # renotify interval 60 min: a reminder
    assert any("/reminder/IV/1/" in k for k, _ in h.sent)
    acknowledge(h.store, h.inv, inc_id, "lab-duty", h.now)
    before = len(h.sent)
    h.wait(61)
    assert len(h.sent) == before, "ack stops repeats at this level"
    h.wait(4 * 60)  # 4 h mark: IV confirmed, everyone at IV told again
    assert h.tracker.open[inc_id]["mark"] == "IV+"
    h.wait(20 * 60)  # 24 h: level III adds the leadership group
    assert h.tracker.open[inc_id]["mark"] == "III"
    assert any("/level/III/0/lab-leader" in k for k, _ in h.sent)
    h.see("payment-db", Status.OK)
    h.see("payment-db", Status.OK)
    assert inc_id not in h.tracker.open
    recovered = [k for k, _ in h.sent if "/recovered/" in k]
    assert {k.split("/")[-1].split("#")[0] for k in recovered} == {"lab-duty", "lab-leader",
                                                                     "lab-vendor"}


def test_a_dead_line_explains_the_faults_behind_it(h: Harness) -> None:
    infra = FaultClass.INFRASTRUCTURE
    h.see("finance-router", Status.CRITICAL, fault_class=infra)
    h.see("finance-router", Status.CRITICAL, fault_class=infra)
    pages = len(h.sent)
    # mq-broker and voucher-library depend on finance-router
    for _ in range(2):
        h.see("mq-broker", Status.CRITICAL, fault_class=FaultClass.MQ_NETWORK)
    mq = next(i for i in h.tracker.open.values() if i["system"] == "mq-broker")
    assert mq["cause"] and mq["cause"].startswith("finance-router")
    assert len(h.sent) == pages, "a consequence pages nobody"
    for _ in range(2):  # the line comes back, the MQ fault stays: now it is its own
        h.see("finance-router", Status.OK, fault_class=infra)
    assert mq["cause"] is None and "incident.unexplained" in h.kinds()
    assert any(k.startswith(mq["id"]) for k, _ in h.sent[pages:])


def test_state_survives_a_restart(h: Harness, inv: Inventory) -> None:
    h.see("payment-db", Status.CRITICAL)
    h.see("payment-db", Status.CRITICAL)
    (inc_id,) = h.tracker.open
    again = Tracker(inv, h.store)  # a new process
    assert list(again.open) == [inc_id]
    rung, _ = again.reached(again.open[inc_id], h.now + dt.timedelta(hours=25))
    assert rung.mark == "III"


def test_a_step_the_site_disabled_is_never_announced(inv: Inventory, tmp_path: Path) -> None:
    """Messages quote the site's runbook (P6), not the plan as shipped."""
    vendor, standby = "无备用数据库时立即联系软硬件厂商", "立即按数据库保护方案启用备用数据库"
    shipped = Harness(inv, Store(str(tmp_path / "a.db")))
    for _ in range(2):
        shipped.see("payment-db", Status.CRITICAL)
    assert any(vendor in b for b in shipped.bodies) and any(standby in b for b in shipped.bodies)
    site = tmp_path / "inv"
    shutil.copytree(ROOT / "inventory/lab", site)
    vars_file = site / "group_vars/all/site.yml"
    vars_file.write_text(vars_file.read_text().replace(
        "  overrides:\n", "  overrides:\n    database.IV.call-vendor: {enabled: false}\n", 1))
    adapted = Harness(load_inventory(site), Store(str(tmp_path / "b.db")))
    for _ in range(2):
        adapted.see("payment-db", Status.CRITICAL)
    assert adapted.bodies and all(standby in b for b in adapted.bodies)
    assert not any(vendor in b for b in adapted.bodies)


def test_a_silenced_system_s_incident_climbs_unheard_and_speaks_when_the_silence_ends(
        h: Harness) -> None:
    h.tracker.silence({"payment-db": "Zabbix maintenance 'cutover' on db1"}, h.now)
    h.see("payment-db", Status.CRITICAL)
    h.see("payment-db", Status.CRITICAL)
    (inc_id,) = h.tracker.open
    h.wait(61)  # a reminder's time
    h.wait(4 * 60)  # IV confirmed
    assert h.tracker.open[inc_id]["mark"] == "IV+"
    assert h.sent == [], "nobody paged while silenced"
    assert h.kinds().count("incident.silenced") == 1
    h.tracker.silence({}, h.now)
    h.wait(1)
    held = [k for k, _ in h.sent]  # nobody heard of it: the opening, at today's level
    assert held and all(k.startswith(f"{inc_id}/opened/IV+/0/") for k in held)
    assert [e.kind for e in h.store.events() if e.kind.startswith("system.")] == [
        "system.silenced", "system.unsilenced"]


def test_an_onset_from_the_source_s_clock_sets_the_level(h: Harness) -> None:
    """A Zabbix problem 25 hours old is level III as soon as Vigil opens it."""
    for _ in range(2):
        h.now += dt.timedelta(minutes=1)
        r = Result(check="payment-db.zabbix", kind="zabbix", system="payment-db", target="z",
                   fault_class=FaultClass.DATABASE, status=Status.CRITICAL, message="p",
                   observed_at=h.now, since=h.now - dt.timedelta(hours=25))
        h.tracker.observe([r], h.now)
    (inc,) = h.tracker.open.values()
    assert dt.datetime.fromisoformat(inc["onset"]) == h.now - dt.timedelta(hours=25,
                                                                           minutes=1)
    assert inc["mark"] == "III"


def test_a_reported_fault_opens_at_the_given_onset_and_recovers_when_withdrawn(
        h: Harness) -> None:
    from vigil.alerting import reported

    h.now += dt.timedelta(hours=26)
    rep = reported.report(h.store, h.inv, system="payment-db", note="表空间告警，手工发现",
                          by="lab-duty", since=h.now - dt.timedelta(hours=25), now=h.now)
    assert h.tracker.open == {}  # the leading daemon's tracker takes it on its next look
    h.wait(0.5)
    (inc,) = h.tracker.open.values()
    # 25 hours ago by the person's account: level III at once, the leadership group told
    assert inc["onset"] == rep["since"] and inc["mark"] == "III"
    assert any("lab-leader" in k for k, _ in h.sent)
    assert any("表空间告警，手工发现" in b for b in h.bodies)
    # A detected check of the same fault joins it; withdrawing the report alone does not
    # recover it while the check still fails.
    h.see("payment-db", Status.CRITICAL)
    h.see("payment-db", Status.CRITICAL)
    reported.withdraw(h.store, h.inv, incident=inc["id"], note="扩容完成", by="lab-duty",
                      now=h.now)
    h.wait(0.5)
    assert inc["id"] in h.tracker.open
    h.see("payment-db", Status.OK)
    h.see("payment-db", Status.OK)
    assert h.tracker.open == {}
    kinds = [e.kind for e in h.store.events()]
    assert kinds.count("fault.reported") == 1 and kinds.count("fault.withdrawn") == 1
    assert "incident.recovered" in kinds


def test_a_report_by_a_stranger_or_of_an_unknown_system_is_refused(h: Harness) -> None:
    from vigil.alerting import reported

    with pytest.raises(PermissionError):
        reported.report(h.store, h.inv, system="payment-db", note="x", by="nobody",
                        since=h.now, now=h.now)
    with pytest.raises(reported.ReportRefused, match="no system"):
        reported.report(h.store, h.inv, system="nope", note="x", by="lab-duty",
                        since=h.now, now=h.now)
    with pytest.raises(reported.ReportRefused, match="future"):
        reported.report(h.store, h.inv, system="payment-db", note="x", by="lab-duty",
                        since=h.now + dt.timedelta(hours=1), now=h.now)
    assert h.store.events() == []


def test_another_party_s_receipt_does_not_quiet_the_reminders_to_those_working_on_it(
        h: Harness) -> None:
    """An agent bank's staff, told of the finance bureau's incident, confirm receipt; the
    reminders go on to the duty engineer until someone working on it acknowledges."""
    h.see("payment-db", Status.CRITICAL)
    h.see("payment-db", Status.CRITICAL)
    (inc_id,) = h.tracker.open
    receipt = acknowledge(h.store, h.inv, inc_id, "lab-bank-a", h.now)
    assert not receipt.quiets and receipt.mark == "IV"
    assert h.kinds().count("incident.received") == 1 and "incident.acked" not in h.kinds()
    h.wait(61)
    assert any("/reminder/IV/1/lab-duty" in k for k, _ in h.sent), "the reminders go on"
    assert acknowledge(h.store, h.inv, inc_id, "lab-duty", h.now).quiets
    before = len(h.sent)
    h.wait(61)
    assert len(h.sent) == before
