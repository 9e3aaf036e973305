"""zabbix: the county's Zabbix already watches this system (agents, SNMP): its problems on
the mapped hosts are this check's result, so they open incidents and climb the plan's
ladder without Vigil probing the same thing again. The onset is the problem's own clock.

The hosts are Zabbix's technical names, or every host of the named host groups; `tags`
narrows to problems carrying all of them; `min_severity` drops the lesser ones."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field, field_validator, model_validator

from vigil.checks.base import BindContext, BindError, Probe, ProbeParams
from vigil.model import ZABBIX_SEVERITIES, CheckSpec, ZabbixVars, zabbix_severity
from vigil.result import Result, Say, Status
from vigil.zabbix.api import ZabbixError, shared_call

SHOWN = 3  # problems named in a result's message


class ZabbixParams(ProbeParams):
    hosts: list[str] = []  # Zabbix host names (technical, not visible, names)
    groups: list[str] = []  # Zabbix host groups: all their hosts
    tags: dict[str, str] = {}  # a problem must carry every one of these tags
    min_severity: str = "average"  # one of vigil.model.ZABBIX_SEVERITIES
    server: Any = Field(None, exclude=True)  # vigil_zabbix, bound when the inventory loads

    @field_validator("min_severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        return zabbix_severity(value)

    @model_validator(mode="after")
    def _something(self) -> ZabbixParams:
        if not (self.hosts or self.groups):
            raise ValueError("name Zabbix hosts or host groups")
        return self


class ZabbixProbe(Probe):
    kind = "zabbix"
    Params = ZabbixParams

    def bind(self, params: ZabbixParams, ctx: BindContext) -> ZabbixParams:
        if ctx.zabbix is None:
            raise BindError((), "a zabbix check needs vigil_zabbix in group 'all'")
        return params.model_copy(update={"server": ctx.zabbix})

    def run(self, check: CheckSpec) -> Result:
        p: ZabbixParams = check.params
        z: ZabbixVars = p.server
        target = f"zabbix {z.url}"
        try:
            hosts, missing = _hosts(z, p)
            problems = _problems(z, p, hosts) if hosts else []
        except ZabbixError as exc:
            return check.result(Status.UNKNOWN, Say(
                f"cannot ask Zabbix: {exc}", f"无法查询 Zabbix：{exc}"), target=target,
                reachable=False)
        metrics: dict[str, Any] = {"reachable": True, "hosts": len(hosts),
                                   "problems": len(problems)}
        if missing:
            names = ", ".join(missing)
            return check.result(Status.UNKNOWN, Say(f"Zabbix has no host or group {names}",
                                                    f"Zabbix 中没有主机或主机组 {names}"),
                                target=target, metrics=metrics)
        if not problems:
            return check.result(Status.OK, Say(
                f"no Zabbix problem of severity {p.min_severity} or more on "
                f"{len(hosts)} host(s)",
                f"{len(hosts)} 台主机无 {p.min_severity} 及以上级别的 Zabbix 问题"),
                target=target, metrics=metrics)
        worst = max(int(x["severity"]) for x in problems)
        since = min(int(x["clock"]) for x in problems)
        named = [f"{hosts.get(x['hostid'], '?')}: {x['name']}" for x in problems[:SHOWN]]
        more = len(problems) - len(named)
        tail = (f" (+{more})" if more else "")
        result = check.result(
            Status.CRITICAL, Say("Zabbix: " + "; ".join(named) + tail,
                                 "Zabbix 问题：" + "；".join(named) + tail),
            target=target, metrics={**metrics, "worst_severity": ZABBIX_SEVERITIES[worst],
                                    "eventids": ",".join(x["eventid"] for x in problems)})
        result.since = dt.datetime.fromtimestamp(since, dt.UTC)
        return result


def _hosts(z: ZabbixVars, p: ZabbixParams) -> tuple[dict[str, str], list[str]]:
    """Host id -> name of the mapped hosts, and the names Zabbix does not know."""
    found: dict[str, str] = {}
    missing: list[str] = []
    if p.hosts:
        got = shared_call(z, "host.get", filter={"host": p.hosts}, output=["hostid", "host"])
        found |= {h["hostid"]: h["host"] for h in got}
        missing += sorted(set(p.hosts) - {h["host"] for h in got})
    if p.groups:
        groups = shared_call(z, "hostgroup.get", filter={"name": p.groups},
                             output=["groupid", "name"])
        missing += sorted(set(p.groups) - {g["name"] for g in groups})
        if groups:
            found |= {h["hostid"]: h["host"] for h in shared_call(
                z, "host.get", groupids=[g["groupid"] for g in groups],
                output=["hostid", "host"])}
    return found, missing


def _problems(z: ZabbixVars, p: ZabbixParams, hosts: dict[str, str]) -> list[dict[str, Any]]:
    """The open trigger problems of those hosts, gravest first, each with its host's id."""
    least = ZABBIX_SEVERITIES.index(p.min_severity)
    problems = shared_call(
        z, "problem.get", hostids=sorted(hosts), source=0, object=0, recent=False,
        severities=list(range(least, len(ZABBIX_SEVERITIES))),
        tags=[{"tag": k, "value": v, "operator": 1} for k, v in sorted(p.tags.items())],
        output=["eventid", "objectid", "clock", "name", "severity"])
    if not problems:
        return []
    # problem.get names no host; the trigger (the problem's object) does.
    triggers = {t["triggerid"]: t["hosts"][0]["hostid"] for t in shared_call(
        z, "trigger.get", triggerids=sorted({x["objectid"] for x in problems}),
        output=["triggerid"], selectHosts=["hostid"]) if t["hosts"]}
    out = [{**x, "hostid": triggers.get(x["objectid"], "")} for x in problems]
    return sorted(out, key=lambda x: (-int(x["severity"]), int(x["clock"])))
