"""End-to-end fault drills on the real lab: a real fault, the real daemon, the real
playbooks. The clock may be moved forward; the faults and the remedies are real (issue 6)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import OVERRIDE, ROOT
from tests.lab.watcher import Watch, wait_until
from vigil import lab
from vigil.checks.registry import probe_for
from vigil.inventory import load_inventory
from vigil.lab.procs import port_open, read_pid
from vigil.remediations import first_aid

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("restore_lab")]
PG = lab.lab_dir() / "pg"


def psql(port: int, sql: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-AtX",
                           "-c", sql], capture_output=True, text=True, timeout=timeout)


def playbook(*args: str) -> None:
    run = subprocess.run([Path(sys.executable).parent / "ansible-playbook", "-i",
                          "inventory/lab", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    assert run.returncode == 0, run.stdout[-3000:]


def restore_pair() -> None:
    """Back to the lab's shape with the roles themselves: 5433 primary, 5434 standby."""
    if (PG / "primary" / "standby.signal").exists() or not port_open("127.0.0.1", 5433):
        playbook("playbooks/db-failover.yml", "-e", "db_failover_rebuild=true")
        playbook("playbooks/db-failover.yml", "-e", "db_failover_rebuild=true",
                 "-e", "db_failover_primary=lab-db-standby",
                 "-e", "db_failover_standby=lab-db-primary",
                 "-e", "standby_activation_switchover=true")


@pytest.fixture
def pair() -> Iterator[None]:
    yield
    restore_pair()


def timeline(w: Watch, incident: str) -> list[dict[str, Any]]:
    run = w.vigil("incidents", "show", incident, "--json", inventory=False)
    assert run.returncode == 0, run.stderr
    events: list[dict[str, Any]] = json.loads(run.stdout)["timeline"]
    return events


def test_primary_killed_the_standby_takes_over_at_once(
        watches: Callable[..., Watch], tmp_path: Path, pair: None) -> None:
    w = watches(tmp_path, limit="payment-db*")
    w.start()
    wait_until("daemon started", lambda: bool(w.store().events(kind="daemon.started")))
    time.sleep(2)
    assert w.open_incidents() == []

    os.kill(read_pid(PG / "primary" / "postmaster.pid") or 0, signal.SIGKILL)  # P4.3.2
    wait_until("the standby activated", lambda: (w.step("/IV/activate-standby") or {}).get(
        "status") in ("succeeded", "failed"), timeout=120)
    step = w.step("/IV/activate-standby")
    assert step and step["status"] == "succeeded", step
    assert w.stop() == 0

    # The new primary takes writes; the old one is fenced and would come back read-only.
    assert psql(5434, "SELECT pg_is_in_recovery()").stdout.strip() == "f"
    wrote = psql(5434, "CREATE TABLE IF NOT EXISTS drill (n int); INSERT INTO drill VALUES (1)")
    assert wrote.returncode == 0, wrote.stderr
    assert not port_open("127.0.0.1", 5433)
    assert (PG / "primary" / "standby.signal").exists()
    record = json.loads((lab.lab_dir() / "failover" / "old-primary.json").read_text())
    assert record["old_primary"] == "lab-db-primary" and record["new_primary_port"] == 5434

    # The owners were told, and the timeline shows each step with its clause.
    incident = step["incident"]
    told = [m for m in w.store().states("msg:").values() if m["incident"] == incident]
    assert any(m["contact"] == "lab-duty" and "P4.3.2" in m["body"] for m in told)
    kinds = [(e["kind"], e["data"].get("clause")) for e in timeline(w, incident)]
    assert ("step.planned", "P4.3.2") in kinds and ("step.succeeded", "P4.3.2") in kinds
    assert ("step.run.started", "P4.3.2") in kinds
    # First aid promoted at once (the old primary refused connections); the playbook then
    # fenced it, recorded it and verified a write.
    aid = [e["data"] for e in timeline(w, incident) if e["kind"] == "step.first_aid"]
    assert aid and aid[0]["done"] and "lab-db-primary refused connections" in aid[0]["why"]
    tasks = {e["data"]["task"]: e["data"]["status"] for e in timeline(w, incident)
             if e["kind"] == "step.run.task"}
    assert tasks["Promote the standby (P4.3.2)"] == "skipped"
    assert tasks["Make the old primary come back as a standby if someone restarts it"] == "ok"
    assert tasks["Insist that the old primary is down"] == "ok"
    assert tasks["Verify that the new primary takes a write"] == "ok"
    assert w.store().verify().ok


@pytest.fixture
def primary_cut_off() -> Iterator[None]:
    """The primary stays up, but nothing reaches its port (a partition, seen from here)."""
    rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", "5433", "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True)
    yield
    subprocess.run(["iptables", "-D", *rule], check=True)


def test_a_primary_cut_off_but_alive_is_never_promoted_over(
        pair: None, primary_cut_off: None) -> None:
    # First aid sees silence, not a refusal: it leaves the standby alone.
    aid = first_aid.promote_standby(load_inventory(ROOT / "inventory/lab"), {})
    assert not aid.done and aid.why.startswith("old primary lab-db-primary does not answer")
    # The playbook cannot ask the old primary's host either (as when SSH cannot reach it):
    # no proof that it is down, so no promotion, and a message for people.
    run = subprocess.run([Path(sys.executable).parent / "ansible-playbook", "-i",
                          "inventory/lab", "playbooks/db-failover.yml",
                          "-e", "standby_activation_primary_data=",
                          "-e", "standby_activation_fence_timeout=1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    assert run.returncode != 0
    assert "cannot confirm it is down (cut off is not down)" in run.stdout
    assert "standby_activation_fenced_by_hand=true" in run.stdout
    assert psql(5434, "SELECT pg_is_in_recovery()").stdout.strip() == "t"
    assert read_pid(PG / "primary" / "postmaster.pid")  # still running behind the cut


@pytest.fixture
def primary_hung() -> Iterator[list[psutil.Process]]:
    """Every process of the primary's cluster stopped in its tracks (SIGSTOP)."""
    postmaster = psutil.Process(read_pid(PG / "primary" / "postmaster.pid") or 0)
    procs = [postmaster, *postmaster.children()]
    for proc in procs:
        proc.suspend()
    yield procs
    for proc in procs:  # whatever the playbook left alive runs on, so the pair can be restored
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.resume()


def test_a_hung_primary_is_killed_on_its_host_before_the_standby_is_promoted(
        pair: None, primary_hung: list[psutil.Process]) -> None:
    """The lab has no BMC. A hung primary answers nothing and ends neither stop the playbook
    tries; on its host (reachable) it is killed — SIGKILL reaches a stopped process — and
    only once it is seen down is the standby promoted."""
    run = subprocess.run([Path(sys.executable).parent / "ansible-playbook", "-i",
                          "inventory/lab", "playbooks/db-failover.yml"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    assert run.returncode == 0, run.stdout[-3000:]
    killed = run.stdout.find("TASK [standby_activation : Kill the hung old primary's processes]")
    promoted = run.stdout.find("TASK [standby_activation : Promote the standby (P4.3.2)]")
    assert 0 <= killed < promoted, run.stdout[-3000:]
    for task in (killed, promoted):  # each ran (changed), in that order
        result = run.stdout[task:].split("\nTASK [", 1)[0]
        assert "changed:" in result, result
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in primary_hung)
    assert not port_open("127.0.0.1", 5433)
    assert (PG / "primary" / "standby.signal").exists()
    assert psql(5434, "SELECT pg_is_in_recovery()").stdout.strip() == "f"


@pytest.fixture
def standby_not_receiving() -> Iterator[None]:
    """The standby's WAL receiver pointed nowhere: it falls behind its primary."""
    conninfo = psql(5434, "SHOW primary_conninfo").stdout.strip()
    assert conninfo
    psql(5434, "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1'")
    psql(5434, "SELECT pg_reload_conf()")
    wait_until("the standby stops receiving", lambda: psql(
        5434, "SELECT count(*) FROM pg_stat_wal_receiver").stdout.strip() == "0", timeout=30)
    yield
    psql(5434, f"ALTER SYSTEM SET primary_conninfo = '{conninfo.replace(chr(39), chr(39) * 2)}'")
    psql(5434, "SELECT pg_reload_conf()")


def test_a_standby_further_behind_than_the_site_accepts_to_lose_is_not_promoted(
        standby_not_receiving: None) -> None:
    """Asynchronous replication: the primary writes 3 MB the standby never receives, the
    dbpair check sees it write, then the primary dies. First aid and the playbook both
    refuse the standby (the site accepts to lose 1 MiB, the role's default)."""
    inv = load_inventory(ROOT / "inventory/lab")
    psql(5433, "CREATE TABLE IF NOT EXISTS vigil_lag_drill (pad text)")
    psql(5433, "TRUNCATE vigil_lag_drill")
    assert psql(5433, "INSERT INTO vigil_lag_drill SELECT repeat('x', 1000) "
                      "FROM generate_series(1, 3000)").returncode == 0
    (spec,) = [c for c in inv.checks if c.kind == "dbpair"]
    probe_for("dbpair").run(spec)  # the monitoring server's look at the pair
    lab.component("pg").stop_node("primary")  # type: ignore[attr-defined]
    aid = first_aid.promote_standby(inv, {})
    assert not aid.done
    assert "bytes less WAL than the monitoring server last saw lab-db-primary write" in \
        aid.why and "standby_activation_max_lag_bytes 1048576" in aid.why, aid.why
    seen = aid.vars["standby_activation_seen_wal_bytes"]
    run = subprocess.run([Path(sys.executable).parent / "ansible-playbook", "-i",
                          "inventory/lab", "playbooks/db-failover.yml",
                          "-e", f"standby_activation_seen_wal_bytes={seen}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    assert run.returncode != 0
    assert "refusing to promote lab-db-standby" in run.stdout and \
        "less WAL than Vigil last saw lab-db-primary write" in run.stdout, run.stdout[-3000:]
    assert psql(5434, "SELECT pg_is_in_recovery()").stdout.strip() == "t"
    # (restore_lab starts the primary again; the standby, pointed back, catches up)


@pytest.fixture
def synchronous_pair() -> Iterator[Path]:
    """The lab's pair with synchronous replication (as the primary's own setting, by
    ALTER SYSTEM); yields where the released setting is recorded."""
    record = lab.lab_dir() / "failover" / "sync-released-lab-db-primary.json"
    record.unlink(missing_ok=True)
    psql(5433, "ALTER SYSTEM SET synchronous_standby_names = '*'")
    psql(5433, "SELECT pg_reload_conf()")
    wait_until("the standby synchronous", lambda: psql(
        5433, "SELECT sync_state FROM pg_stat_replication").stdout.strip() == "sync")
    yield record
    psql(5433, "ALTER SYSTEM RESET synchronous_standby_names")
    psql(5433, "SELECT pg_reload_conf()")
    record.unlink(missing_ok=True)


def _commits_within(seconds: float) -> bool:
    """Whether a payment-like commit on the primary is acknowledged within `seconds` (a
    commit waiting for a synchronous standby waits whatever statement_timeout says)."""
    try:
        run = psql(5433, "CREATE TABLE IF NOT EXISTS vigil_sync_drill (n int); "
                         "INSERT INTO vigil_sync_drill VALUES (1)", timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    assert run.returncode == 0, run.stderr
    return True


def test_a_lost_synchronous_standby_stops_holding_commits_and_sync_comes_back_with_it(
        watches: Callable[..., Watch], tmp_path: Path, synchronous_pair: Path) -> None:
    pg = lab.component("pg")
    pg.stop_node("standby")  # type: ignore[attr-defined]
    assert not _commits_within(5)  # the fault: every commit waits for the lost standby
    w = watches(tmp_path, limit="payment-db*")
    w.start()
    wait_until("synchronous replication released", lambda: (w.step("/IV/release-sync") or {})
               .get("status") in ("succeeded", "failed"), timeout=120)
    assert (w.step("/IV/release-sync") or {})["status"] == "succeeded"
    assert _commits_within(5)
    assert json.loads(synchronous_pair.read_text())["synchronous_standby_names"] == "*"
    # the primary was never failed over: it answers the monitoring server and writes
    assert psql(5433, "SELECT pg_is_in_recovery()").stdout.strip() == "f"

    pg.start_node("standby")  # type: ignore[attr-defined]
    wait_until("synchronous replication put back", lambda: (
        w.step("/recovery/restore-sync") or {}).get("status") in ("succeeded", "failed"),
        timeout=180)
    assert (w.step("/recovery/restore-sync") or {})["status"] == "succeeded"
    assert psql(5433, "SHOW synchronous_standby_names").stdout.strip() == "*"
    assert psql(5433, "SELECT sync_state FROM pg_stat_replication").stdout.strip() == "sync"
    assert not synchronous_pair.exists()
    assert w.stop() == 0


def _route(netns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "ip", "route", "show", "default"],
                          capture_output=True, text=True).stdout


@pytest.fixture
def line_back() -> Iterator[None]:
    yield
    lab.component("net").set_line("primary", True)  # type: ignore[attr-defined]
    playbook("playbooks/line-failback.yml", "-e", "line_failback_hold_seconds=2")


def test_line_cut_stop_sending_then_approved_backup_line_then_resume_and_failback(
        watches: Callable[..., Watch], tmp_path: Path, line_back: None) -> None:
    w = watches(tmp_path, limit="finance-router*")
    w.start()
    wait_until("daemon started", lambda: bool(w.store().events(kind="daemon.started")))
    assert "primary0" in _route("vgl-router")
    lab.component("net").set_line("primary", False)  # type: ignore[attr-defined]

    # Level IV: every party is told at once to stop sending MQ data (P4.3.1(1)).
    wait_until("stop-sending notices", lambda: bool(w.step("/IV/stop-mq")), timeout=60)
    notices = [m for m in w.store().states("msg:").values() if m["kind"] == "step.notify"]
    assert {m["contact"] for m in notices} == {"lab-duty", "lab-leader", "lab-pboc",
                                               "lab-bank-a"}
    assert all("P4.3.1(1)" in m["title"] for m in notices)

    # Level III a day later: the lab's runbook has a person approve the backup line.
    w.jump(25)
    wait_until("approval asked", lambda: bool(w.step("/III/backup-line")), timeout=60)
    key = w.step("/III/backup-line")["key"]  # type: ignore[index]
    denied = w.vigil("deny", key, "--as", "lab-leader", "--reason", "wait for the carrier",
                     "--override-identity")
    assert denied.returncode == 0, denied.stderr
    refused = w.vigil("approve", "backup-line", "--as", "lab-pboc", *OVERRIDE)
    assert refused.returncode == 4 and "leadership_group" in refused.stdout
    time.sleep(3)
    assert "primary0" in _route("vgl-router")  # nothing ran on a denial
    approved = w.vigil("approve", "backup-line", "--as", "lab-leader", *OVERRIDE)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    wait_until("backup line in use", lambda: (w.step("/III/backup-line") or {}).get(
        "status") in ("succeeded", "failed"), timeout=120)
    assert w.step("/III/backup-line")["status"] == "succeeded"  # type: ignore[index]
    assert "backup0" in _route("vgl-router")

    # The carrier mends the line: resume sending, and fail back after the hold time.
    lab.component("net").set_line("primary", True)  # type: ignore[attr-defined]
    wait_until("failback done", lambda: (w.step("/recovery/line-failback") or {}).get(
        "status") in ("succeeded", "failed"), timeout=180)
    assert w.step("/recovery/line-failback")["status"] == "succeeded"  # type: ignore[index]
    assert "primary0" in _route("vgl-router")
    resume = [m for m in w.store().states("msg:").values()
              if m["kind"] == "step.notify" and "P4.3.1(2)" in m["title"]]
    assert {m["contact"] for m in resume} == {"lab-duty", "lab-leader", "lab-pboc",
                                              "lab-bank-a"}
    assert w.stop() == 0
    kinds = [e.kind for e in w.store().events() if e.subject == key]
    assert kinds[:2] == ["step.planned", "step.denied"]
    assert "step.approval_refused" in kinds and "step.succeeded" in kinds


def _wait_status(w: Watch, suffix: str, timeout: float = 120) -> dict[str, Any]:
    final = ("succeeded", "failed", "done", "sent", "skipped")
    wait_until(f"step {suffix} finished", lambda: (w.step(suffix) or {}).get("status") in final,
               timeout=timeout)
    step = w.step(suffix)
    assert step is not None
    return step


def _notices(w: Watch, clause: str) -> set[str]:
    return {m["contact"] for m in w.store().states("msg:").values()
            if m["kind"] == "step.notify" and clause in m["title"]}


EVERY_PARTY = {"lab-duty", "lab-leader", "lab-pboc", "lab-bank-a"}


def test_voucher_library_stopped_is_restarted_and_recovery_opens_the_follow_up_tasks(
        watches: Callable[..., Watch], tmp_path: Path) -> None:
    w = watches(tmp_path, limit="voucher-library*")
    w.start()
    wait_until("daemon started", lambda: bool(w.store().events(kind="daemon.started")))
    lab.component("net").stop_voucher_service()  # type: ignore[attr-defined]

    # IV: restart the service at once and tell every party to stop sending (P4.3.5(1)).
    step = _wait_status(w, "/IV/restart-service")
    assert step["status"] == "succeeded" and step["attempts"] == 1, step
    assert "check(s) pass again" in step["last"]  # verified by the checks that opened it
    assert port_open("10.77.0.11", 8080)
    assert _notices(w, "P4.3.5(1)") == EVERY_PARTY

    # Recovery: resume sending; the supplementary vouchers and the libraries' check are
    # people's tasks until ticked off (P4.3.5(3)).
    wait_until("recovery steps", lambda: bool(w.step("/recovery/supplementary")), timeout=60)
    assert _notices(w, "P4.3.1(2)") == EVERY_PARTY
    done = w.vigil("task", "done", "supplementary", "--as", "lab-duty", "--note", "12 re-signed",
                   *OVERRIDE)
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(w.vigil("status", "--json").stdout)
    assert [s["step"] for s in status["steps"]] == ["verify-libraries"]
    assert w.stop() == 0
    report = w.vigil("report", "show", step["incident"], "--lang", "en")
    assert report.returncode == 0, report.stderr
    assert "| IV/restart-service | Restart the voucher library service | P4.3.5(1) | auto " \
        "| succeeded" in report.stdout
    (row,) = [r for r in report.stdout.splitlines() if r.startswith("| recovery/supplementary")]
    assert "| P4.3.5(3) | manual | done | lab-duty |" in row
    assert "- recovery/supplementary " in report.stdout and "note: 12 re-signed" in report.stdout


def test_ocsp_down_waits_tells_parties_and_at_level_ii_takes_the_core_steps(
        watches: Callable[..., Watch], tmp_path: Path) -> None:
    w = watches(tmp_path, limit="ca-seal*")
    w.start()
    wait_until("daemon started", lambda: bool(w.store().events(kind="daemon.started")))
    lab.component("pki").stop_service("ocsp")  # type: ignore[attr-defined]

    wait_until("stop-sending notices", lambda: bool(w.step("/IV/stop-mq")), timeout=90)
    assert _notices(w, "P4.3.6") == EVERY_PARTY
    assert w.step("/IV/s1")["status"] == "open"  # type: ignore[index]  # wait for recovery
    assert not w.step("/III/s1")

    w.jump(24 * 6)  # six days on: past two working days whatever today is, short of five
    wait_until("level II planned", lambda: bool(w.step("/II/as-core")), timeout=60)
    # P4.3.6: at level II, handle as a core-system fault of the same level (P4.3.4(3)).
    core = w.step("/II/core.backup-system")
    assert core and core["status"] == "awaiting" and core["clause"] == "P4.3.4(3)"
    asked = {m["contact"] for m in w.store().states("msg:").values()
             if m["kind"] == "step.approval"}
    assert asked == {"lab-leader"}
    assert w.step("/II/core.s1")["status"] == "open"  # type: ignore[index]
    assert w.stop() == 0


def test_a_dead_consumer_jams_its_queue_which_is_spooled_and_replayed_once_in_order(
        watches: Callable[..., Watch], tmp_path: Path) -> None:
    import pika

    consumers = lab.component("consumers")
    consumers.down()
    tag = f"drill-{time.time_ns()}"
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", 5672, "treasury", pika.PlainCredentials("finance", "lab-only-finance")))
    channel = conn.channel()
    channel.confirm_delivery()
    for n in range(30):
        channel.basic_publish("", "vouchers.to-pboc", f"<voucher n='{n}'/>".encode(),
                              pika.BasicProperties(message_id=f"{tag}-{n:02d}",
                                                   delivery_mode=2, headers={"n": n}))
    conn.close()

    w = watches(tmp_path, limit="mq-broker*")
    w.start()
    step = _wait_status(w, "/IV/drain-queues")
    assert step["status"] == "succeeded", step
    spool = lab.lab_dir() / "spool" / "vouchers.to-pboc"
    spooled = [line for f in spool.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert sum(tag in line for line in spooled) == 30

    consumers.up()
    step = _wait_status(w, "/recovery/replay-queues")
    assert step["status"] == "succeeded", step
    received = consumers.received  # type: ignore[attr-defined]
    wait_until("the consumer got them", lambda: sum(
        tag in line for line in received.read_text().splitlines()) >= 30, timeout=30)
    time.sleep(1)
    ids = [json.loads(line)["id"] for line in received.read_text().splitlines()
           if tag in line]
    assert ids == [f"{tag}-{n:02d}" for n in range(30)]  # each once, in order
    assert not list(spool.glob("*.jsonl"))  # every spool replayed
    assert w.stop() == 0


@pytest.fixture
def healthy_page() -> Iterator[Path]:
    page = lab.lab_dir() / "net" / "www" / "health"
    yield page
    page.write_text("OK voucher-library\n")


def test_a_remedy_that_fails_verification_is_tried_twice_then_handed_to_people(
        watches: Callable[..., Watch], tmp_path: Path, healthy_page: Path) -> None:
    # The service comes back but stays degraded: its health page no longer says OK, which
    # the restart role (told here to wait for any answer) accepts and Vigil's check does not.
    w = watches(tmp_path, limit="voucher-library*", site={"vigil_runbook": {"overrides": {
        "voucher_library.IV.restart-service": {"run": {"vars": {
            "target": "lab-app1", "service_restart_name": "voucher-service",
            "service_restart_manager": "command",
            "service_restart_command": f"{lab.lab_dir()}/net/voucher-service restart",
            "service_restart_health_url": "http://10.77.0.11:8080/health",
            "service_restart_only_if_unhealthy": False}}}}}})
    w.start()
    wait_until("daemon started", lambda: bool(w.store().events(kind="daemon.started")))
    healthy_page.write_text("DEGRADED\n")
    wait_until("first attempt done", lambda: (w.step("/IV/restart-service") or {}).get(
        "attempts") == 1 and w.step("/IV/restart-service")["status"] == "pending",  # type: ignore[index]
        timeout=120)
    assert "still failing" in w.step("/IV/restart-service")["last"]  # type: ignore[index]
    w.jump(0.05)  # past the retry delay
    step = _wait_status(w, "/IV/restart-service")
    assert step["status"] == "failed" and step["attempts"] == 2
    w.jump(1)
    time.sleep(3)
    assert w.step("/IV/restart-service")["attempts"] == 2  # type: ignore[index]  # no third try
    escalated = w.store().events(kind="step.escalated")
    assert escalated and set(escalated[0].data["to"]) == {"lab-duty", "lab-leader"}
    assert any("自动处置未成功" in m["title"] for m in w.store().states("msg:").values())
    assert w.stop() == 0
