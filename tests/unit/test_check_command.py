"""`vigil check` on the demo inventory, as a user and as a script would run it."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from tests.conftest import VigilRunner
from vigil.checks.backups import BackupsParams, BackupsProbe
from vigil.checks.tcp import TcpParams, TcpProbe
from vigil.domain import FaultClass
from vigil.model import CheckSpec
from vigil.result import Status


def test_json_is_a_list_of_results_and_exit_code_is_the_worst(vigil: VigilRunner,
                                                              tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "db-2026-11-28.dump").write_bytes(b"dump")
    run = vigil("check", "--json", env={"VIGIL_DEMO_BACKUPS": str(backups)})
    results = json.loads(run.out)
    assert {r["check"] for r in results} >= {"monitoring-server.host", "local-backups.backups"}
    for r in results:
        assert r["status"] in ("ok", "warning", "critical", "unknown")
        assert set(r) >= {"check", "target", "fault_class", "status", "metrics", "message",
                          "observed_at", "duration_s"}
    by_name = {r["check"]: r for r in results}
    assert by_name["local-backups.backups"]["status"] == "ok"
    worst = max((r["status"] for r in results),
                key=["ok", "warning", "unknown", "critical"].index)
    assert run.code == {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}[worst]


def test_only_status_changes_are_recorded(vigil: VigilRunner, tmp_path: Path) -> None:
    backups = tmp_path / "b"
    backups.mkdir()
    env = {"VIGIL_DEMO_BACKUPS": str(backups)}
    vigil("check", "--limit", "local-backups", env=env)
    vigil("check", "--limit", "local-backups", env=env)
    (backups / "x.dump").write_bytes(b"data")
    vigil("check", "--limit", "local-backups", env=env)
    events = json.loads(vigil("events", "list", "--json").out)
    assert [(e["data"]["previous"], e["data"]["status"]) for e in events] == [
        (None, "critical"), ("critical", "ok")]


def test_table_output_in_chinese_by_default_and_english_on_request(vigil: VigilRunner) -> None:
    zh = vigil("check", "--limit", "monitoring-server")
    assert "监控服务器" in zh.out and "状态" in zh.out
    en = vigil("check", "--limit", "monitoring-server", "--lang", "en")
    assert "Monitoring server" in en.out and "Status" in en.out


def _spec(kind: str, params: object, timeout: float = 2) -> CheckSpec:
    return CheckSpec(name=f"t.{kind}", kind=kind, system="t", fault_class=FaultClass.DATABASE,
                     host="h", address="127.0.0.1", params=params, timeout_s=timeout)


def test_tcp_probe_against_a_real_listener_and_a_closed_port() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        up = TcpProbe()(_spec("tcp", TcpParams(port=port)))
    down = TcpProbe()(_spec("tcp", TcpParams(port=port)))
    assert up.status is Status.OK and up.metrics["reachable"] is True
    assert down.status is Status.CRITICAL and down.metrics["reachable"] is False


def _backup(folder: Path, name: str, data: bytes, *, age_h: float = 0,
            checksum: str | None = None) -> None:
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    digest = checksum or hashlib.sha256(data).hexdigest()
    (folder / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    stamp = time.time() - age_h * 3600
    os.utime(path, (stamp, stamp))


def test_backups_need_two_fresh_whole_copies(tmp_path: Path) -> None:
    room, offsite = tmp_path / "room", tmp_path / "offsite"
    params = BackupsParams(locations=[str(room), str(offsite)])
    probe = BackupsProbe()

    _backup(room, "pay.dump", b"rows")
    r = probe(_spec("backups", params))
    assert r.status is Status.WARNING and "P4.3.2" in r.message  # one building only

    _backup(offsite, "pay.dump", b"rows")
    assert probe(_spec("backups", params)).status is Status.OK

    _backup(offsite, "pay.dump", b"rows", checksum="0" * 64)  # corrupt copy
    r = probe(_spec("backups", params))
    assert r.status is Status.WARNING and "does not match" in r.message

    _backup(room, "pay.dump", b"rows", age_h=30)
    _backup(offsite, "pay.dump", b"rows", age_h=26)
    r = probe(_spec("backups", params))
    assert r.status is Status.CRITICAL and "P3.2.1(1)" in r.message
    assert r.metrics["newest_age_hours"] >= 26
