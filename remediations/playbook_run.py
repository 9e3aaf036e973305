"""Run one playbook of `playbooks/` through ansible-runner, streaming task results."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.remediations.lease_guard import LAPSED, TIMED_OUT
from vigil.runbook import Run

TASK_EVENTS = {"runner_on_ok": "ok", "runner_on_failed": "failed",
               "runner_on_unreachable": "unreachable", "runner_on_skipped": "skipped"}


@dataclass
class Outcome:
    status: str  # successful | failed | timeout | canceled | error
    rc: int | None
    failed_tasks: list[str] = field(default_factory=list)
    changed: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "successful"


TaskSink = Callable[[dict[str, Any]], None]
PlaybookRunner = Callable[[Run, str, str, bool, float, TaskSink], Outcome]


def runs_dir() -> Path:
    """Made if need be; run artifacts hold the playbooks' output: the daemon's eyes only."""
    folder = Path(os.environ.get("VIGIL_RUNS_DIR") or Path(tempfile.gettempdir()) / "vigil-runs")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def lease_deadline_file(monitor: str) -> Path:
    """Where a daemon keeps its lease's local deadline for vigil.remediations.lease_guard."""
    return runs_dir() / ("lease-" + re.sub(r"[^A-Za-z0-9_.-]", "_", monitor))


def run_playbook(run: Run, inventory: str, ident: str, check: bool, timeout_s: float,
                 on_task: TaskSink, *, project: Path,
                 cancelled: threading.Event | None = None,
                 lease_deadline: Path | None = None) -> Outcome:
    """Run `run.playbook` of the Ansible project `project` (its playbooks/, roles/ and
    ansible.cfg: vigil.paths.project_dir); `on_task` gets each task result (never its
    module output, which may hold secrets: the task, host, status, changed and a failure
    message only). With `lease_deadline` (a leading daemon's), the run goes through
    vigil.remediations.lease_guard and dies when the lease lapses."""
    import ansible_runner

    failed: list[str] = []
    changed = 0
    hosts: set[str] = set()

    def handler(event: dict[str, Any]) -> bool:
        nonlocal changed
        if event.get("event") == "playbook_on_stats":
            hosts.update(event.get("event_data", {}).get("processed") or {})
        status = TASK_EVENTS.get(event.get("event", ""))
        if status is None:
            return False
        data = event.get("event_data", {})
        result = data.get("res") or {}
        item = {"task": data.get("task", ""), "host": data.get("host", ""), "status": status,
                "changed": bool(result.get("changed"))}
        changed += item["changed"]
        if status in ("failed", "unreachable") and not data.get("ignore_errors"):
            item["message"] = str(result.get("msg", ""))[:500]
            failed.append(f"{item['task']} @ {item['host']}")
        on_task(item)
        return False  # not kept in the artifact folder: the event log has what matters

    cmdline = "--check --diff" if check else ""
    vault = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if vault:
        cmdline += f" --vault-password-file {vault}"
    # The ansible-playbook beside this Python (the venv's), not whatever PATH finds first.
    bin_dir = Path(sys.executable).parent
    folder = runs_dir()
    (folder / ident).mkdir(exist_ok=True)
    command: dict[str, Any] = {
        "cmdline": cmdline.strip() or None, "timeout": int(timeout_s),
        # ansible-runner polls this and kills the run: a daemon that lost the lease stops.
        "cancel_callback": cancelled.is_set if cancelled else None}
    if lease_deadline is not None:
        # ansible-runner starts the guard (`binary`), which starts ansible-playbook and
        # stops it, its workers and what they started, at the lease's end or the time
        # limit. ansible-runner's own cancel (a killpg) would miss the workers and race
        # the guard: a daemon that stops leading ends the lease for the guard instead.
        command = {"binary": sys.executable, "timeout": int(timeout_s) + 30,
                   "cmdline": shlex.join([
                       "-m", "vigil.remediations.lease_guard", str(lease_deadline),
                       str(timeout_s), str(bin_dir / "ansible-playbook"),
                       *shlex.split(cmdline), str(project / "playbooks" / run.playbook)])}
    r = ansible_runner.run(
        # A folder a run: ansible-runner writes its extravars there, and runs for two
        # targets may go at once.
        private_data_dir=str(folder / ident), ident=ident, project_dir=str(project / "playbooks"),
        # Absolute: ansible-runner takes a string it cannot find for inventory *text*, and
        # the run then matches no host.
        playbook=run.playbook, inventory=str(Path(inventory).resolve()),
        extravars=dict(run.vars),
        quiet=True, **command, event_handler=handler,
        envvars={"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
                 "ANSIBLE_ROLES_PATH": str(project / "roles"),
                 "ANSIBLE_CONFIG": str(project / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})
    # ansible-runner keeps the run's whole environment (the store's URL, channel secrets)
    # and its extra vars in the run's folder: not past the run.
    for leftover in (folder / ident / "artifacts" / ident / "command", folder / ident / "env"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    status = r.status
    if lease_deadline is not None and r.rc in (TIMED_OUT, LAPSED):
        status = "timeout" if r.rc == TIMED_OUT else "canceled"
    if status == "successful" and not hosts:
        # A play whose hosts match nothing "succeeds" having done nothing; a remedy that
        # did nothing is not a success.
        return Outcome(status="failed", rc=r.rc, changed=changed, failed_tasks=[
            f"{run.playbook} ran on no host: check the inventory and the step's host "
            f"variables ({', '.join(f'{k}={v}' for k, v in run.vars.items()) or 'none'})"])
    return Outcome(status=status, rc=r.rc, failed_tasks=failed, changed=changed)
