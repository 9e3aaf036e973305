"""`vigil zabbix sync`: the Zabbix objects that show a site's systems and Vigil itself.

For site S (all created by Vigil, tagged `vigil: S`, and the only objects it changes):

- host group `Vigil/S`;
- template `Vigil system S`: a trapper item `vigil.incident.level` (0: no open incident;
  5 IV, 4 IV confirmed, 3 III, 2 II, 1 I, lower is graver as in the plan) and a trigger a
  level, its severity from `vigil_zabbix.severities` (IV average, III high, II and I
  disaster unless the site says otherwise);
- on the template too, a trapper discovery rule `vigil.metrics.discovery` whose item
  prototype `vigil.metric["{#CHECK}","{#METRIC}"]` becomes an item for each numeric metric
  of each check (Vigil's metric names: `connect_ms`, `depth:vouchers.to-pboc`, …) as the
  daemon reports them (vigil.zabbix.push);
- a host `vigil.S.SYSTEM` a system, on the template, with a trapper item
  `vigil.check.status["CHECK"]` a check (0 ok, 1 warning, 2 critical, 3 unknown);
- a host `vigil.S` (Vigil itself) with the trapper item `vigil.heartbeat` and a `nodata()`
  trigger: a silent Vigil is a Zabbix problem (the dead man's switch of issue 14).

Running it twice changes nothing the second time, and says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vigil.domain import Level
from vigil.model import ZABBIX_SEVERITIES, Inventory, ZabbixVars
from vigil.zabbix.api import ZabbixError, call, template_groups

TRAPPER, FLOAT, UNSIGNED = 2, 0, 3  # item type, value types (Zabbix API constants)
DISCOVERY = "vigil.metrics.discovery"
METRIC_PROTOTYPE = 'vigil.metric["{#CHECK}","{#METRIC}"]'

LEVEL_VALUES = {Level.I: 1, Level.II: 2, Level.III: 3, Level.IV_CONFIRMED: 4, Level.IV: 5}
STATUS_VALUES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}
HEARTBEAT_SILENCE = "180s"  # three missed beats of the default minute


@dataclass(frozen=True)
class Item:
    key: str
    name: str
    description: str = ""

    def params(self) -> dict[str, Any]:
        return {"key_": self.key, "name": self.name, "type": TRAPPER,
                "value_type": UNSIGNED, "description": self.description}


@dataclass(frozen=True)
class Trigger:
    description: str
    expression: str
    priority: int

    def params(self) -> dict[str, Any]:
        return {"description": self.description, "expression": self.expression,
                "priority": self.priority}


@dataclass(frozen=True)
class HostPlan:
    host: str  # technical name
    name: str  # visible name
    items: tuple[Item, ...]
    triggers: tuple[Trigger, ...] = ()
    template: bool = False
    linked: bool = False  # on the site's template (a system's host)


@dataclass
class Desired:
    site: str
    group: str
    template: HostPlan
    hosts: list[HostPlan] = field(default_factory=list)


def check_key(check: str) -> str:
    return f'vigil.check.status[{json.dumps(check)}]'


def metric_key(check: str, metric: str) -> str:
    """The item a metric's prototype makes (its quoting as Zabbix's key parameters)."""
    return f"vigil.metric[{json.dumps(check)},{json.dumps(metric)}]"


def desired(inv: Inventory, z: ZabbixVars) -> Desired:
    site = inv.site.id
    tpl = f"Vigil system {site}"
    triggers = []
    for level, value in sorted(LEVEL_VALUES.items(), key=lambda kv: -kv[1]):
        severity = z.severities.get(level, "average")
        triggers.append(Trigger(
            f"Vigil: {{HOST.NAME}} 故障{level.value}级 / fault at level {level.value}",
            f"last(/{tpl}/vigil.incident.level)={value}",
            ZABBIX_SEVERITIES.index(severity)))
    template = HostPlan(tpl, tpl, (Item(
        "vigil.incident.level", "Vigil incident level",
        "0 no open incident; 5 IV, 4 IV confirmed, 3 III, 2 II, 1 I (the plan's P4.1)"),),
        tuple(triggers), template=True)
    hosts = []
    for system in sorted(inv.systems.values(), key=lambda s: s.id):
        items = tuple(Item(check_key(c), f"Vigil check {c}",
                           "0 ok, 1 warning, 2 critical, 3 unknown")
                      for c in sorted(system.checks))
        hosts.append(HostPlan(f"vigil.{site}.{system.id}",
                              f"{system.name.get('zh')} ({system.id})", items, linked=True))
    monitor = f"vigil.{site}"
    hosts.append(HostPlan(monitor, f"Vigil 监控 ({site})", (Item(
        "vigil.heartbeat", "Vigil heartbeat", "the leading vigil watch daemon, every cycle"),),
        (Trigger(f"Vigil: {site} 监控心跳中断 / monitor silent",
                 f"nodata(/{monitor}/vigil.heartbeat,{HEARTBEAT_SILENCE})=1",
                 ZABBIX_SEVERITIES.index("high")),)))
    return Desired(site, f"Vigil/{site}", template, hosts)


@dataclass
class Change:
    verb: str  # create | update | delete
    what: str  # e.g. "host vigil.payment-db"
    apply: Callable[[], Any] = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"{ {'create': '+', 'update': '~', 'delete': '-'}[self.verb]} {self.what}"


class Planner:
    """Compares what Zabbix holds with what the site should have; each difference a Change,
    applied in order (a host's group and template exist before the host)."""

    def __init__(self, api: Any, want: Desired) -> None:
        self.api, self.want = api, want
        self.tags = [{"tag": "vigil", "value": want.site}]
        self.changes: list[Change] = []
        self.ids: dict[str, str] = {}  # "group" / "template" / host -> id, once known

    def plan(self) -> list[Change]:
        self._group()
        self._host(self.want.template)
        self._discovery()
        for host in self.want.hosts:
            self._host(host)
        self._stale_hosts()
        return self.changes

    def _add(self, verb: str, what: str, method: str, *ids: str, on: str | None = None,
             **params: Any) -> None:
        """One API call to make; `on`: the host or template whose id is known only once it
        is created, passed as `hostid`."""
        def apply() -> Any:
            more = {"hostid": self.ids[on]} if on else {}
            return call(self.api, method, *ids, **more, **params)
        self.changes.append(Change(verb, what, apply))

    def _group(self) -> None:
        self._group_of("hostgroup", "group")
        if template_groups(self.api):  # from 6.2, a template in a template group
            self._group_of("templategroup", "template group")

    def _group_of(self, method: str, key: str) -> None:
        found = call(self.api, f"{method}.get", filter={"name": [self.want.group]},
                     output=["groupid"])
        if found:
            self.ids[key] = found[0]["groupid"]
            return

        def create() -> None:
            self.ids[key] = call(self.api, f"{method}.create",
                                 name=self.want.group)["groupids"][0]
        self.changes.append(Change("create", f"{method.replace('group', ' group')} "
                                             f"{self.want.group}", create))

    def _host(self, plan: HostPlan) -> None:
        kind = "template" if plan.template else "host"
        found = call(self.api, f"{kind}.get", filter={"host": [plan.host]},
                     output=[f"{kind}id", "name"], selectTags="extend",
                     **({} if plan.template else {"selectParentTemplates": ["templateid"]}))
        if found and not any(t["tag"] == "vigil" for t in found[0]["tags"]):
            raise ZabbixError(f"Zabbix already has a {kind} {plan.host!r} that Vigil did "
                              f"not create: rename it or the system")
        key = "template" if plan.template else plan.host
        if not found:
            def create() -> None:
                group = self.ids.get("template group", self.ids["group"]) if plan.template \
                    else self.ids["group"]
                params: dict[str, Any] = {"host": plan.host, "name": plan.name,
                                          "groups": [{"groupid": group}],
                                          "tags": self._tags(plan)}
                if plan.linked:
                    params["templates"] = [{"templateid": self.ids["template"]}]
                self.ids[key] = call(self.api, f"{kind}.create", **params)[f"{kind}ids"][0]
            self.changes.append(Change("create", f"{kind} {plan.host}", create))
            self._items(plan, key, {})
            self._triggers(plan, {})
            return
        self.ids[key] = found[0][f"{kind}id"]
        if found[0]["name"] != plan.name:
            self._add("update", f"{kind} {plan.host} name", f"{kind}.update",
                      **{f"{kind}id": self.ids[key], "name": plan.name})
        linked = {t["templateid"] for t in found[0].get("parentTemplates", [])}
        if plan.linked and self.ids.get("template") not in linked:
            self._add("update", f"host {plan.host} on template {self.want.template.host}",
                      "host.update", on=key, templates=[{"templateid": self.ids["template"]}])
        self._items(plan, key, {i["key_"]: i for i in call(
            self.api, "item.get", hostids=[self.ids[key]], inherited=False,
            output=["itemid", "key_", "name", "type", "value_type", "description"])})
        self._triggers(plan, {t["description"]: t for t in call(
            self.api, "trigger.get", hostids=[self.ids[key]], inherited=False,
            expandExpression=True, output=["triggerid", "description", "expression",
                                           "priority"])})

    def _discovery(self) -> None:
        """The template's metric discovery rule and its item prototype."""
        tpl = self.want.template.host
        rule = prototype = None
        if "template" in self.ids:  # the template exists: look at what it has
            rules = call(self.api, "discoveryrule.get", hostids=[self.ids["template"]],
                         filter={"key_": [DISCOVERY]}, output=["itemid"])
            rule = rules[0]["itemid"] if rules else None
            if rule:
                found = call(self.api, "itemprototype.get", discoveryids=[rule],
                             filter={"key_": [METRIC_PROTOTYPE]}, output=["itemid"])
                prototype = found[0]["itemid"] if found else None
        if rule and prototype:
            return

        def create() -> None:
            ruleid = rule or call(
                self.api, "discoveryrule.create", hostid=self.ids["template"],
                key_=DISCOVERY, name="Vigil metrics", type=TRAPPER, lifetime="7d",
                description="the check metrics the leading vigil watch reports")["itemids"][0]
            call(self.api, "itemprototype.create", hostid=self.ids["template"], ruleid=ruleid,
                 key_=METRIC_PROTOTYPE, name="Vigil {#CHECK} {#METRIC}", type=TRAPPER,
                 value_type=FLOAT)
        self.changes.append(Change("create", f"metric discovery on template {tpl}", create))

    def _tags(self, plan: HostPlan) -> list[dict[str, str]]:
        system = plan.host.removeprefix(f"vigil.{self.want.site}.")
        return self.tags + ([{"tag": "vigil.system", "value": system}] if plan.linked else [])

    def _items(self, plan: HostPlan, key: str, have: dict[str, Any]) -> None:
        for item in plan.items:
            got = have.pop(item.key, None)
            if got is None:
                self._add("create", f"item {plan.host}:{item.key}", "item.create", on=key,
                          **item.params())
            elif (got["name"], int(got["type"]), int(got["value_type"]), got["description"]) \
                    != (item.name, TRAPPER, UNSIGNED, item.description):
                self._add("update", f"item {plan.host}:{item.key}", "item.update",
                          itemid=got["itemid"], **item.params())
        for item_key, got in have.items():  # Vigil's own host: a check gone from the inventory
            self._add("delete", f"item {plan.host}:{item_key}", "item.delete", got["itemid"])

    def _triggers(self, plan: HostPlan, have: dict[str, Any]) -> None:
        for trig in plan.triggers:
            got = have.pop(trig.description, None)
            if got is None:
                self._add("create", f"trigger {plan.host}: {trig.description}",
                          "trigger.create", **trig.params())
            elif (got["expression"], int(got["priority"])) != (trig.expression, trig.priority):
                self._add("update", f"trigger {plan.host}: {trig.description}",
                          "trigger.update", triggerid=got["triggerid"], **trig.params())
        for description, got in have.items():
            self._add("delete", f"trigger {plan.host}: {description}", "trigger.delete",
                      got["triggerid"])

    def _stale_hosts(self) -> None:
        wanted = {h.host for h in self.want.hosts}
        for host in call(self.api, "host.get", tags=[{"tag": "vigil", "value": self.want.site,
                                                      "operator": 1}],
                         output=["hostid", "host"]):
            if host["host"] not in wanted:
                self._add("delete", f"host {host['host']}", "host.delete", host["hostid"])


def sync(api: Any, inv: Inventory, z: ZabbixVars, *, dry_run: bool) -> list[Change]:
    """The differences, applied unless `dry_run`."""
    changes = Planner(api, desired(inv, z)).plan()
    if not dry_run:
        for change in changes:
            change.apply()
    return changes
