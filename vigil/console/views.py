"""What the console's pages show, gathered from the store for one person: only the
incidents they may see, and on each step only the actions they may take."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from vigil import keys
from vigil.alerting.incidents import (
    Incident,
    Tracker,
    events_about,
    incident_from,
    load_incident,
    system_of,
)
from vigil.cli.monitors import leader_line, leader_view
from vigil.clock import local_text
from vigil.domain import FaultClass, Level, PartyKind, Role
from vigil.model import Contact, Inventory
from vigil.remediations import steps
from vigil.remediations.steps import StepRecord
from vigil.store import Event, Store

SHOWN = 200  # incidents listed on the overview; the rest are counted
_ORDER = {"I": 0, "II": 1, "III": 2, "IV": 3}
_STAFF = {Role.LEADERSHIP_GROUP, Role.IMPLEMENTATION_TEAM, Role.ONSITE_TECHNICIAN,
          Role.SUPERVISOR}


def sees_all(inv: Inventory, contact: Contact) -> bool:
    """A vendor sees the incidents of the systems they serve; everyone else sees all."""
    party = inv.parties.get(contact.party)
    vendor = Role.VENDOR in contact.roles or (party is not None
                                              and party.kind == PartyKind.VENDOR)
    return not vendor or bool(set(contact.roles) & _STAFF)


def may_see(inv: Inventory, contact: Contact, incident_id: str) -> bool:
    if sees_all(inv, contact):
        return True
    system = inv.systems.get(system_of(incident_id))
    return system is not None and contact.id in system.owners


@dataclass
class Row:
    inc: Incident
    system_name: str
    level: str
    since: str
    next_level: str | None
    next_at: str | None  # ISO, for the countdown
    acked_by: str | None


@dataclass
class Overview:
    rows: list[Row]
    hidden: int  # open incidents not listed (beyond SHOWN)
    by_level: dict[str, int]
    waiting_for_me: list[steps.StepRecord]
    my_tasks: list[steps.StepRecord]
    under_way: int
    pending_messages: int
    failing_messages: int
    warnings: list[str] = field(default_factory=list)
    leader: str = ""  # who leads the monitoring, or that nobody does
    monitors: list[dict[str, Any]] = field(default_factory=list)


class Snapshot:
    """The incidents, steps and acknowledgements the console shows, kept in memory and
    brought up to date from the rows changed since the last request (the store's
    `changed_states`), so a page costs what changed, not the whole history."""

    PREFIXES = (keys.INCIDENT, keys.STEP, keys.ACK)

    def __init__(self, inv: Inventory, store: Store) -> None:
        self.inv, self.store = inv, store
        self.rows: dict[str, dict[str, Any]] = {p: {} for p in self.PREFIXES}
        self.since = {p: 0 for p in self.PREFIXES}
        self.tracker = Tracker(inv, store, load_open=False)  # its ladders, cached
        self._doers: dict[tuple[str, str, str, str], set[str]] = {}

    def refresh(self) -> None:
        for prefix in self.PREFIXES:
            changed, self.since[prefix] = self.store.changed_states(prefix, self.since[prefix])
            for key, value in changed.items():  # checked once, when it changes
                self.rows[prefix][key.removeprefix(prefix)] = \
                    incident_from(key, value) if prefix == keys.INCIDENT else \
                    steps.step_from(key, value) if prefix == keys.STEP else value

    def open_incidents(self) -> list[Incident]:
        return [v for v in self.rows[keys.INCIDENT].values()
                if v["status"] == "open"]

    def step_records(self) -> list[StepRecord]:
        return list(self.rows[keys.STEP].values())

    def ack(self, incident_id: str) -> dict[str, Any] | None:
        return self.rows[keys.ACK].get(incident_id)

    def doers(self, rec: steps.StepRecord) -> set[str]:
        key = (rec["fault_class"], rec["level"], rec["step"], system_of(rec["incident"]))
        if key not in self._doers:
            step = step_of(self.inv, rec)
            self._doers[key] = {c.id for c in steps.doers(self.inv, step, key[3])} \
                if step else set()
        return self._doers[key]


def _visible_incidents(snap: Snapshot, inv: Inventory, contact: Contact) -> list[Incident]:
    incs = snap.open_incidents()
    if not sees_all(inv, contact):
        incs = [i for i in incs if may_see(inv, contact, i["id"])]
    return sorted(incs, key=lambda i: (_ORDER.get(i["mark"] or "IV", 4), i["onset"]))


def overview(snap: Snapshot, contact: Contact, lang: str, now: dt.datetime) -> Overview:
    inv, store, tracker = snap.inv, snap.store, snap.tracker
    snap.refresh()
    incs = _visible_incidents(snap, inv, contact)
    rows = []
    by_level: dict[str, int] = {}
    for inc in incs:  # a reminder rung (IV+) is still its level
        level = (inc["mark"] or "IV").rstrip("+")
        by_level[level] = by_level.get(level, 0) + 1
    for inc in incs[:SHOWN]:
        rung, ahead = tracker.reached(inc, now)
        ack = snap.ack(inc["id"])
        system = inv.systems.get(inc["system"])
        rows.append(Row(inc, system.name.get(lang) if system else inc["system"],
                        Level(rung.mark).text(lang), local_text(inc["onset"], tracker.tz),
                        Level(ahead.mark).text(lang) if ahead else None,
                        ahead.at.isoformat() if ahead else None,
                        ack["by"] if ack and ack.get("mark") == rung.mark else None))
    visible = {i["id"] for i in incs}
    live = [r for r in snap.step_records()
            if r["status"] not in steps.FINAL and r["incident"] in visible]
    waiting = [r for r in live if r["status"] in steps.DECIDING and may_decide(inv, contact, r)]
    tasks = [r for r in live if r["status"] == "open" and contact.id in snap.doers(r)]
    pending = store.states(keys.PENDING)
    failing = sum(1 for k in pending
                  if (store.get_state(keys.message(k.removeprefix(keys.PENDING))) or {}
                      ).get("attempts", 0) > 0) if len(pending) < 2000 else len(pending)
    warnings = [zh if lang == "zh" else en for en, zh in
                tracker.calendar.warnings(now.astimezone(tracker.tz).date())]
    view = leader_view(store)
    return Overview(rows, max(0, len(incs) - SHOWN), by_level, waiting, tasks, len(live),
                    len(pending), failing, warnings, leader_line(view, tracker.tz, lang),
                    view["monitors"])


def step_of(inv: Inventory, rec: steps.StepRecord) -> Any:
    return inv.site_runbook.step(FaultClass(rec["fault_class"]), rec["level"], rec["step"])


def may_decide(inv: Inventory, contact: Contact, rec: steps.StepRecord) -> bool:
    step = step_of(inv, rec)
    return bool(step and set(contact.roles) & (set(step.approvers) | set(step.two_person))
                and not any(a["by"] == contact.id for a in rec["approvals"]))


def may_tick(inv: Inventory, contact: Contact, rec: steps.StepRecord) -> bool:
    step = step_of(inv, rec)
    return bool(step and contact.id in {c.id for c in steps.doers(inv, step,
                                                                   system_of(rec["incident"]))})


@dataclass
class IncidentPage:
    inc: Incident
    system_name: str
    level: str
    since: str
    next_level: str | None
    next_at: str | None
    acked: dict[str, Any] | None
    steps: list[dict[str, Any]]
    timeline: list[Event]


def incident(store: Store, inv: Inventory, contact: Contact, incident_id: str, lang: str,
             now: dt.datetime) -> IncidentPage | None:
    inc = load_incident(store, incident_id)
    if inc is None or not may_see(inv, contact, incident_id):
        return None
    tz_name = inv.site.timezone
    rung, ahead = Tracker(inv, store, load_open=False).reached(inc, now)
    system = inv.systems.get(inc["system"])
    recs = sorted((steps.step_from(k, v) for k, v in
                   store.states(keys.step(f"{incident_id}/")).items()),
                  key=lambda r: (r["planned_at"], r["key"]))
    shown = []
    for r in recs:
        step = step_of(inv, r)
        shown.append({"rec": r, "text": step.text(lang) if step else r["step"],
                      "expires": local_text(r.get("expires_at"), tz_name)
                      if r.get("expires_at") else None,
                      "decide": r["status"] in steps.DECIDING and may_decide(inv, contact, r),
                      "tick": r["status"] == "open" and may_tick(inv, contact, r)})
    return IncidentPage(inc, system.name.get(lang) if system else inc["system"],
                        Level(rung.mark).text(lang), local_text(inc["onset"], tz_name),
                        Level(ahead.mark).text(lang) if ahead else None,
                        ahead.at.isoformat() if ahead else None,
                        store.get_state(keys.ack(incident_id)), shown,
                        events_about(store, [incident_id]))
