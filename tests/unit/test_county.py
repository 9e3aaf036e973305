"""The reference county really runs: every probe kind where the plan needs it, and every
automatic runbook step's playbook targets the hosts the step is about (planned by
`ansible-playbook --list-hosts`; nothing is contacted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, VigilRunner
from vigil.checks.registry import known_kinds
from vigil.domain import FaultClass, PartyKind
from vigil.inventory import InventoryError, load_inventory
from vigil.model import Inventory
from vigil.secrets import Secret

COUNTY = ROOT / "inventory/county"
VAULT = ROOT / "inventory/county-vault-password.example"
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


@pytest.fixture(scope="module")
def county() -> Inventory:
    return load_inventory(COUNTY, vault_password_file=str(VAULT))


def planned_hosts(playbook: str, inventory: Path, extra: dict[str, object]) -> list[list[str]]:
    """The hosts of each play but the inventory check on localhost, as Ansible plans them."""
    run = subprocess.run([str(PLAYBOOK), "-i", str(inventory), "--vault-password-file",
                          str(VAULT), "--list-hosts", "-e", json.dumps(extra),
                          str(ROOT / "playbooks" / playbook)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    plays: list[list[str]] = []
    for line in run.stdout.splitlines():
        if line.strip().startswith("play #"):
            plays.append([])
        elif plays and line.startswith("      "):
            plays[-1].append(line.strip())
    return [p for p in plays if p != ["localhost"]]


def about(inv: Inventory, klass: FaultClass, kind: str) -> set[str]:
    """The finance bureau's hosts (the site's own) whose checks of this kind and fault
    class raise the incident."""
    own = {p.id for p in inv.parties.values() if p.kind == PartyKind.FINANCE_BUREAU}
    return {c.host for c in inv.checks if c.fault_class == klass and c.kind == kind
            and inv.hosts[c.host].party in own}


def test_the_county_runs_every_probe_kind(county: Inventory) -> None:
    assert {c.kind for c in county.checks} == set(known_kinds())
    # Backups in two buildings; a host check of every finance server.
    backups = next(c for c in county.checks if c.kind == "backups")
    assert {loc.host for loc in backups.params.locations} == {"fin-db-a", "fin-backup-remote"}
    servers = {h.name for h in county.hosts.values() if "finance" in h.groups}
    assert servers - {c.host for c in county.checks if c.kind == "host"} == {"fin-ups"}


def test_every_contact_channel_comes_from_the_vault(county: Inventory) -> None:
    for contact in county.contacts:
        assert contact.channels and all(isinstance(ch, Secret) for ch in contact.channels)
        for channel in contact.channels:
            url = channel.reveal()
            assert url.startswith(("mailtos://", "dingtalk://", "wecombot://")), contact.id
            assert repr(channel) == "Secret(vault)"
    with pytest.raises(InventoryError, match="undecryptable"):
        load_inventory(COUNTY)


def test_every_automatic_step_targets_the_hosts_it_is_about(county: Inventory) -> None:
    expected = {
        "line-failover.yml": [about(county, FaultClass.INFRASTRUCTURE, "links")],
        "line-failback.yml": [about(county, FaultClass.INFRASTRUCTURE, "links")],
        "restart-service.yml": [about(county, FaultClass.VOUCHER_LIBRARY, "http")],
        "queue-drain.yml": [about(county, FaultClass.MQ_NETWORK, "mq")],
    }
    pair = next(c for c in county.checks if c.kind == "dbpair")
    standby = {n.name for n in pair.params.nodes} - {pair.host}
    # The standby is activated, the primary (the check's host) rebuilt later if asked.
    expected["db-failover.yml"] = [standby, {pair.host}]
    expected["db-sync.yml"] = [standby | {pair.host}]  # acts on whichever is the primary
    seen = set()
    runbook = county.site_runbook
    for klass in FaultClass:
        for level in ("IV", "III", "II", "I", "recovery"):
            for step in runbook.steps(klass, level):
                if step.run is None:
                    continue
                seen.add(step.run.playbook)
                plays = planned_hosts(step.run.playbook, COUNTY, dict(step.run.vars))
                assert [set(p) for p in plays] == expected[step.run.playbook], \
                    f"{klass.value}.{level}.{step.id}"
    assert seen == set(expected)


def test_a_playbook_on_an_inventory_without_its_group_fails_naming_it(tmp_path: Path) -> None:
    site = tmp_path / "county"
    shutil.copytree(COUNTY, site)
    hosts = yaml.safe_load((site / "hosts.yml").read_text())
    del hosts["all"]["children"]["vigil_routers"]
    (site / "hosts.yml").write_text(yaml.safe_dump(hosts))
    run = subprocess.run([str(PLAYBOOK), "-i", str(site), "--vault-password-file", str(VAULT),
                          "--check", str(ROOT / "playbooks/line-failover.yml")],
                         capture_output=True, text=True, timeout=120,
                         env={"PATH": f"{PLAYBOOK.parent}:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1"})
    assert run.returncode != 0
    assert "no inventory host matches 'vigil_routers'" in run.stdout
    assert "fin-router" not in run.stdout  # refused before any play on a host


def test_every_clause_of_the_plan_is_implemented_for_the_county(vigil: VigilRunner) -> None:
    run = vigil("plan", "coverage", "-i", str(COUNTY), "--vault-password-file", str(VAULT),
                "--strict", "--json")
    assert run.code == 0, run.err
    rows = json.loads(run.out)
    assert rows and all(r["implemented"] for r in rows)
