"""A playbook run lives no longer than the lease of the daemon that started it.

A leader that is frozen (SIGSTOP, a hung VM) or cut off from the store cannot cancel its
own ansible-playbook: the child runs on while a new leader takes over and resumes the
same step. So each run goes through this guard, a small process between ansible-runner
and ansible-playbook. After each renewal of its lease the daemon writes the instant
(CLOCK_MONOTONIC, one clock for every process of the machine) past which it no longer
counts on the lease. The guard kills the run's whole process tree once that instant
passes (the daemon frozen or cut off), or at once when the daemon dies (a dead daemon's
lease is taken over at once on its own machine). A new leader resumes a run only after
the old lease expired on the database's clock, and RESUME_AFTER_S more (vigil.daemon):
the two runs never overlap.

It also keeps the run's time limit, for the same reason: ansible-runner's own cancel and
timeout kill a process group, and ansible's workers each run in a session of their own.

    python -m vigil.remediations.lease_guard DEADLINE_FILE TIMEOUT_S ansible-playbook ARGS...
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

POLL_S = 0.2
TIMED_OUT, LAPSED = 124, 125  # exit codes, as timeout(1) has them
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def write_deadline(path: Path, deadline: float) -> None:
    """Atomically: the guard never reads half a number."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(repr(deadline))
    os.replace(tmp, path)


def read_deadline(path: Path) -> float:
    """0 (lapsed) when the file is gone or unreadable: no proof of a lease, no run."""
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return 0.0


def kill_tree(pid: int) -> None:
    """The process and everything it started, though ansible's workers each make a session
    of their own (a killpg misses them): frozen first, so nothing forks while we look."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    tree: dict[int, psutil.Process] = {}
    found = [root]
    while found:  # freeze what is new, until a look finds nothing new
        for p in found:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.suspend()
            tree[p.pid] = p
        try:
            found = [c for c in root.children(recursive=True) if c.pid not in tree]
        except psutil.NoSuchProcess:
            break
    for p in tree.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: python -m vigil.remediations.lease_guard DEADLINE_FILE TIMEOUT_S "
              "COMMAND...", file=sys.stderr)
        return 2
    deadline_file, timeout_s, command = Path(argv[0]), float(argv[1]), argv[2:]
    if time.monotonic() > read_deadline(deadline_file):
        print(f"vigil: the lease lapsed before {command[0]} started: not run", file=sys.stderr)
        return LAPSED
    daemon = os.getppid()
    # The daemon's death hangs up the terminal ansible-runner gave us: stay (the playbook
    # too, SIG_IGN is inherited) to stop the whole tree below; and keep that tree whole,
    # however its middle dies, as its orphans' reaper.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    child = subprocess.Popen(command)
    give_up = time.monotonic() + timeout_s
    while True:
        try:
            return child.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != daemon:  # killed: its lease may be taken over at once
            why, rc = ("the daemon that started the playbook is gone: it is stopped so that "
                       "the new leader's run never overlaps it", LAPSED)
        elif time.monotonic() > read_deadline(deadline_file):
            why, rc = ("this daemon's lease lapsed: the playbook is stopped so that the new "
                       "leader's run never overlaps it", LAPSED)
        elif time.monotonic() > give_up:
            why, rc = f"timed out after {timeout_s:.0f} s", TIMED_OUT
        else:
            continue
        with contextlib.suppress(OSError):  # the terminal may be gone with the daemon
            print(f"vigil: {why}", file=sys.stderr, flush=True)
        kill_tree(child.pid)
        child.wait()
        return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
