"""Every probe kind against the real lab: healthy, then faults injected for real.

Each fault test asserts which checks turn non-ok (exactly those) and what they say.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from tests.conftest import VigilRunner
from vigil import lab
from vigil.checks.mq import MqParams, MqProbe, QueueSpec
from vigil.inventory import load_inventory
from vigil.lab.base import lab_dir
from vigil.result import Status

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("restore_lab")]


def check_lab(vigil: VigilRunner, *limit: str) -> dict[str, dict]:
    args = ["check", "--inventory", "inventory/lab", "--json", "--no-record"]
    if limit:
        args += ["--limit", ",".join(limit)]
    run = vigil(*args)
    assert "Traceback" not in run.err, run.err
    return {r["check"]: r for r in json.loads(run.out)}


def not_ok(results: dict[str, dict]) -> dict[str, str]:
    return {k: r["status"] for k, r in results.items() if r["status"] != "ok"}


def test_healthy_lab_is_all_ok(vigil: VigilRunner) -> None:
    results = check_lab(vigil)
    assert {r["kind"] for r in results.values()} >= {
        "host", "tcp", "dbpair", "backups", "mq", "ca", "power", "links", "http"}
    assert not_ok(results) == {}
    for r in results.values():  # every message reads in Chinese too
        assert any("\u4e00" <= ch <= "\u9fff" for ch in r["message_zh"]), r
    assert results["payment-db.dbpair"]["metrics"]["lag_bytes"] >= 0
    assert results["finance-router.host"]["metrics"]["clock_offset_s"] == pytest.approx(0, abs=0.5)
    assert results["finance-router.links"]["metrics"]["active_line"] == "primary"


# --- database pair (P4.3.2) ----------------------------------------------------------

def test_standby_stopped(vigil: VigilRunner) -> None:
    lab.component("pg").stop_node("standby")  # type: ignore[attr-defined]
    results = check_lab(vigil)
    assert not_ok(results) == {"payment-db.dbpair": "critical",
                               "payment-db.standby-port": "critical"}
    assert "standby pg-b down" in results["payment-db.dbpair"]["message"]


@pytest.fixture
def synchronous_primary() -> Iterator[None]:
    def sql(text: str) -> None:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", "5433", "-U", "postgres", "-AtX",
                        "-c", text], check=True, capture_output=True, timeout=30)

    sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
    sql("SELECT pg_reload_conf()")
    yield
    sql("ALTER SYSTEM RESET synchronous_standby_names")
    sql("SELECT pg_reload_conf()")


def test_a_lost_standby_under_synchronous_replication_says_commits_wait(
        vigil: VigilRunner, synchronous_primary: None) -> None:
    lab.component("pg").stop_node("standby")  # type: ignore[attr-defined]
    dbpair = check_lab(vigil, "payment-db")["payment-db.dbpair"]
    assert dbpair["status"] == "critical"
    assert "commits on primary pg-a wait" in dbpair["message"], dbpair["message"]
    assert "提交在等待" in dbpair["message_zh"] and dbpair["metrics"]["commits_wait"] is True


def test_two_primaries_is_split_brain(vigil: VigilRunner) -> None:
    lab.component("pg").promote_standby()  # type: ignore[attr-defined]
    results = check_lab(vigil)
    assert not_ok(results) == {"payment-db.dbpair": "critical"}
    dbpair = results["payment-db.dbpair"]
    assert "split brain" in dbpair["message"] and dbpair["metrics"]["primaries"] == 2
    assert "脑裂" in dbpair["message_zh"]


def test_primary_down_reports_standby_ready(vigil: VigilRunner) -> None:
    lab.component("pg").stop_node("primary")  # type: ignore[attr-defined]
    dbpair = check_lab(vigil, "payment-db")["payment-db.dbpair"]
    assert dbpair["status"] == "critical"
    assert "primary down" in dbpair["message"] and "start the standby at once" in dbpair["message"]
    assert dbpair["metrics"]["standby_ready_for_promotion"] is True


# --- backups (P3.2.1, P4.3.2) --------------------------------------------------------

def _age(folder: Path, hours: float) -> None:
    stamp = time.time() - hours * 3600
    for f in folder.iterdir():
        os.utime(f, (stamp, stamp))


def test_stale_backup_then_second_copy_lost(vigil: VigilRunner) -> None:
    backups = lab_dir() / "backups"
    _age(backups / "machine-room", 25)
    result = check_lab(vigil, "payment-db-backups")["payment-db-backups.backups"]
    assert result["status"] == "warning"
    assert "1 of 2 required locations (P4.3.2)" in result["message"]
    assert "h old (limit 24 h)" in result["message"]

    shutil.rmtree(backups / "other-building")
    result = check_lab(vigil)
    assert not_ok(result) == {"payment-db-backups.backups": "critical"}
    message = result["payment-db-backups.backups"]["message"]
    assert "no usable backup (P3.2.1(1))" in message and "folder missing" in message


def test_corrupt_backup_copy(vigil: VigilRunner) -> None:
    dump = next((lab_dir() / "backups" / "other-building").glob("*.dump"))
    dump.write_bytes(dump.read_bytes() + b"bit rot")
    result = check_lab(vigil, "payment-db-backups")["payment-db-backups.backups"]
    assert result["status"] == "warning" and "corrupt copy" in result["message"]


# --- MQ (P4.3.1(1), P4.3.7) ----------------------------------------------------------

def test_consumers_gone(vigil: VigilRunner) -> None:
    lab.component("consumers").down()
    results = check_lab(vigil)
    assert not_ok(results) == {"mq-broker.queues": "critical"}
    assert "vouchers.to-pboc: 0 consumers (needs 1)" in results["mq-broker.queues"]["message"]


def test_queue_jams_when_delivery_stalls() -> None:
    """Publish steadily to a queue nobody consumes: depth grows, nothing is delivered."""
    queue = "vouchers.jam-drill"
    params = pika.ConnectionParameters("127.0.0.1", 5672, "treasury",
                                       pika.PlainCredentials("guest", "guest"))
    conn = pika.BlockingConnection(params)
    channel = conn.channel()
    channel.queue_declare(queue, durable=False, auto_delete=False)
    channel.queue_purge(queue)
    inv = load_inventory("inventory/lab")
    spec = next(c for c in inv.checks if c.name == "mq-broker.queues")
    spec = spec.model_copy(update={"params": MqParams(
        vhost="treasury", queues=[QueueSpec(name=queue, min_consumers=0)])})
    try:
        deadline = time.monotonic() + 30
        result = MqProbe()(spec)
        while time.monotonic() < deadline:
            for _ in range(20):
                channel.basic_publish("", queue, b"voucher")
            time.sleep(0.25)
            result = MqProbe()(spec)
            if result.status is Status.CRITICAL:
                break
        assert result.status is Status.CRITICAL, result.message
        assert f"queue {queue} jammed" in result.message and "P4.3.1(1)" in result.message
        assert result.metrics[f"depth_rate:{queue}"] > 0
        assert result.metrics[f"deliver_rate:{queue}"] == 0
    finally:
        channel.queue_delete(queue)
        conn.close()


def test_paused_sending_is_reported(vigil: VigilRunner) -> None:
    env = lab.component("rabbitmq").env  # type: ignore[attr-defined]
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", "treasury", "bank-a",
                    ".*", "^$", ".*"], env={**os.environ, **env}, check=True)
    result = check_lab(vigil, "mq-broker")["mq-broker.queues"]
    assert result["status"] == "ok"
    assert result["metrics"]["sending_paused:bank-a"] is True
    assert result["metrics"]["sending_paused:pboc"] is False
    assert "sending paused for bank-a" in result["message"]


# --- CA / e-seal (P4.3.6) ------------------------------------------------------------

def test_revoked_in_the_ocsp_index(vigil: VigilRunner) -> None:
    lab.component("pki").revoke("server")  # type: ignore[attr-defined]
    results = check_lab(vigil)
    assert not_ok(results) == {"ca-seal.certificate": "critical"}
    message = results["ca-seal.certificate"]["message"]
    assert "REVOKED" in message and "on the CRL" in message
    assert results["ca-seal.certificate"]["metrics"]["ocsp_status"] == "revoked"


def test_expired_certificate(vigil: VigilRunner) -> None:
    inv = load_inventory("inventory/lab")
    spec = next(c for c in inv.checks if c.name == "ca-seal.certificate")
    from vigil.checks.ca import CaProbe

    expired = spec.model_copy(update={"params": spec.params.model_copy(update={"port": 18445})})
    result = CaProbe()(expired)
    assert result.status is Status.CRITICAL
    assert "certificate EXPIRED on 2024-02-01" in result.message
    assert result.metrics["days_to_expiry"] < 0 and result.metrics["chain_valid"] is False


def test_ocsp_responder_stopped(vigil: VigilRunner) -> None:
    lab.component("pki").stop_service("ocsp")  # type: ignore[attr-defined]
    results = check_lab(vigil)
    assert not_ok(results) == {"ca-seal.certificate": "critical"}
    assert "OCSP responder http://127.0.0.1:18880 unreachable" in \
        results["ca-seal.certificate"]["message"]


# --- power (P4.3.1) ------------------------------------------------------------------

def _ups(values: dict[str, str]) -> None:
    lab.component("nut").set_ups(values)  # type: ignore[attr-defined]  (waits for upsd)


def test_ups_on_battery_then_low_battery(vigil: VigilRunner) -> None:
    _ups({"ups.status": "OB", "battery.charge": "80", "battery.runtime": "2400"})
    result = check_lab(vigil, "ups")["ups.power"]
    assert result["status"] == "warning" and "on battery" in result["message"]

    _ups({"ups.status": "OB LB", "battery.charge": "15", "battery.runtime": "120"})
    results = check_lab(vigil)
    assert not_ok(results) == {"ups.power": "critical"}
    assert "low battery" in results["ups.power"]["message"]
    assert results["ups.power"]["metrics"]["battery_charge_percent"] == 15


# --- lines (P4.3.1(2)) ---------------------------------------------------------------

def test_primary_line_cut_then_both(vigil: VigilRunner) -> None:
    net = lab.component("net")
    net.set_line("primary", up=False)  # type: ignore[attr-defined]
    results = check_lab(vigil)
    assert not_ok(results) == {"finance-router.links": "critical"}
    links = results["finance-router.links"]
    assert "primary line down: switch to the backup line (P4.3.1(2))" in links["message"]
    assert "主线路中断：应切换到备用线路（P4.3.1(2)）" in links["message_zh"]
    assert links["metrics"]["line_up:backup"] is True

    net.set_line("backup", up=False)  # type: ignore[attr-defined]
    links = check_lab(vigil, "finance-router")["finance-router.links"]
    assert links["status"] == "critical"
    assert "all lines down" in links["message"] and "stop sending MQ data" in links["message"]


# --- SSH host keys -------------------------------------------------------------------

def test_changed_host_key_is_refused(vigil: VigilRunner) -> None:
    net_dir = lab_dir() / "net"
    known = (net_dir / "known_hosts").read_text()
    key = net_dir / "vgl-app1_host_ed25519"
    key.unlink()
    Path(f"{key}.pub").unlink()
    net = lab.component("net")
    from vigil.lab.procs import read_pid, stop

    stop(read_pid(net_dir / "vgl-app1_sshd.spawned"), "sshd")
    net.up()  # a new host key, as after a reinstall -- or an impostor
    (net_dir / "known_hosts").write_text(known)

    results = check_lab(vigil)
    # Both checks that SSH to that host refuse it: its own, and the backup copy kept there.
    assert not_ok(results) == {"voucher-library.host": "critical",
                               "payment-db-backups.backups": "warning"}
    message = results["voucher-library.host"]["message"]
    assert "host key of 10.77.0.11 CHANGED" in message and "refusing to connect" in message
    assert "CHANGED" in results["payment-db-backups.backups"]["message"]


def test_unknown_host_key_is_refused(vigil: VigilRunner) -> None:
    known = lab_dir() / "net" / "known_hosts"
    known.write_text("".join(line for line in known.read_text().splitlines(keepends=True)
                             if not line.startswith("10.77.0.11 ")))
    result = check_lab(vigil, "voucher-library")["voucher-library.host"]
    assert result["status"] == "critical" and "is unknown" in result["message"]


# --- services ------------------------------------------------------------------------

def test_voucher_service_down(vigil: VigilRunner) -> None:
    lab.component("net").stop_voucher_service()  # type: ignore[attr-defined]
    results = check_lab(vigil)
    assert not_ok(results) == {"voucher-library.health": "critical"}
    assert "unreachable" in results["voucher-library.health"]["message"]


def test_no_fault_escapes_as_a_crash(vigil: VigilRunner) -> None:
    """Everything down at once: every check still answers with a Result."""
    for name in ("consumers", "rabbitmq", "nut"):
        lab.component(name).down()
    threading.Event().wait(0.5)
    results = check_lab(vigil)
    assert all(r["status"] in ("critical", "unknown", "warning", "ok") for r in results.values())
    assert results["mq-broker.queues"]["status"] == "critical"
    assert results["ups.power"]["status"] == "critical"
