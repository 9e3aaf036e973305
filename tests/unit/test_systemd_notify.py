"""`vigil watch` speaks systemd's notify protocol on a real datagram socket: ready only once
its store holds `daemon.started`, a watchdog answer after every cycle, stopping on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.receivers import free_port
from vigil.store import Store
from vigil.systemd import Notifier


def receive(sock: socket.socket, until: str, timeout: float = 60) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(until in g for g in got):
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            raise AssertionError(f"no {until!r} from the daemon; got {got}") from None
    return got


def test_the_daemon_tells_systemd_ready_alive_and_stopping(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil", "watch", "--observe-only", "-i",
             str(ROOT / "inventory/demo")], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "VIGIL_STORE": str(store),
                 "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "10000000"})
        try:
            ready = receive(sock, "READY=1")
            assert Store(str(store)).events(kind="daemon.started")  # recorded before READY
            assert "STATUS=watching" in ready[-1]
            beats = receive(sock, "WATCHDOG=1")
            assert not any("WATCHDOG=1" in m for m in ready)  # no answer before ready
            proc.send_signal(signal.SIGTERM)
            receive(sock, "STOPPING=1")
            assert proc.wait(timeout=60) == 0
            assert beats
        finally:
            proc.kill()
            proc.wait()


def test_an_abstract_socket_is_reached_and_no_socket_is_a_no_op(
        monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"vigil-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        notifier = Notifier()
        assert notifier.ready("x") and sock.recv(100) == b"READY=1\nSTATUS=x"
        assert not notifier.alive()  # no watchdog asked for: nothing sent
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not Notifier().ready("x")


def test_a_watchdog_meant_for_another_process_is_not_answered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert Notifier().watchdog_s is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier().watchdog_s == 1.0


def test_healthz_says_alive_and_leading_and_metrics_name_the_lease(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil", "watch", "--observe-only", "--metrics-port", str(port),
         "-i", str(ROOT / "inventory/demo")], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "VIGIL_STORE": str(tmp_path / "s.db")})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    health = json.load(r)
                if health["leading"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "no healthy, leading answer"
            time.sleep(0.2)
        assert health["alive"] and health["epoch"] == 1 and health["last_cycle_age_s"] < 60
        beat = 'vigil_monitor_heartbeat_age_seconds{leading="true",monitor="'
        while True:  # the heartbeat's row shows from the first pass of the loop on
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            if beat in text:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        assert "vigil_leader 1.0" in text and "vigil_lease_epoch 1.0" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
