"""The database host's self-fence (`roles/db_self_fence/files/vigil_self_fence.py`): its
decision, and the program itself against local stand-ins — a peer that refuses (it
answers), a peer that is silent (a listener whose backlog is full drops new connections),
and a "postmaster" process the fence command stops."""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ROOT
from vigil.lab.procs import port_open
from vigil.model import Host, SelfFence
from vigil.remediations import self_fence

PROGRAM = ROOT / "roles/db_self_fence/files/vigil_self_fence.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vigil_self_fence", PROGRAM)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sf = _module()


def test_fences_only_after_no_peer_answered_for_the_whole_limit() -> None:
    standby, monitor = sf.Peer("standby", "10.0.0.2", 5432), sf.Peer("monitor", "10.0.0.9", 22)
    hearing = sf.Hearing((standby, monitor), limit_s=4, now=0.0)

    def look(now: float, *heard: object) -> bool:
        hearing.heard(now, {p: p in heard for p in (standby, monitor)})
        return bool(hearing.must_fence(now))

    assert not look(0.5)
    assert not look(3.9)  # started as if just heard: a full limit first
    assert not look(4.0, monitor)  # one answer starts the count anew
    assert not look(5.0)
    assert not look(7.9, standby)
    assert not look(11.8)
    assert look(11.9)
    assert {p["name"]: p["silent_s"] for p in hearing.status(12.0)} == {"standby": 4.1,
                                                                       "monitor": 8.0}


def test_a_limit_a_single_silent_look_could_reach_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"peers": [{"name": "s", "address": "127.0.0.1", "port": 1}],
                                  "limit_s": 1, "interval_s": 0.5, "timeout_s": 1,
                                  "data_dir": str(tmp_path), "fence_command": ["true"],
                                  "record": str(tmp_path / "r.json")}))
    run = subprocess.run([sys.executable, str(PROGRAM), "--config", str(config)],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert "limit_s 1.0 must exceed" in run.stderr and "Traceback" not in run.stderr


@pytest.fixture
def silent_peer() -> Iterator[int]:
    """A port on loopback that never answers: its listener's backlog is full, so the
    kernel drops each new connection's SYN, as a cut link would."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):  # more than the backlog holds; the surplus waits for ever
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    deadline = time.monotonic() + 10  # until the handshakes the backlog takes are done
    while sf.answers(sf.Peer("x", "127.0.0.1", port), 0.5):
        assert time.monotonic() < deadline, "the peer still answers"
    yield port
    for s in fillers:
        s.close()
    listener.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _start(tmp_path: Path, peers: list[int], standby: bool = False, listen: int | None = None,
           key: Path | None = None) -> tuple[subprocess.Popen[str], subprocess.Popen[str], Path]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")
    if standby:
        (data / "standby.signal").touch()
    named = tmp_path / "postgres"  # named as PostgreSQL's processes are
    shutil.copy(shutil.which("sleep") or "/bin/sleep", named)
    postmaster = subprocess.Popen([str(named), "120"], text=True)
    (data / "postmaster.pid").write_text(f"{postmaster.pid}\n{data}\n")
    record = tmp_path / "record" / "fenced.json"
    config = tmp_path / "self-fence.json"
    config.write_text(json.dumps({
        "peers": [{"name": f"peer-{p}", "address": "127.0.0.1", "port": p} for p in peers],
        "limit_s": 2, "interval_s": 0.25, "timeout_s": 0.5, "data_dir": str(data),
        "fence_command": ["kill", str(postmaster.pid)], "record": str(record),
        **({"listen": {"address": "127.0.0.1", "port": listen}} if listen else {}),
        **({"status_key_file": str(key)} if key else {})}))
    fence = subprocess.Popen([sys.executable, str(PROGRAM), "--config", str(config)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return fence, postmaster, record


def _stop(fence: subprocess.Popen[str]) -> str:
    fence.terminate()
    out, _ = fence.communicate(timeout=10)
    assert fence.returncode == 0, out
    return out


def test_a_primary_that_hears_no_peer_stops_and_records_why(tmp_path: Path,
                                                            silent_peer: int) -> None:
    fence, postmaster, record = _start(tmp_path, [silent_peer, silent_peer])
    try:
        postmaster.wait(timeout=20)  # stopped by the fence command
        deadline = time.monotonic() + 10
        while not record.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        said = json.loads(record.read_text())
        assert said["stopped"] is True and said["exit"] == 0
        assert "no answer from" in said["why"] and "P4.3.2" in said["why"]
    finally:
        postmaster.kill()
        out = _stop(fence)
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events[:3] == ["started", "peers silent", "fencing"] and "fenced" in events


def _status(port: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        said: dict[str, Any] = json.loads(conn.makefile().readline())
    return said


def test_one_peer_answering_even_by_refusing_keeps_the_primary_and_is_told(
        tmp_path: Path, silent_peer: int) -> None:
    refusing, status_port = _closed_port(), _closed_port()
    fence, postmaster, record = _start(tmp_path, [silent_peer, refusing], listen=status_port)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            postmaster.wait(timeout=5)  # 2.5 times the limit
        assert not record.exists()
        said = _status(status_port)  # what the monitoring server asks a standby
        heard = {p["port"]: p["silent_s"] for p in said["peers"]}
        assert said["primary"] is True and said["fenced"] is False
        assert heard[refusing] < 1 and heard[silent_peer] > 4
    finally:
        postmaster.kill()
        _stop(fence)


def test_a_standby_cut_off_is_left_running(tmp_path: Path, silent_peer: int) -> None:
    fence, postmaster, record = _start(tmp_path, [silent_peer], standby=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            postmaster.wait(timeout=5)
        assert not record.exists()
    finally:
        postmaster.kill()
        out = _stop(fence)
    assert "peers silent" in out and "fencing" not in out


def test_the_standby_s_word_is_signed_and_vigil_takes_only_a_signed_one(
        tmp_path: Path, silent_peer: int) -> None:
    """The program with the pair's key, asked by Vigil's own client
    (`remediations/self_fence.heard_by_standby`): a fresh nonce each time, the answer
    signed over it; a client with another key refuses the answer, and an asker sending no
    nonce gets none."""
    status_port = _closed_port()
    key = tmp_path / "self-fence.key"
    key.write_text("the pair's shared key, test only\n")
    fence, postmaster, _ = _start(tmp_path, [silent_peer], standby=True, listen=status_port,
                                  key=key)
    primary = Host(name="db-a", address="127.0.0.1", party=None, groups=(),
                   self_fence=SelfFence(port=silent_peer, key="the pair's shared key, test only"))

    def standby(secret: str) -> Host:
        return Host(name="db-b", address="127.0.0.1", party=None, groups=(),
                    self_fence=SelfFence(port=status_port, key=secret))

    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", status_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self_fence.heard_by_standby(standby("the pair's shared key, test only"),
                                           primary) >= 0
        with pytest.raises(ValueError, match="not signed with the pair's key"):
            self_fence.heard_by_standby(standby("another key, sixteen bytes+"), primary)
        with socket.create_connection(("127.0.0.1", status_port), timeout=5) as conn:
            conn.shutdown(socket.SHUT_WR)  # asks without a nonce
            assert conn.makefile("rb").read() == b""
    finally:
        postmaster.kill()
        _stop(fence)


def test_a_hung_primary_is_killed_on_a_signed_order_and_marked_to_restart_as_a_standby(
        tmp_path: Path) -> None:
    """Vigil's client (`remediations/self_fence.order_kill`) against the program: an order
    signed with another key kills nothing; the pair's key kills the stopped "postmaster",
    writes standby.signal and records it, and the answer is signed."""
    status_port = _closed_port()
    key = tmp_path / "self-fence.key"
    key.write_text("the pair's shared key, test only\n")
    fence, postmaster, record = _start(tmp_path, [_closed_port()], listen=status_port, key=key)

    def primary(secret: str) -> Host:
        return Host(name="db-a", address="127.0.0.1", party=None, groups=(),
                    self_fence=SelfFence(port=status_port, key=secret))

    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", status_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        postmaster.send_signal(signal.SIGSTOP)  # hung: only SIGKILL ends it now
        with pytest.raises(ValueError, match="refused the order"):
            self_fence.order_kill(primary("another key, sixteen bytes+"))
        assert postmaster.poll() is None and not record.exists()
        killed = self_fence.order_kill(primary("the pair's shared key, test only"))
        assert killed.stopped and "killed 1 PostgreSQL processes" in killed.why
        assert postmaster.wait(timeout=5) == -signal.SIGKILL
        assert (tmp_path / "data" / "standby.signal").exists()
        assert json.loads(record.read_text())["killed"] == [postmaster.pid]
        again = self_fence.order_kill(primary("the pair's shared key, test only"))
        assert again.stopped and again.why == "not a primary: nothing killed"
    finally:
        postmaster.kill()
        out = _stop(fence)
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert "kill order refused" in events and "killed" in events
