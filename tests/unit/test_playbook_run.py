"""Playbooks through the real ansible-runner: the inventory is found however it is named,
and a run that reaches no host is never a success."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from vigil.remediations.playbook_run import run_playbook
from vigil.runbook import Run


@pytest.fixture(autouse=True)
def in_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the daemon started as `vigil watch -i inventory/demo`
    monkeypatch.setenv("VIGIL_RUNS_DIR", str(tmp_path / "runs"))


def test_a_relative_inventory_reaches_its_hosts() -> None:
    tasks: list[dict[str, Any]] = []
    run = Run(playbook="restart-service.yml",
              vars={"target": "vigil-server", "service_restart_name": "vigil-no-such-unit",
                    "service_restart_manager": "command",
                    "service_restart_command": "true"})
    run_playbook(run, "inventory/demo", "relative", True, 120, tasks.append, project=ROOT)
    # The inventory check on the controller, then the step on the step's host.
    assert tasks and {t["host"] for t in tasks} == {"localhost", "vigil-server"}


def test_a_play_that_matches_no_host_is_a_failure() -> None:
    tasks: list[dict[str, Any]] = []
    outcome = run_playbook(Run(playbook="restart-service.yml", vars={"target": "nowhere"}),
                           str(ROOT / "inventory/demo"), "nohost", True, 120, tasks.append,
                           project=ROOT)
    # Refused before any play on a host, naming what the inventory lacks.
    assert not outcome.ok and {t["host"] for t in tasks} == {"localhost"}
    (failed,) = [t for t in tasks if t["status"] == "failed"]
    assert "no inventory host matches 'nowhere'" in failed["message"]
