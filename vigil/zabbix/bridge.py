"""Acknowledgements and maintenance between Vigil and the county's Zabbix, both ways, on a
thread of the leading daemon's own: an API call may take seconds, and the cycle never waits.

- An acknowledgement in Vigil (`vigil ack`) acknowledges, with a message, the open Zabbix
  problems of that system: those of Vigil's own triggers, and those its `zabbix` checks
  took in.
- An acknowledgement in the Zabbix frontend on a Vigil trigger's problem, by a Zabbix user
  that `vigil_zabbix.users` maps to a Vigil contact, is that contact's acknowledgement in
  Vigil (recorded `via: zabbix`).
- A Zabbix maintenance on a system's Vigil host, or on a host its `zabbix` checks map,
  silences that system's paging while it lasts (the tracker holds its messages and records
  it; alerting.incidents).
- A Vigil silence (alerting.silences) is mirrored as a Zabbix maintenance on the system's
  Vigil host, named `Vigil SITE silence ID`, for as long as it lasts."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from vigil import keys
from vigil.alerting import silences
from vigil.model import Inventory, ZabbixVars
from vigil.store import Event, Store
from vigil.zabbix.api import ZabbixError, shared_api, shared_call, template_groups

log = logging.getLogger("vigil.zabbix")

EVERY_S = 10.0  # a round of questions to Zabbix
ACKNOWLEDGE, MESSAGE = 2, 4  # event.acknowledge's action bits


def vigil_host(site: str, system: str) -> str:
    return f"vigil.{site}.{system}"


class Bridge:
    def __init__(self, inv: Inventory, store: Store, z: ZabbixVars, acknowledge: Any,
                 now: Callable[[], dt.datetime], every_s: float = EVERY_S) -> None:
        """`acknowledge(incident, contact, via)`: alerting.incidents.acknowledge, bound;
        `now`: the daemon's clock."""
        self.inv, self.store, self.z, self.every_s = inv, store, z, every_s
        self.acknowledge, self.now = acknowledge, now
        self.mirror_prefix = f"Vigil {inv.site.id} silence "
        self.silences: dict[str, str] = {}  # system -> why; the daemon hands it the tracker
        self.trouble = ""
        self.stopping = threading.Event()
        self._acks_seen = self._cursor()
        self._taken: set[tuple[str, str, str]] = set()  # (eventid, userid, clock) done
        self.thread = threading.Thread(target=self._run, name="zabbix-bridge", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _cursor(self) -> int:
        """Where the leaders before this one got to sending Vigil's acknowledgements on (in
        the store: one that died before sending leaves the rest to its successor); on the
        first run, now — those made before the bridge existed are not sent."""
        sent = self.store.get_state(keys.ZABBIX_ACKS_OUT)
        if isinstance(sent, int):
            return sent
        last = self.store.events(kind="incident.acked")
        return last[-1].seq if last else 0

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.round()
                if self.trouble:
                    log.info("zabbix api reachable again", extra={"was": self.trouble})
                self.trouble = ""
            except ZabbixError as exc:
                if not self.trouble:
                    log.warning("zabbix api", extra={"error": str(exc)})
                self.trouble = str(exc)
                self.silences = {}  # a maintenance we cannot see silences nobody
            except Exception as exc:  # the store away: the daemon says so; try later
                self.trouble = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.stopping.wait(self.every_s)

    def round(self) -> None:
        hosts = self._hosts()
        self.silences = self._maintenance(hosts)
        self._mirror(hosts)
        self._acks_in(hosts)
        self._acks_out(hosts)

    # --- which Zabbix hosts stand for which system ------------------------------------------

    def _hosts(self) -> dict[str, dict[str, Any]]:
        """Zabbix host name -> {hostid, systems, maintenance...} for every host that matters:
        each system's Vigil host and the hosts of its zabbix checks."""
        site = self.inv.site.id
        wanted: dict[str, set[str]] = {vigil_host(site, s): {s} for s in self.inv.systems}
        groups: dict[str, set[str]] = {}
        for check in self.inv.checks:
            if check.kind == "zabbix":
                for h in check.params.hosts:
                    wanted.setdefault(h, set()).add(check.system)
                for g in check.params.groups:
                    groups.setdefault(g, set()).add(check.system)
        fields = ["hostid", "host", "maintenance_status", "maintenanceid"]
        found = {h["host"]: {**h, "systems": set(wanted[h["host"]])} for h in shared_call(
            self.z, "host.get", filter={"host": sorted(wanted)}, output=fields)}
        if groups:
            for g in shared_call(self.z, "hostgroup.get", filter={"name": sorted(groups)},
                                 output=["name"], selectHosts=fields):
                for h in g["hosts"]:
                    found.setdefault(h["host"], {**h, "systems": set()})["systems"] |= \
                        groups[g["name"]]
        return found

    # --- maintenance -> silences -----------------------------------------------------------

    def _maintenance(self, hosts: dict[str, dict[str, Any]]) -> dict[str, str]:
        under = {h["maintenanceid"] for h in hosts.values() if h["maintenance_status"] == "1"}
        if not under:
            return {}
        names = {m["maintenanceid"]: m["name"] for m in shared_call(
            self.z, "maintenance.get", maintenanceids=sorted(under),
            output=["maintenanceid", "name"])}
        held: dict[str, str] = {}
        for name, h in sorted(hosts.items()):
            # Our own, mirroring a Vigil silence, is not read back.
            if h["maintenance_status"] == "1" and not names.get(
                    h["maintenanceid"], "").startswith(self.mirror_prefix):
                why = f"Zabbix maintenance {names.get(h['maintenanceid'], '?')!r} on {name}"
                for system in h["systems"]:
                    held.setdefault(system, why)
        return held

    def _mirror(self, hosts: dict[str, dict[str, Any]]) -> None:
        """Vigil's silences as Zabbix maintenances on the systems' Vigil hosts."""
        windows = {s["id"]: s for s in silences.active(self.store, self.now())}
        have = {m["name"].removeprefix(self.mirror_prefix).split(":")[0]: m for m in
                shared_call(self.z, "maintenance.get", search={"name": self.mirror_prefix},
                            startSearch=True, output=["maintenanceid", "name"])}
        for sid in sorted(set(have) - set(windows)):
            shared_call(self.z, "maintenance.delete", have[sid]["maintenanceid"])
        for sid in sorted(set(windows) - set(have)):
            w = windows[sid]
            host = hosts.get(vigil_host(self.inv.site.id, w["system"]))
            if host is None:
                continue  # `vigil zabbix sync` has not made its host yet
            start = int(dt.datetime.fromisoformat(w["start"]).timestamp())
            until = int(dt.datetime.fromisoformat(w["until"]).timestamp())
            on = {"hosts": [{"hostid": host["hostid"]}]} if template_groups(
                shared_api(self.z)) else {"hostids": [host["hostid"]]}  # 6.2 renamed it
            shared_call(self.z, "maintenance.create",
                        name=f"{self.mirror_prefix}{sid}: {w['reason']}"[:128],
                        description=silences.why(w), active_since=start, active_till=until,
                        timeperiods=[{"timeperiod_type": 0, "start_date": start,
                                      "period": max(300, until - start)}], **on)

    # --- acknowledgements ------------------------------------------------------------------

    def _acks_in(self, hosts: dict[str, dict[str, Any]]) -> None:
        """Zabbix users' acknowledgements on Vigil's own triggers, as Vigil's."""
        if not self.z.users:
            return
        site = self.inv.site.id
        own = {h["hostid"]: s for s in self.inv.systems
               if (h := hosts.get(vigil_host(site, s)))}
        if not own:
            return
        problems = shared_call(self.z, "problem.get", hostids=sorted(own), acknowledged=True,
                               recent=False, output=["eventid", "objectid"],
                               selectAcknowledges=["userid", "clock", "action", "message"])
        acks = [(p, a) for p in problems for a in p["acknowledges"]
                if int(a["action"]) & ACKNOWLEDGE
                and (p["eventid"], a["userid"], a["clock"]) not in self._taken]
        if not acks:
            return
        users = {u["userid"]: u["username"] for u in shared_call(
            self.z, "user.get", userids=sorted({a["userid"] for _, a in acks}),
            output=["userid", "username"])}
        system_of = self._trigger_systems(own, {p["objectid"] for p, _ in acks})
        for problem, ack in acks:
            self._taken.add((problem["eventid"], ack["userid"], ack["clock"]))
            contact = self.z.users.get(users.get(ack["userid"], ""))
            system = system_of.get(problem["objectid"])
            if contact is None or system is None:
                continue  # not a person Vigil knows, or not a system's trigger
            for incident in self._open_incidents(system):
                self.acknowledge(incident, contact, "zabbix")

    def _trigger_systems(self, own: dict[str, str], triggerids: set[str]) -> dict[str, str]:
        return {t["triggerid"]: own[t["hosts"][0]["hostid"]] for t in shared_call(
            self.z, "trigger.get", triggerids=sorted(triggerids), output=["triggerid"],
            selectHosts=["hostid"]) if t["hosts"] and t["hosts"][0]["hostid"] in own}

    def _open_incidents(self, system: str) -> list[str]:
        """The system's open incidents not yet acknowledged at their current level."""
        out = []
        for inc in self.store.states(keys.INCIDENT).values():
            if inc.get("system") == system and inc.get("status") == "open":
                ack = self.store.get_state(keys.ack(inc["id"]))
                if not ack or ack.get("mark") != inc.get("mark"):
                    out.append(inc["id"])
        return out

    def _acks_out(self, hosts: dict[str, dict[str, Any]]) -> None:
        """Vigil's acknowledgements to the system's open Zabbix problems, with a message."""
        for event in self.store.events(kind="incident.acked", after=self._acks_seen):
            self._ack_out(event, hosts)
            self._acks_seen = event.seq  # once Zabbix took it: else again next round
            with self.store.transaction() as tx:
                tx.set_state(keys.ZABBIX_ACKS_OUT, event.seq)

    def _ack_out(self, event: Event, hosts: dict[str, dict[str, Any]]) -> None:
        if event.data.get("via") == "zabbix":
            return  # it came from there
        inc = self.store.get_state(keys.incident(event.subject)) or {}
        ids = sorted(h["hostid"] for h in hosts.values() if inc.get("system") in h["systems"])
        problems = ids and shared_call(self.z, "problem.get", hostids=ids, acknowledged=False,
                                       recent=False, output=["eventid"])
        if problems:
            at = dt.datetime.fromisoformat(event.data["at"]).astimezone(
                ZoneInfo(self.inv.site.timezone))
            shared_call(self.z, "event.acknowledge",
                        eventids=[p["eventid"] for p in problems],
                        action=ACKNOWLEDGE | MESSAGE,
                        message=f"Vigil: {event.data['by']} 已确认 / acknowledged "
                                f"{event.subject} ({event.data.get('mark')}) "
                                f"{at:%Y-%m-%d %H:%M %Z}")
            with self.store.transaction() as tx:
                tx.append("zabbix.acked", event.subject, {
                    "by": event.data["by"], "eventids": [p["eventid"] for p in problems]})
