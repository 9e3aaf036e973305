"""What `vigil zabbix sync` asks of Zabbix, and what `vigil watch` sends it, from an
inventory alone (the real server: tests/lab/test_zabbix.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.conftest import ROOT
from tests.receivers import free_port
from vigil.domain import FaultClass, Level
from vigil.inventory import load_inventory
from vigil.model import ZabbixVars
from vigil.result import Result, Status
from vigil.zabbix.api import ZabbixError, connect
from vigil.zabbix.push import cycle_values
from vigil.zabbix.sync import DISCOVERY, check_key, desired, metric_key


def zabbix(**more: object) -> ZabbixVars:
    return ZabbixVars.model_validate({"url": "http://zabbix.example", "user": "vigil",
                                      "password": "x", **more})


def test_a_host_a_system_an_item_a_check_and_the_plan_s_severities() -> None:
    inv = load_inventory(ROOT / "inventory/lab")
    want = desired(inv, zabbix())
    hosts = {h.host: h for h in want.hosts}
    assert set(hosts) == {f"vigil.lab.{s}" for s in inv.systems} | {"vigil.lab"}
    db = hosts["vigil.lab.payment-db"]
    assert db.linked and {i.key for i in db.items} == {
        check_key(c) for c in inv.systems["payment-db"].checks}
    # Level values (5 IV … 1 I) to Zabbix priorities: IV average, III high, II and I disaster.
    severity = {int(t.expression.rpartition("=")[2]): t.priority
                for t in want.template.triggers}
    assert severity == {5: 3, 4: 3, 3: 4, 2: 5, 1: 5}
    (silent,) = hosts["vigil.lab"].triggers
    assert silent.expression == "nodata(/vigil.lab/vigil.heartbeat,180s)=1"


def test_a_site_may_show_level_iv_as_high() -> None:
    inv = load_inventory(ROOT / "inventory/lab")
    want = desired(inv, zabbix(severities={"IV": "high"}))
    (iv,) = [t for t in want.template.triggers if t.expression.endswith("=5")]
    assert iv.priority == 4


def test_a_cycle_for_zabbix_carries_each_status_each_level_and_the_heartbeat() -> None:
    inv = load_inventory(ROOT / "inventory/lab")
    check = inv.systems["payment-db"].checks[0]
    result = Result(check=check, kind="tcp", system="payment-db", target="x",
                    fault_class=FaultClass.DATABASE, status=Status.CRITICAL, message="down",
                    observed_at=dt.datetime.now(dt.UTC))
    levels = {s: None for s in inv.systems} | {"payment-db": Level.III}
    values = {(v.host, v.key): v.value for v in cycle_values(inv, [result], levels, 1e9)}
    assert values[("vigil.lab.payment-db", check_key(check))] == 2
    assert values[("vigil.lab.payment-db", "vigil.incident.level")] == 3
    assert values[("vigil.lab.voucher-library", "vigil.incident.level")] == 0
    assert values[("vigil.lab", "vigil.heartbeat")] == 1


def test_an_unreachable_zabbix_is_one_line_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ZabbixError) as caught:
        connect(zabbix(url=url), timeout_s=3)
    assert str(caught.value).startswith(f"Zabbix at {url} cannot be reached")
    assert "\n" not in str(caught.value)


def test_numeric_metrics_go_to_zabbix_after_their_discovery_once() -> None:
    inv = load_inventory(ROOT / "inventory/lab")
    check = inv.systems["payment-db"].checks[0]
    result = Result(check=check, kind="tcp", system="payment-db", target="x",
                    fault_class=FaultClass.DATABASE, status=Status.OK, message="up",
                    metrics={"connect_ms": 1.5, "reachable": True, "target": "a:1"},
                    observed_at=dt.datetime.now(dt.UTC))
    discovered: dict[str, set[tuple[str, str]]] = {}
    first = cycle_values(inv, [result], {}, 1e9, discovered)
    keys = [v.key for v in first if v.host == "vigil.lab.payment-db"]
    # the discovery data before the values its items are for; a string metric is not sent
    assert keys.index(DISCOVERY) < keys.index(metric_key(check, "connect_ms"))
    values = {v.key: v.value for v in first}
    assert values[metric_key(check, "connect_ms")] == 1.5
    assert values[metric_key(check, "reachable")] == 1
    assert metric_key(check, "target") not in values
    told = json.loads(str(values[DISCOVERY]))
    assert {(d["{#CHECK}"], d["{#METRIC}"]) for d in told} == {
        (check, "connect_ms"), (check, "reachable")}
    again = cycle_values(inv, [result], {}, 1e9 + 60, discovered)
    assert DISCOVERY not in {v.key for v in again}, "told once, not each cycle"
