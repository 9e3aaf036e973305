"""The three shipped inventories load; secrets stay secret."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, VigilRunner
from vigil.domain import FaultClass, PartyKind, Role
from vigil.inventory import load_inventory
from vigil.secrets import Secret, SecretMissing

COUNTY_VAULT = str(ROOT / "inventory/county-vault-password.example")


def test_demo_is_the_monitoring_server_watching_itself() -> None:
    inv = load_inventory(ROOT / "inventory/demo")
    assert list(inv.hosts) == ["vigil-server"]
    kinds = {c.kind for c in inv.checks}
    assert {"host", "backups", "tcp"} <= kinds


def test_county_is_a_complete_reference_site() -> None:
    inv = load_inventory(ROOT / "inventory/county", vault_password_file=COUNTY_VAULT)
    assert {p.kind for p in inv.parties.values()} >= set(PartyKind) - {
        PartyKind.FISCAL_ACCOUNT_BANK}
    assert {s.fault_class for s in inv.systems.values()} == set(FaultClass)
    for role in Role:
        assert inv.contacts_with(role), f"nobody holds {role}"
    # Documentation addresses only: tests never send traffic to a real county.
    for host in inv.hosts.values():
        assert host.address == "127.0.0.1" or host.address.startswith(("192.0.2.",
                                                                         "198.51.100."))
    assert inv.systems["fin-voucher-library"].depends_on == ("fin-db", "fin-ca-seal", "fin-mq")


def test_lab_inventory_points_at_the_lab() -> None:
    inv = load_inventory(ROOT / "inventory/lab")
    assert inv.hosts["lab-router"].address == "10.77.0.1"
    standby = next(c for c in inv.checks if c.name == "payment-db.standby-port")
    assert standby.params.port == 5434  # templated from the host's vigil_pg_port


def test_limit_matches_groups_hosts_and_systems() -> None:
    inv = load_inventory(ROOT / "inventory/county", vault_password_file=COUNTY_VAULT)
    assert {c.host for c in inv.limit("pboc")} == {"pboc-voucher", "pboc-mq"}
    assert [c.name for c in inv.limit("fin-db-a.*")] == ["fin-db-a.host"]
    assert inv.limit("no-such-thing") == []


def test_env_secrets_are_resolved_late_and_never_printed(
        vigil: VigilRunner, monkeypatch: pytest.MonkeyPatch, demo_copy: Path) -> None:
    site = demo_copy / "group_vars/all/site.yml"
    site.write_text(site.read_text().replace('channels: ["file://',
                                             'channels: ["env:VIGIL_CH_FIN_DIRECTOR", "file://'))
    inv = load_inventory(demo_copy)
    channel = inv.contacts[0].channels[0]
    assert isinstance(channel, Secret) and repr(channel) == "Secret(env:VIGIL_CH_FIN_DIRECTOR)"
    with pytest.raises(SecretMissing, match="VIGIL_CH_FIN_DIRECTOR"):
        channel.reveal()
    url = "mailtos://director:hunter22@mail.example.org"
    monkeypatch.setenv("VIGIL_CH_FIN_DIRECTOR", url)
    assert channel.reveal() == url
    run = vigil("inventory", "validate", "-i", str(demo_copy), "--json",
                env={"VIGIL_CH_FIN_DIRECTOR": url})
    assert run.code == 0 and "hunter22" not in run.out
    assert "Secret(env:VIGIL_CH_FIN_DIRECTOR)" in run.out


def test_vault_values_decrypt_only_with_the_password(vigil: VigilRunner, demo_copy: Path,
                                                     tmp_path: Path) -> None:
    password = tmp_path / "vault-pass"
    password.write_text("lab-vault-password\n")
    encrypted = subprocess.run(
        [str(Path(subprocess.sys.executable).parent / "ansible-vault"), "encrypt_string",
         "--vault-password-file", str(password), "file:///tmp/vault-channel-s3cr3t.log",
         "--name", "vault_channel"], capture_output=True, text=True, check=True).stdout
    (demo_copy / "group_vars/all/vault.yml").write_text(encrypted)
    site = demo_copy / "group_vars/all/site.yml"
    site.write_text(site.read_text().replace(
        'channels: ["file://', 'channels: ["{{ vault_channel }}", "file://'))

    inv = load_inventory(demo_copy, vault_password_file=str(password))
    secret = inv.contacts[0].channels[0]
    assert repr(secret) == "Secret(vault)"
    assert secret.reveal() == "file:///tmp/vault-channel-s3cr3t.log"

    run = vigil("inventory", "validate", "-i", str(demo_copy), "--json",
                "--vault-password-file", str(password))
    assert run.code == 0, run.err
    assert "s3cr3t" not in run.out
    assert json.loads(run.out)["contacts"][0]["channels"][0] == "Secret(vault)"
