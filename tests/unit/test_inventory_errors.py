"""A broken inventory: exit 3 and one message naming the file, the host or group, the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import VigilRunner

HOST_VARS = Path("host_vars/vigil-server.yml")


def _edit(inv: Path, rel: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load((inv / rel).read_text())
    change(data)
    (inv / rel).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def _assert_clear_error(run, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert run.code == 3, (run.out, run.err)
    assert "Traceback" not in run.err
    text = " ".join(run.err.split())  # rich may wrap long lines
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


def test_unreadable_yaml_names_the_file(vigil: VigilRunner, demo_copy: Path) -> None:
    (demo_copy / HOST_VARS).write_text("vigil_systems: [\n  - id: x\n   bad: : indent\n")
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "host_vars/vigil-server.yml", "cannot parse")


def test_unreadable_hosts_file_names_the_file(vigil: VigilRunner, demo_copy: Path) -> None:
    (demo_copy / "hosts.yml").write_text("all:\n  hosts:\n    a: {\n")
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "hosts.yml", "cannot parse")


def test_unknown_check_kind(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS, lambda d: d["vigil_systems"][0]["checks"][0].update(kind="pingg"))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "host_vars/vigil-server.yml:", "host 'vigil-server'",
                        "vigil_systems[0].checks[0].kind", "unknown check kind 'pingg'", "tcp")


def test_missing_field(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS, lambda d: d["vigil_systems"][1].pop("fault_class"))
    run = vigil("inventory", "validate", "--inventory", str(demo_copy))
    _assert_clear_error(run, "host_vars/vigil-server.yml", "host 'vigil-server'",
                        "vigil_systems[1].fault_class", "required")


def test_ill_typed_field(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS, lambda d: d["vigil_systems"][0]["checks"][0].update(timeout="soon"))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "vigil_systems[0].checks[0].timeout", "'soon'")


def test_unknown_fault_class(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS, lambda d: d["vigil_systems"][0].update(fault_class="printer"))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "vigil_systems[0].fault_class", "voucher_library", "'printer'")


def test_bad_probe_parameter(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS,
          lambda d: d["vigil_systems"][2]["checks"][0]["params"].update(port=70000))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "vigil_systems[2].checks[0].params.port", "65535")


def test_unknown_probe_parameter(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS,
          lambda d: d["vigil_systems"][2]["checks"][0]["params"].update(prot=22))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "params.prot", "not a known field")


def test_dependency_on_unknown_system(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS, lambda d: d["vigil_systems"][1].update(depends_on=["nowhere"]))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "host 'vigil-server'", "vigil_systems[1].depends_on[0]",
                        "unknown system 'nowhere'")


def test_dependency_cycle(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS,
          lambda d: d["vigil_systems"][0].update(depends_on=["local-backups"]))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "dependency cycle", "monitoring-server")


def test_duplicate_system_names_both_hosts(vigil: VigilRunner, demo_copy: Path) -> None:
    (demo_copy / "hosts.yml").write_text(
        "all:\n  hosts:\n    vigil-server: {ansible_connection: local}\n"
        "    twin:\n      vigil_party: finance\n"
        "      vigil_systems: [{id: local-backups, name: x, fault_class: database}]\n")
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "'local-backups'", "twin", "vigil-server")


def test_unknown_party(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS, lambda d: d.update(vigil_party="mars"))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "vigil_party", "unknown party 'mars'")


def test_missing_site_names_group_all(vigil: VigilRunner, demo_copy: Path) -> None:
    site = demo_copy / "group_vars/all/site.yml"
    _edit(demo_copy, site.relative_to(demo_copy), lambda d: d.pop("vigil_site"))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "group 'all'", "vigil_site", "required")


def test_contact_of_unknown_party(vigil: VigilRunner, demo_copy: Path) -> None:
    rel = Path("group_vars/all/site.yml")
    _edit(demo_copy, rel, lambda d: d["vigil_contacts"][0].update(party="nobody"))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "group_vars/all/site.yml", "vigil_contacts[0].party", "'nobody'")


def test_missing_inventory(vigil: VigilRunner, tmp_path: Path) -> None:
    run = vigil("check", "--inventory", str(tmp_path / "nope"))
    _assert_clear_error(run, "nope", "no such inventory")


@pytest.mark.parametrize("args", [["check", "--bogus"], ["check", "--lang", "fr"], ["nosuch"]])
def test_usage_errors_exit_3(vigil: VigilRunner, args: list[str]) -> None:
    run = vigil(*args)
    assert run.code == 3
    assert "Traceback" not in run.err


def test_a_channel_that_is_no_text_is_refused_without_echoing_it(
        vigil: VigilRunner, demo_copy: Path) -> None:
    site = Path("group_vars/all/site.yml")
    _edit(demo_copy, site, lambda d: d["vigil_contacts"][0].update(
        channels=[{"url": "mailto://duty:hunter2@mail.example"}]))
    run = vigil("inventory", "validate", "--inventory", str(demo_copy))
    _assert_clear_error(run, "vigil_contacts[0].channels[0]", "must be text")
    assert "hunter2" not in run.err
    _edit(demo_copy, site, lambda d: d["vigil_contacts"][0].update(channels=[7]))
    _assert_clear_error(vigil("inventory", "validate", "--inventory", str(demo_copy)),
                        "must be text")


def test_a_time_zone_must_be_an_iana_name(vigil: VigilRunner, demo_copy: Path) -> None:
    site = Path("group_vars/all/site.yml")
    for zone in ("CST", "+08:00", "../../../../etc/passwd", "Asia/Shanghai\n"):
        _edit(demo_copy, site, lambda d, z=zone: d["vigil_site"].update(timezone=z))
        _assert_clear_error(vigil("inventory", "validate", "--inventory", str(demo_copy)),
                            "vigil_site.timezone", "unknown time zone")


def test_yaml_bombs_and_pipes_are_refused_before_ansible_reads_them(
        vigil: VigilRunner, demo_copy: Path) -> None:
    import os

    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    (demo_copy / "group_vars/all/bomb.yml").write_text("\n".join(bomb) + "\n")
    _assert_clear_error(vigil("inventory", "validate", "--inventory", str(demo_copy)),
                        "bomb.yml", "expands to more than 100000 values")
    (demo_copy / "group_vars/all/bomb.yml").unlink()
    os.mkfifo(demo_copy / "group_vars/all/pipe.yml")
    _assert_clear_error(vigil("inventory", "validate", "--inventory", str(demo_copy),
                              timeout=30), "pipe.yml", "not a regular file")


def test_a_zabbix_check_without_vigil_zabbix(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS, lambda d: d["vigil_systems"][0]["checks"][0].update(
        kind="zabbix", params={"groups": ["Switches"]}))
    run = vigil("inventory", "validate", "--inventory", str(demo_copy))
    _assert_clear_error(run, "host_vars/vigil-server.yml", "host 'vigil-server'",
                        "vigil_systems[0].checks[0].params",
                        "a zabbix check needs vigil_zabbix")


def test_a_system_owner_who_is_not_a_contact(vigil: VigilRunner, demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS, lambda d: d["vigil_systems"][0].update(owners=["ghost"]))
    run = vigil("check", "--inventory", str(demo_copy))
    _assert_clear_error(run, "vigil_systems[0].owners[0]", "'ghost'", "not in vigil_contacts")


def test_a_self_fence_limit_too_short_to_be_safe_is_refused(vigil: VigilRunner,
                                                            demo_copy: Path) -> None:
    _edit(demo_copy, HOST_VARS, lambda d: d.update(vigil_self_fence={"limit_s": 1}))
    run = vigil("inventory", "validate", "--inventory", str(demo_copy))
    _assert_clear_error(run, "host_vars/vigil-server.yml", "host 'vigil-server'",
                        "vigil_self_fence.limit_s", "greater than or equal to 2")
