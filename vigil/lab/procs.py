"""Processes the lab starts: run commands, record PIDs, stop only what we started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class LabError(Exception):
    """A lab step failed; the message says which and what the command printed."""


def run(cmd: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 120, cwd: str | Path | None = None, user: str | None = None,
        binary: bool = False) -> subprocess.CompletedProcess[str]:
    full = ["runuser", "-u", user, "--", *cmd] if user else list(cmd)
    try:
        proc = subprocess.run(full, capture_output=True, text=not binary, timeout=timeout,
                              env={**os.environ, **(env or {})}, cwd=cwd,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise LabError(f"{cmd[0]} is not installed (run lab/install-packages.sh)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(cmd)} did not finish within {timeout:g}s") from None
    if check and proc.returncode != 0:
        said = proc.stderr or proc.stdout
        text = said.decode("utf-8", "replace") if isinstance(said, bytes) else said
        tail = text.strip().splitlines()[-5:]
        raise LabError(f"{' '.join(cmd)} exited {proc.returncode}: " + " | ".join(tail))
    return proc


def alive(pid: int | None) -> bool:
    """True for a running process; a zombie (PID 1 here does not reap) counts as gone."""
    if not pid:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line.split()[1] for line in status.splitlines()
                  if line.startswith("State:")), "X")
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop(pid: int | None, expect: str, *, sig: int = signal.SIGTERM, timeout: float = 30) -> bool:
    """Stop `pid` if its command line still contains `expect` (a recycled PID is left alone)."""
    if not alive(pid) or expect not in cmdline(pid or 0):
        return False
    assert pid is not None
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    return True


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60,
             interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise LabError(f"{what} not ready within {timeout:g}s")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn(cmd: Sequence[str], log: Path, *, env: dict[str, str] | None = None,
          netns: str | None = None) -> int:
    """Start a long-running foreground process detached from us; return its PID."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    with log.open("ab") as fh:
        proc = subprocess.Popen(full, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                start_new_session=True)
    return proc.pid
