"""Vigil as a user installs it: a wheel built from this checkout, installed into a fresh
virtualenv in a folder outside the checkout, and used from there: the embedded demo, the
plan, its coverage and one runbook step through ansible-runner in check mode, against an
Ansible project given by the setting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

OVERRIDE = """
vigil_runbook:
  overrides:
    voucher_library.IV.restart-service:
      run:
        vars: {target: vigil-server, service_restart_name: vigil-demo,
               service_restart_manager: command, service_restart_command: "true"}
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("installed")
    assert not home.resolve().is_relative_to(ROOT)
    # Built from a copy of the files git knows: no stale build/ folder, no stray file.
    source = home / "source"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(home / "dist"), str(source)], check=True, capture_output=True,
                   timeout=600)
    (wheel,) = (home / "dist").glob("vigil-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True,
                   timeout=300)
    subprocess.run([str(home / "venv/bin/pip"), "install", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=900)
    return {"home": home, "wheel": wheel, "bin": home / "venv/bin"}


def vigil(installed: dict[str, Path], *args: str,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    home = installed["home"]
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("VIGIL_", "PYTHON")) and k != "VIRTUAL_ENV"}
    full = {**clean, "VIGIL_STORE": str(home / "events.db"), "VIGIL_RUNS_DIR":
            str(home / "runs"), "COLUMNS": "200", **(env or {})}
    return subprocess.run([str(installed["bin"] / "vigil"), *args], cwd=home, env=full,
                          capture_output=True, text=True, timeout=600)


def test_the_wheel_installs_nothing_but_vigil(installed: dict[str, Path]) -> None:
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert {n.split("/")[0] for n in names} == {"vigil", installed["wheel"].name.split("-py")[0]
                                                + ".dist-info"}
    for data in ("vigil/runbook.yml", "vigil/remediations/clauses.yml", "vigil/demo/hosts.yml"):
        assert data in names
    site = next((installed["home"] / "venv/lib").glob("python3*/site-packages"))
    assert (site / "vigil/checks/registry.py").exists()
    assert not any((site / n).exists() for n in ("checks", "alerting", "remediations"))
    from vigil import __version__ as version

    run = vigil(installed, "--version")
    assert run.returncode == 0 and run.stdout.strip() == version


def test_the_demo_and_the_plan_work_outside_the_checkout(installed: dict[str, Path]) -> None:
    run = vigil(installed, "check", "--json")
    assert run.returncode < 3, run.stderr
    results = json.loads(run.stdout)
    assert {r["system"] for r in results} >= {"monitoring-server"}
    run = vigil(installed, "plan", "show", "--lang", "en", "--json")
    assert run.returncode == 0, run.stderr
    assert any(r["clause"] == "P4.3.2" and "standby" in r["text"] for r in json.loads(run.stdout))
    run = vigil(installed, "plan", "coverage", "--lang", "en", "--json")
    assert run.returncode == 0, run.stderr
    rows = {r["clause"]: r for r in json.loads(run.stdout)}
    assert "vigil/runbook.py" in rows["P6"]["code"] and rows["P4.3.2"]["implemented"]
    assert rows["P4.1"]["code"] == ["alerting/ladder.py", "alerting/calendar.py"]


def test_a_runbook_step_runs_from_the_project_the_setting_names(
        installed: dict[str, Path]) -> None:
    home = installed["home"]
    project = home / "county-project"
    project.mkdir()
    for part in ("playbooks", "roles"):
        shutil.copytree(ROOT / part, project / part)
    shutil.copy(ROOT / "ansible.cfg", project)
    site = home / "site"
    shutil.copytree(ROOT / "inventory/demo", site)
    with (site / "group_vars/all/site.yml").open("a") as fh:
        fh.write(OVERRIDE)
    step = "voucher_library.IV.restart-service"
    run = vigil(installed, "plan", "rehearse", step, "-i", str(site), "--lang", "en")
    assert run.returncode == 3 and "--project-dir" in run.stderr and "VIGIL_PROJECT_DIR" \
        in run.stderr, run.stdout + run.stderr
    run = vigil(installed, "plan", "rehearse", step, "-i", str(site),
                env={"VIGIL_PROJECT_DIR": str(home)})
    assert run.returncode == 3 and "VIGIL_PROJECT_DIR" in run.stderr and "playbooks/" \
        in run.stderr, run.stderr
    run = vigil(installed, "plan", "rehearse", step, "-i", str(site), "--json",
                env={"VIGIL_PROJECT_DIR": str(project)})
    assert run.returncode == 0, run.stdout + run.stderr
    done = json.loads(run.stdout)
    assert done["ok"] and done["project"] == str(project) and done["tasks"] > 0
    # The playbook's inventory check on the controller, then the step on its host.
    assert {t["host"] for t in done["task_results"]} == {"localhost", "vigil-server"}
    events = json.loads(vigil(installed, "events", "list", "--kind", "step.rehearsed",
                              "--json").stdout)
    assert [e["subject"] for e in events] == [step] and events[0]["data"]["check_mode"]
