"""`vigil zabbix sync` against the lab's real Zabbix 6.0 (issue 16): from empty, again with
nothing to change, a drifted trigger put back, and a host Vigil did not create left alone.
Each test syncs a site of its own, and removes what it made."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyzabbix import ZabbixAPI

from tests.conftest import OVERRIDE, ROOT
from tests.lab.watcher import Watch, wait_until
from vigil import lab
from vigil.lab.zabbix import ADMIN
from vigil.zabbix.sync import metric_key

pytestmark = [pytest.mark.lab]


@pytest.fixture
def api() -> ZabbixAPI:
    down = [h.name for h in lab.component("zabbix").status() if not h.ok]
    if down:
        if os.environ.get("VIGIL_REQUIRE_LAB") == "1":
            pytest.fail(f"lab components down: {', '.join(down)}")
        pytest.skip(f"the lab's Zabbix is not up (vigil lab up zabbix): {', '.join(down)}")
    z = ZabbixAPI("http://127.0.0.1:10080", timeout=10)
    z.login(*ADMIN)
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


def site_watch(site: tuple[Path, str], watches: Callable[..., Watch], tmp_path: Path,
               **zabbix: Any) -> Watch:
    """A daemon over the voucher library of the synced site, sending to the trapper."""
    inv, _ = site
    changes(sync(inv, "--json"))
    lab_site = yaml.safe_load((inv / "group_vars/all/site.yml").read_text(encoding="utf-8"))
    w = watches(tmp_path / "w", limit="voucher-library*", observe_only=True, site={
        "vigil_site": lab_site["vigil_site"],
        "vigil_zabbix": {**lab_site["vigil_zabbix"], "trapper": "127.0.0.1:10051", **zabbix}})
    w.start()
    return w


def host_id(api: ZabbixAPI, host: str) -> str:
    (found,) = api.host.get(filter={"host": [host]}, output=["hostid"])
    return str(found["hostid"])


def beating(api: ZabbixAPI, site_id: str) -> Callable[[], bool]:
    (beat,) = api.item.get(hostids=[host_id(api, f"vigil.{site_id}")], output=["itemid"])
    return lambda: bool(api.history.get(itemids=[beat["itemid"]], history=3, limit=1))


def test_a_vigil_fault_is_a_zabbix_problem_of_the_plan_s_severity_and_vigil_beats_there(
        site: tuple[Path, str], api: ZabbixAPI, watches: Callable[..., Watch],
        tmp_path: Path, restore_lab: None) -> None:
    """The leading daemon sends each cycle to the trapper: a check's metric is an item with
    values, and the voucher library stopped is, in Zabbix, a problem 'fault at level IV'
    of severity average on its host."""
    _, site_id = site
    w = site_watch(site, watches, tmp_path)
    # Zabbix takes trapper values for new items once its configuration cache has them.
    wait_until("Vigil's heartbeat in Zabbix", beating(api, site_id), timeout=90)
    library = host_id(api, f"vigil.{site_id}.voucher-library")
    assert not api.problem.get(hostids=[library])
    # A check's metric: its item made by the template's discovery, then its values.
    connect = metric_key("voucher-library.ssh", "connect_ms")
    wait_until("a check's metric in Zabbix's history", lambda: any(
        api.history.get(itemids=[i["itemid"]], history=0, limit=1)
        for i in api.item.get(hostids=[library], filter={"key_": connect}, output=["itemid"])
    ), timeout=120)

    lab.component("net").stop_voucher_service()  # type: ignore[attr-defined]
    wait_until("the problem in Zabbix", lambda: bool(api.problem.get(
        hostids=[library])), timeout=60)
    (problem,) = api.problem.get(hostids=[library], output=["name", "severity"])
    assert "fault at level IV" in problem["name"] and problem["severity"] == "3"
    assert w.stop() == 0


@pytest.fixture
def zabbix_user(api: ZabbixAPI) -> Iterator[tuple[str, str]]:
    """A person with an account in the county's Zabbix (super admin: sees every host)."""
    name, password = f"duty-{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}"
    (group,) = api.usergroup.get(filter={"name": ["Zabbix administrators"]},
                                 output=["usrgrpid"])
    user = api.user.create(username=name, passwd=password, roleid="3",
                           usrgrps=[{"usrgrpid": group["usrgrpid"]}])["userids"][0]
    yield name, password
    api.user.delete(user)


def test_acknowledgements_go_both_ways(
        site: tuple[Path, str], api: ZabbixAPI, zabbix_user: tuple[str, str],
        watches: Callable[..., Watch], tmp_path: Path, restore_lab: None) -> None:
    """A mapped Zabbix user's acknowledgement in the frontend (here its API) is the
    contact's in Vigil, recorded as from Zabbix; `vigil ack` acknowledges the system's
    Zabbix problem with a message."""
    _, site_id = site
    name, password = zabbix_user
    w = site_watch(site, watches, tmp_path, users={name: "lab-duty"})
    wait_until("Vigil's heartbeat in Zabbix", beating(api, site_id), timeout=90)
    library = host_id(api, f"vigil.{site_id}.voucher-library")
    lab.component("net").stop_voucher_service()  # type: ignore[attr-defined]
    wait_until("the problem in Zabbix", lambda: bool(api.problem.get(hostids=[library])),
               timeout=60)
    (problem,) = api.problem.get(hostids=[library], output=["eventid"])
    (inc,) = w.open_incidents()

    person = ZabbixAPI("http://127.0.0.1:10080", timeout=10)
    person.login(name, password)
    person.event.acknowledge(eventids=[problem["eventid"]], action=6, message="在处理")
    wait_until("the acknowledgement in Vigil", lambda: bool(
        w.store().events(kind="incident.acked")), timeout=60)
    (acked,) = w.store().events(kind="incident.acked")
    assert (acked.subject, acked.data["by"], acked.data["via"], acked.data["mark"]) == (
        inc["id"], "lab-duty", "zabbix", "IV")

    w.jump(25)  # level III: Vigil's level-III trigger fires, not yet acknowledged
    wait_until("the level III problem", lambda: any(
        "level III" in p["name"] for p in api.problem.get(hostids=[library],
                                                          output=["name"])), timeout=60)
    ack = w.vigil("ack", inc["id"], "--as", "lab-leader", *OVERRIDE)
    assert ack.returncode == 0, ack.stderr
    wait_until("Vigil's acknowledgement in Zabbix", lambda: any(
        p["acknowledged"] == "1" for p in api.problem.get(
            hostids=[library], output=["name", "acknowledged"]) if "level III" in p["name"]),
        timeout=60)
    (third,) = [p for p in api.problem.get(hostids=[library], output=["name"],
                                           selectAcknowledges=["message"])
                if "level III" in p["name"]]
    assert any(a["message"].startswith("Vigil: lab-leader") for a in third["acknowledges"])
    assert len(w.store().events(kind="incident.acked")) == 2  # no echo back from Zabbix
    assert w.stop() == 0


def test_a_zabbix_maintenance_holds_the_system_s_pages_until_it_ends(
        site: tuple[Path, str], api: ZabbixAPI, watches: Callable[..., Watch],
        tmp_path: Path, restore_lab: None) -> None:
    _, site_id = site
    w = site_watch(site, watches, tmp_path)
    library = host_id(api, f"vigil.{site_id}.voucher-library")
    now = int(time.time())
    maintenance = api.maintenance.create(
        name=f"机房割接 {site_id}", active_since=now - 60, active_till=now + 3600,
        hostids=[library], timeperiods=[{"timeperiod_type": 0, "start_date": now - 60,
                                         "period": 3660}])["maintenanceids"][0]
    try:
        # Zabbix's timer puts hosts in maintenance at the start of a minute.
        wait_until("the system silenced", lambda: bool(
            w.store().events(kind="system.silenced")), timeout=150)
        (silenced,) = w.store().events(kind="system.silenced")
        assert silenced.subject == "voucher-library" and "机房割接" in silenced.data["why"]
        inc = fault_unheard(w)
        # The plan's own steps go on (the banks told to hold their sending, P4.3.5);
        # the incident's pages wait.
        assert not pages(w, inc["id"]), "nobody is paged during the maintenance"
    finally:
        api.maintenance.delete(maintenance)
    wait_until("the silence's end", lambda: bool(
        w.store().events(kind="system.unsilenced")), timeout=150)
    wait_until("the held pages sent", lambda: bool(pages(w, inc["id"])), timeout=30)
    assert all("/opened/" in k for k in pages(w, inc["id"]))
    assert w.stop() == 0


def fault_unheard(w: Watch) -> dict[str, Any]:
    """The voucher library stopped under a silence: its incident, its opening held."""
    lab.component("net").stop_voucher_service()  # type: ignore[attr-defined]
    wait_until("the incident", lambda: bool(w.open_incidents()), timeout=60)
    wait_until("its opening held", lambda: bool(
        w.store().events(kind="incident.silenced")), timeout=30)
    (inc,) = w.open_incidents()
    return inc


def pages(w: Watch, incident: str) -> set[str]:
    """The incident's own messages (opening, level, reminder), not its plan steps'."""
    return {k for k in w.queued() if k.split("/")[:2] in (
        [incident, "opened"], [incident, "level"], [incident, "reminder"])}


def test_with_zabbix_stopped_checks_and_pages_go_on_and_the_team_is_told(
        site: tuple[Path, str], api: ZabbixAPI, watches: Callable[..., Watch],
        tmp_path: Path, restore_lab: None) -> None:
    _, site_id = site
    w = site_watch(site, watches, tmp_path, tell_after_minutes=0.1)
    wait_until("Vigil's heartbeat in Zabbix", beating(api, site_id), timeout=90)
    lab.component("zabbix").stop_server()  # type: ignore[attr-defined]
    wait_until("Zabbix unreachable, recorded", lambda: bool(
        w.store().events(kind="zabbix.unreachable")), timeout=60)
    lab.component("net").stop_voucher_service()  # type: ignore[attr-defined]
    wait_until("the incident opened and its pages sent", lambda: any(
        w.store().get_state(f"msg:{k}")["status"] == "sent" for k in w.queued()
        if "/opened/" in k), timeout=60)
    wait_until("the team told that Zabbix is away", lambda: any(
        k.startswith("zabbix/") for k in w.queued()), timeout=60)
    lab.up(["zabbix"], progress=lambda _m: None)
    wait_until("Zabbix reachable again, recorded", lambda: bool(
        w.store().events(kind="zabbix.reachable")), timeout=120)
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


@pytest.fixture
def agent_host(api: ZabbixAPI, site: tuple[Path, str]) -> Iterator[tuple[str, Path]]:
    """What a county's Zabbix already has: lab-app1's agent, an item on it polled each
    second, and a trigger of severity high when a fault flag file is there."""
    _, site_id = site
    flag = Path(f"/tmp/vigil-zabbix-fault-{site_id}")
    name = f"lab-app1-{site_id}"
    group = api.hostgroup.create(name=f"Lab servers {site_id}")["groupids"][0]
    host = api.host.create(host=name, groups=[{"groupid": group}], interfaces=[{
        "type": 1, "main": 1, "useip": 1, "ip": "10.77.0.11", "dns": "", "port": "10050"}]
    )["hostids"][0]
    (iface,) = api.hostinterface.get(hostids=[host], output=["interfaceid"])
    api.item.create(hostid=host, name="fault flag", key_=f"vfs.file.exists[{flag}]", type=0,
                    value_type=3, delay="1s", interfaceid=iface["interfaceid"])
    api.trigger.create(description="fault flag raised on {HOST.NAME}", priority=4,
                       expression=f"last(/{name}/vfs.file.exists[{flag}])=1")
    yield name, flag
    flag.unlink(missing_ok=True)
    api.host.delete(host)
    api.hostgroup.delete(group)


def test_a_real_agent_trigger_opens_an_incident_at_the_problem_s_onset_that_climbs(
        site: tuple[Path, str], api: ZabbixAPI, agent_host: tuple[str, Path],
        watches: Callable[..., Watch], tmp_path: Path) -> None:
    """A `zabbix` check maps the agent's host: its problem opens a Vigil incident whose
    onset is the problem's clock, the ladder climbs from there, and it recovers with it."""
    name, flag = agent_host
    w = watches(tmp_path / "w", limit="app-server*", observe_only=True)
    hv = w.inventory / "host_vars/lab-app1.yml"
    data = yaml.safe_load(hv.read_text(encoding="utf-8"))
    data["vigil_systems"].append({
        "id": "app-server", "name": {"zh": "应用服务器", "en": "Application server"},
        "fault_class": "infrastructure", "checks": [{
            "name": "app-server.zabbix", "kind": "zabbix",
            "params": {"hosts": [name], "min_severity": "high"}}]})
    hv.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    w.start()
    wait_until("the check sees Zabbix with no problem", lambda: any(
        e.data.get("status") == "ok" for e in w.store().events(kind="result")
        if e.subject.startswith("app-server.zabbix")), timeout=60)
    assert not w.open_incidents()

    flag.write_text("1")
    wait_until("the agent's problem in Zabbix", lambda: bool(api.problem.get(
        search={"name": "fault flag raised"}, hostids=[api.host.get(
            filter={"host": [name]})[0]["hostid"]])), timeout=90)
    (problem,) = api.problem.get(search={"name": "fault flag raised"}, output=["clock"])
    wait_until("a Vigil incident", lambda: bool(w.open_incidents()), timeout=60)
    (inc,) = w.open_incidents()
    assert inc["system"] == "app-server"
    assert dt.datetime.fromisoformat(inc["onset"]).timestamp() == int(problem["clock"])
    assert "fault flag raised" in inc["detail"][1]

    w.jump(25)  # a day on: the problem's onset puts it at level III
    wait_until("level III", lambda: any(
        e.data["mark"] == "III" for e in w.store().events(kind="incident.level")), timeout=60)

    flag.unlink()
    wait_until("recovered with the problem", lambda: not w.open_incidents(), timeout=90)
    assert w.stop() == 0


def test_a_vigil_silence_holds_pages_and_is_a_zabbix_maintenance_while_it_lasts(
        site: tuple[Path, str], api: ZabbixAPI, watches: Callable[..., Watch],
        tmp_path: Path, restore_lab: None) -> None:
    _, site_id = site
    w = site_watch(site, watches, tmp_path)
    library = host_id(api, f"vigil.{site_id}.voucher-library")
    added = w.vigil("silence", "add", "--system", "voucher-library", "--until", "1h",
                    "--reason", "更换网卡", "--as", "lab-duty", "--override-identity", "--json")
    assert added.returncode == 0, added.stderr
    sid = json.loads(added.stdout)["id"]

    def mirrored() -> list[dict[str, Any]]:
        return [m for m in api.maintenance.get(search={"name": f"Vigil {site_id} silence "},
                                               output=["name"], selectHosts=["hostid"])
                if sid in m["name"]]
    wait_until("the silence in Zabbix", lambda: bool(mirrored()), timeout=60)
    (maintenance,) = mirrored()
    assert [h["hostid"] for h in maintenance["hosts"]] == [library]
    assert "更换网卡" in maintenance["name"]

    inc = fault_unheard(w)
    assert not pages(w, inc["id"])
    (silenced,) = w.store().events(kind="system.silenced")
    assert sid in silenced.data["why"] and "lab-duty" in silenced.data["why"]

    ended = w.vigil("silence", "end", sid, "--as", "lab-duty", *OVERRIDE)
    assert ended.returncode == 0, ended.stderr
    wait_until("the held pages sent", lambda: bool(pages(w, inc["id"])), timeout=30)
    wait_until("the maintenance gone from Zabbix", lambda: not mirrored(), timeout=60)
    assert w.stop() == 0
