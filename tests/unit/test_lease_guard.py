"""A playbook run dies with the lease of the daemon that started it (vigil.remediations.
lease_guard): real ansible-playbook runs on localhost, the deadline written as the daemon
writes it, and the daemon's renewals stopping as they stop when it is frozen or cut off."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from vigil.remediations.lease_guard import write_deadline
from vigil.remediations.playbook_run import run_playbook
from vigil.runbook import Run

SLOW = """\
- name: A long remedy
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Say when it starts
      ansible.builtin.shell: "echo $$ > {{ pid_file }}; exec sleep {{ seconds }}"
      changed_when: true
"""


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIGIL_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks/slow.yml").write_text(SLOW)
    (tmp_path / "ansible.cfg").write_text("[defaults]\nhost_key_checking = True\n")
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n")
    return tmp_path


class Leader:
    """Renews the deadline as a leading daemon does, until it is 'frozen'."""

    def __init__(self, path: Path, ttl_s: float = 2.0) -> None:
        self.path, self.ttl_s = path, ttl_s
        self.frozen = threading.Event()
        self.renew()
        threading.Thread(target=self._loop, daemon=True).start()

    def renew(self) -> None:
        write_deadline(self.path, time.monotonic() + self.ttl_s)

    def _loop(self) -> None:
        while not self.frozen.wait(0.2):
            self.renew()


def _run(project: Path, seconds: int, deadline: Path,
         timeout_s: float = 120) -> tuple[Any, list[dict[str, Any]], float]:
    tasks: list[dict[str, Any]] = []
    started = time.monotonic()
    outcome = run_playbook(
        Run(playbook="slow.yml", vars={"pid_file": str(project / "pid"), "seconds": seconds}),
        str(project / "hosts.yml"), f"slow{seconds}", False, timeout_s, tasks.append,
        project=project, lease_deadline=deadline)
    return outcome, tasks, time.monotonic() - started


def test_a_run_under_a_renewed_lease_runs_to_the_end_with_its_task_results(
        project: Path) -> None:
    leader = Leader(project / "deadline")
    outcome, tasks, _ = _run(project, 3, project / "deadline")  # longer than one TTL
    leader.frozen.set()
    assert outcome.ok, outcome
    assert [(t["task"], t["status"]) for t in tasks] == [("Say when it starts", "ok")]


def test_a_lapsed_lease_kills_the_playbook_and_what_it_started(project: Path) -> None:
    leader = Leader(project / "deadline")
    threading.Timer(3.0, leader.frozen.set).start()  # the daemon freezes 3 s in
    outcome, _, took = _run(project, 60, project / "deadline")
    assert outcome.status == "canceled"
    # Lapsed at most 2 s after the last renewal; ansible-runner noticing takes a moment.
    assert took < 15, f"the run lived {took:.0f} s"
    # The module's own process too, though ansible's worker made a session of its own.
    sleeper = int((project / "pid").read_text())
    assert not psutil.pid_exists(sleeper) or \
        psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE
    assert not [p for p in psutil.process_iter(["cmdline"])
                if str(project / "playbooks/slow.yml") in (p.info["cmdline"] or [])]


def test_a_run_past_its_time_limit_is_stopped_whole_and_says_timeout(project: Path) -> None:
    leader = Leader(project / "deadline")
    # Long enough for ansible-playbook to reach the task on a loaded machine.
    outcome, _, took = _run(project, 120, project / "deadline", timeout_s=15)
    leader.frozen.set()
    assert outcome.status == "timeout" and took < 30, (outcome, took)
    sleeper = int((project / "pid").read_text())
    assert not psutil.pid_exists(sleeper) or \
        psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE


def test_a_killed_daemon_s_run_stops_at_once_though_its_lease_runs_on(tmp_path: Path) -> None:
    """A dead daemon's lease is taken over at once on its machine: its run may not wait
    for the deadline."""
    write_deadline(tmp_path / "deadline", time.monotonic() + 600)
    pid_file = tmp_path / "pid"
    daemon = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])",
         sys.executable, "-m", "vigil.remediations.lease_guard", str(tmp_path / "deadline"),
         "600", "sh", "-c", f"echo $$ > {pid_file}; exec sleep 600"], start_new_session=True)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    sleeper = psutil.Process(int(pid_file.read_text()))
    daemon.kill()
    daemon.wait()
    gone, _ = psutil.wait_procs([sleeper], timeout=10)
    assert gone, "the run outlived its daemon"


def test_a_run_whose_lease_already_lapsed_never_starts(tmp_path: Path) -> None:
    write_deadline(tmp_path / "deadline", time.monotonic() - 1)
    marker = tmp_path / "ran"
    done = subprocess.run(
        [sys.executable, "-m", "vigil.remediations.lease_guard", str(tmp_path / "deadline"),
         "60", "touch", str(marker)], capture_output=True, text=True, start_new_session=True,
        timeout=60)
    assert done.returncode == 125 and not marker.exists()
    assert "lease lapsed" in done.stderr


def test_a_missing_deadline_file_counts_as_lapsed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vigil.remediations.lease_guard", str(tmp_path / "none"),
         "60", "true"], capture_output=True, text=True, start_new_session=True, timeout=60,
        env={**os.environ})
    assert done.returncode == 125
