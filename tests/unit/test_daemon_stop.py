"""`vigil watch` ends cleanly on SIGTERM at any moment of its life, start-up included:
exit 0, the event log whole (what a service manager's `stop` needs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from vigil.store import Store


def _spawn(store: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "vigil", "watch", "--observe-only", "-i",
         str(ROOT / "inventory/demo")], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, env={**os.environ, "VIGIL_STORE": str(store)})


def _catches_sigterm(pid: int) -> bool:
    """The kernel's view: has the process a handler for SIGTERM yet?"""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def test_sigterm_during_start_up_exits_0(tmp_path: Path) -> None:
    """From Vigil's first line on (before it, the interpreter is still starting and the
    kernel's default applies; systemd counts that SIGTERM as a clean stop too)."""
    store = tmp_path / "s.db"
    # Moments inside start-up: imports, inventory, store, executor, the first cycle.
    for after in (0.0, 0.01, 0.05, 0.15, 0.3, 0.6, 1.0):
        proc = _spawn(store)
        deadline = time.monotonic() + 30
        while not _catches_sigterm(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
        time.sleep(after)  # the injected fault's timing, not a wait for a condition
        proc.send_signal(signal.SIGTERM)
        _, errors = proc.communicate(timeout=60)
        assert proc.returncode == 0, (after, errors.decode()[-2000:])
        assert b"Traceback" not in errors
    assert Store(str(store)).verify().ok


def test_sigterm_while_running_exits_0_and_is_recorded(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    proc = _spawn(store)
    deadline = time.monotonic() + 60
    while not (store.exists() and Store(str(store)).events(kind="daemon.started")):
        assert proc.poll() is None and time.monotonic() < deadline, "the daemon never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    kinds = [e.kind for e in Store(str(store)).events()]
    assert kinds.index("daemon.stopped") > kinds.index("daemon.started")
