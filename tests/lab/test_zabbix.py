"""`vigil zabbix sync` against the lab's real Zabbix 6.0 (issue 16): from empty, again with
nothing to change, a drifted trigger put back, and a host Vigil did not create left alone.
Each test syncs a site of its own, and removes what it made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyzabbix import ZabbixAPI

from tests.conftest import ROOT
from tests.lab.watcher import Watch, wait_until
from vigil import lab

pytestmark = [pytest.mark.lab]


@pytest.fixture
def api() -> ZabbixAPI:
    down = [h.name for h in lab.component("zabbix").status() if not h.ok]
    if down:
        if os.environ.get("VIGIL_REQUIRE_LAB") == "1":
            pytest.fail(f"lab components down: {', '.join(down)}")
        pytest.skip(f"the lab's Zabbix is not up (vigil lab up zabbix): {', '.join(down)}")
    z = ZabbixAPI("http://127.0.0.1:10080", timeout=10)
    z.login("Admin", "zabbix")
    return z


@pytest.fixture
def site(tmp_path: Path, api: ZabbixAPI) -> Iterator[tuple[Path, str]]:
    """A copy of the lab inventory under a site id of its own."""
    site_id = f"t{uuid.uuid4().hex[:8]}"
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventory/lab", inv)
    path = inv / "group_vars/all/site.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["vigil_site"]["id"] = site_id
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    yield inv, site_id
    hosts = api.host.get(tags=[{"tag": "vigil", "value": site_id, "operator": 1}],
                         output=["hostid"])
    if hosts:
        api.host.delete(*[h["hostid"] for h in hosts])
    for tpl in api.template.get(filter={"host": [f"Vigil system {site_id}"]},
                                output=["templateid"]):
        api.template.delete(tpl["templateid"])
    for group in api.hostgroup.get(filter={"name": [f"Vigil/{site_id}"]}, output=["groupid"]):
        api.hostgroup.delete(group["groupid"])


def sync(inv: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil", "zabbix", "sync", "-i", str(inv),
                           "--lang", "en", *more], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def changes(run: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert run.returncode == 0, run.stderr
    return list(json.loads(run.stdout)["changes"])


def test_sync_from_empty_then_again_changes_nothing(site: tuple[Path, str],
                                                     api: ZabbixAPI) -> None:
    inv, site_id = site
    planned = changes(sync(inv, "--dry-run", "--json"))
    assert planned and not api.hostgroup.get(filter={"name": [f"Vigil/{site_id}"]})
    made = changes(sync(inv, "--json"))
    assert made == planned
    hosts = {h["host"]: h for h in api.host.get(
        tags=[{"tag": "vigil", "value": site_id, "operator": 1}], output=["host"],
        selectParentTemplates=["host"], selectItems=["key_"])}
    assert f"vigil.{site_id}.payment-db" in hosts and f"vigil.{site_id}" in hosts
    db = hosts[f"vigil.{site_id}.payment-db"]
    assert [t["host"] for t in db["parentTemplates"]] == [f"Vigil system {site_id}"]
    assert any(i["key_"].startswith("vigil.check.status[") for i in db["items"])
    # The plan's levels as severities: IV average (3), III high (4), II and I disaster (5).
    triggers = {t["description"]: int(t["priority"]) for t in api.trigger.get(
        templateids=[api.template.get(filter={"host": [f"Vigil system {site_id}"]})[0][
            "templateid"]], output=["description", "priority"])}
    assert sorted(triggers.values()) == [3, 3, 4, 5, 5]
    # The heartbeat's dead man's switch.
    (silent,) = api.trigger.get(hostids=[api.host.get(filter={"host": [f"vigil.{site_id}"]})[0][
        "hostid"]], expandExpression=True, output=["expression"])
    assert silent["expression"] == f"nodata(/vigil.{site_id}/vigil.heartbeat,180s)=1"

    again = sync(inv)
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stdout


def test_a_drifted_trigger_is_shown_then_put_back(site: tuple[Path, str],
                                                  api: ZabbixAPI) -> None:
    inv, site_id = site
    changes(sync(inv, "--json"))
    (trigger,) = [t for t in api.trigger.get(
        search={"description": "fault at level III"}, output=["triggerid", "description"],
        templateids=[api.template.get(filter={"host": [f"Vigil system {site_id}"]})[0][
            "templateid"]])]
    api.trigger.update(triggerid=trigger["triggerid"], priority=1)  # someone lowered it
    drift = changes(sync(inv, "--dry-run", "--json"))
    assert drift == [{"verb": "update", "what": f"trigger Vigil system {site_id}: "
                                                f"{trigger['description']}"}]
    changes(sync(inv, "--json"))
    (back,) = api.trigger.get(triggerids=[trigger["triggerid"]], output=["priority"])
    assert back["priority"] == "4"


def test_a_host_vigil_did_not_create_is_never_touched(site: tuple[Path, str],
                                                      api: ZabbixAPI) -> None:
    inv, site_id = site
    group = api.hostgroup.create(name=f"someone-else-{site_id}")["groupids"][0]
    theirs = api.host.create(host=f"vigil.{site_id}.payment-db",
                             groups=[{"groupid": group}])["hostids"][0]
    try:
        run = sync(inv)
        assert run.returncode == 3
        assert run.stderr.count("\n") == 1 and "Vigil did not create" in run.stderr
        (kept,) = api.host.get(hostids=[theirs], output=["host"], selectTags="extend")
        assert kept["tags"] == []  # unchanged
    finally:
        api.host.delete(theirs)
        api.hostgroup.delete(group)


def test_a_vigil_fault_is_a_zabbix_problem_of_the_plan_s_severity_and_vigil_beats_there(
        site: tuple[Path, str], api: ZabbixAPI, watches: Callable[..., Watch],
        tmp_path: Path, restore_lab: None) -> None:
    """The leading daemon sends each cycle to the trapper: the voucher library stopped is,
    in Zabbix, a problem 'fault at level IV' of severity average on its host."""
    inv, site_id = site
    changes(sync(inv, "--json"))
    lab_site = yaml.safe_load((inv / "group_vars/all/site.yml").read_text(encoding="utf-8"))
    w = watches(tmp_path / "w", limit="voucher-library*", observe_only=True, site={
        "vigil_site": lab_site["vigil_site"],
        "vigil_zabbix": {**lab_site["vigil_zabbix"], "trapper": "127.0.0.1:10051"}})
    w.start()
    (monitor,) = api.host.get(filter={"host": [f"vigil.{site_id}"]}, output=["hostid"])
    (beat,) = api.item.get(hostids=[monitor["hostid"]], output=["itemid"])
    # Zabbix takes trapper values for new items once its configuration cache has them.
    wait_until("Vigil's heartbeat in Zabbix", lambda: bool(api.history.get(
        itemids=[beat["itemid"]], history=3, limit=1)), timeout=90)
    (library,) = api.host.get(filter={"host": [f"vigil.{site_id}.voucher-library"]},
                              output=["hostid"])
    assert not api.problem.get(hostids=[library["hostid"]])

    lab.component("net").stop_voucher_service()  # type: ignore[attr-defined]
    wait_until("the problem in Zabbix", lambda: bool(api.problem.get(
        hostids=[library["hostid"]])), timeout=60)
    (problem,) = api.problem.get(hostids=[library["hostid"]], output=["name", "severity"])
    assert "fault at level IV" in problem["name"] and problem["severity"] == "3"
    assert w.stop() == 0


def test_wrong_credentials_are_one_line_naming_the_server_and_change_nothing(
        site: tuple[Path, str], api: ZabbixAPI) -> None:
    inv, site_id = site
    path = inv / "group_vars/all/site.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["vigil_zabbix"]["password"] = "not-the-password"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    run = sync(inv)
    assert run.returncode == 3 and run.stderr.count("\n") == 1, run.stderr
    assert "http://127.0.0.1:10080" in run.stderr and "'Admin'" in run.stderr
    assert "not-the-password" not in run.stderr + run.stdout
    assert not api.hostgroup.get(filter={"name": [f"Vigil/{site_id}"]})
