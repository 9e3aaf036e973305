"""Run one playbook of `playbooks/` through ansible-runner, streaming task results."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    return Path(os.environ.get("VIGIL_RUNS_DIR") or Path(tempfile.gettempdir()) / "vigil-runs")


def run_playbook(run: Run, inventory: str, ident: str, check: bool, timeout_s: float,
                 on_task: TaskSink, *, project: Path,
                 cancelled: threading.Event | None = None) -> Outcome:
    """Run `run.playbook` of the Ansible project `project` (its playbooks/, roles/ and
    ansible.cfg: vigil.paths.project_dir); `on_task` gets each task result (never its
    module output, which may hold secrets: the task, host, status, changed and a failure
    message only)."""
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
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # run artifacts hold the playbooks' output: the daemon's eyes only
    (folder / ident).mkdir(exist_ok=True)
    r = ansible_runner.run(
        # A folder a run: ansible-runner writes its extravars there, and runs for two
        # targets may go at once.
        private_data_dir=str(folder / ident), ident=ident, project_dir=str(project / "playbooks"),
        # Absolute: ansible-runner takes a string it cannot find for inventory *text*, and
        # the run then matches no host.
        playbook=run.playbook, inventory=str(Path(inventory).resolve()),
        extravars=dict(run.vars),
        cmdline=cmdline.strip() or None, quiet=True, timeout=int(timeout_s),
        event_handler=handler,
        # ansible-runner polls this and kills the run: a daemon that lost the lease stops.
        cancel_callback=cancelled.is_set if cancelled else None,
        envvars={"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
                 "ANSIBLE_ROLES_PATH": str(project / "roles"),
                 "ANSIBLE_CONFIG": str(project / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})
    if r.status == "successful" and not hosts:
        # A play whose hosts match nothing "succeeds" having done nothing; a remedy that
        # did nothing is not a success.
        return Outcome(status="failed", rc=r.rc, changed=changed, failed_tasks=[
            f"{run.playbook} ran on no host: check the inventory and the step's host "
            f"variables ({', '.join(f'{k}={v}' for k, v in run.vars.items()) or 'none'})"])
    return Outcome(status=r.status, rc=r.rc, failed_tasks=failed, changed=changed)
