"""Incidents: results become incidents per system and fault class, graded by the ladder.

An incident opens after `open_after` consecutive failing results of a check (or when the
check flaps), with its onset at the first failing observation; it recovers when every
check that fed it has passed `recover_after` times in a row and none flaps. A fault of a
system whose dependency (`depends_on`) already has an open incident joins that incident
as a consequence and pages nobody. Every change is an event, and the incident's state is
written in the same transaction as the event and the messages it causes.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, TypeAdapter
from typing_extensions import TypedDict

from vigil import keys
from vigil.alerting import drills
from vigil.alerting.calendar import WorkCalendar
from vigil.alerting.ladder import Rung, rungs
from vigil.alerting.messages import Facts, incident_message, recovery_message
from vigil.alerting.policy import recipients, renotify_minutes
from vigil.alerting.reported import REPORTED, Report, reported_key
from vigil.delivery import outbox
from vigil.domain import FaultClass, Level, Role
from vigil.model import Contact, Inventory
from vigil.result import Result, Status
from vigil.status_log import log_changes
from vigil.store import Event, Store, Tx, checked_record

FAILING = (Status.CRITICAL, Status.UNKNOWN)


def _iso_time(text: str) -> str:
    dt.datetime.fromisoformat(text)  # a ValueError is the record's damage
    return text


class Incident(TypedDict):
    """An incident's record in the store (keys.incident), written by the Tracker."""

    id: str  # system.fault_class.onset-stamp
    system: str
    fault_class: str
    party: str | None
    # ISO time of the first failing observation: the ladder counts from here
    onset: Annotated[str, AfterValidator(_iso_time)]
    opened_at: str
    status: Literal["open", "recovered"]
    mark: str | None  # the rung reached (vigil.domain.Level's mark), None until graded
    checks: list[str]  # result keys that fed it
    cause: str | None  # the incident of a dependency it is a consequence of
    flapping: bool
    detail: list[str]  # what the checks said: [zh, en]
    told: list[str]  # contacts told so far
    last_told: str | None
    reminders: int
    # The message held while its system's paging was silenced ("opened", "level",
    # "reminder"): sent when the silence ends.
    held: NotRequired[str]
    recovered_at: NotRequired[str]
    drill: NotRequired[str]  # the drill it belongs to (alerting.drills): not a real fault


_INCIDENT: TypeAdapter[Incident] = TypeAdapter(Incident)


def incident_from(key: str, value: Any) -> Incident:
    """A stored incident record, checked: a damaged one is one line, never a KeyError."""
    return checked_record(_INCIDENT, key, value, "incident record")


def system_of(incident_id: str) -> str:
    """The system in an incident's id (system.fault_class.onset-stamp)."""
    return incident_id.rsplit(".", 2)[0]


def events_about(store: Store, incidents: Iterable[str]) -> list[Event]:
    """Every event about these incidents, in order: their own, and those of their steps
    and messages, whose subjects start with the incident's id (found by the subject's
    index, never a pass over the whole log)."""
    found: dict[int, Event] = {}
    for inc in set(incidents):
        for e in [*store.events(subject=inc), *store.events(subject_prefix=f"{inc}/")]:
            found[e.seq] = e
    return [found[seq] for seq in sorted(found)]


def load_incidents(store: Store, *, open_only: bool = False) -> list[Incident]:
    found = [incident_from(k, v) for k, v in store.states(keys.INCIDENT).items()]
    return [i for i in found if i["status"] == "open" or not open_only]


def load_incident(store: Store, incident_id: str) -> Incident | None:
    value = store.get_state(keys.incident(incident_id))
    return None if value is None else incident_from(keys.incident(incident_id), value)


def calendar_for(inv: Inventory) -> WorkCalendar:
    return WorkCalendar(extra_holidays=set(inv.calendar.holidays),
                        extra_workdays=set(inv.calendar.workdays),
                        complete_years=set(inv.calendar.complete_years))


def _changes(history: list[str]) -> int:
    return sum(1 for a, b in itertools.pairwise(history) if a != b)


class Tracker:
    def __init__(self, inv: Inventory, store: Store, *, load_open: bool = True) -> None:
        """`load_open=False`: a reader of one incident's ladder (the console's page), not
        the tracker of them all."""
        self.inv, self.store = inv, store
        self.tz = ZoneInfo(inv.site.timezone)
        self.calendar = calendar_for(inv)
        self.ladder = inv.ladder
        self.contacts = {c.id: c for c in inv.contacts}
        self.open: dict[str, Incident] = {}
        self._rungs: dict[str, list[Rung]] = {}
        # When each open incident next needs a look (its next rung or reminder), so a
        # tick over thousands of quiet incidents is a comparison each.
        self._due: dict[str, dt.datetime] = {}
        for inc in load_incidents(store, open_only=True) if load_open else []:
            self.open[inc["id"]] = inc
        # System -> why its paging is held (a Zabbix maintenance on it): incidents still
        # open, climb and are recorded; their messages wait for the silence's end.
        self.silences: dict[str, str] = {}
        # System -> the drill running on it: a fault that opens there is the drill's.
        self.drills: dict[str, drills.Drill] = {}
        self._drill_cache: dict[str, drills.Drill | None] = {}

    def drill_of(self, inc: Incident) -> drills.Drill | None:
        """The drill an incident belongs to (its record outlives the drill's run)."""
        drill_id = inc.get("drill")
        if not drill_id:
            return None
        if drill_id not in self._drill_cache:
            self._drill_cache[drill_id] = drills.load(self.store, drill_id)
        return self._drill_cache[drill_id]

    def silence(self, silences: dict[str, str], now: dt.datetime) -> None:
        """The systems silenced from now on; each start and end recorded."""
        if silences == self.silences:
            return
        with self.store.transaction() as tx:
            for system in sorted(set(silences) - set(self.silences)):
                tx.append("system.silenced", system, {"why": silences[system],
                                                      "at": now.isoformat()})
            for system in sorted(set(self.silences) - set(silences)):
                tx.append("system.unsilenced", system, {"why": self.silences[system],
                                                        "at": now.isoformat()})
        changed = set(silences) ^ set(self.silences)
        self.silences = dict(silences)
        for inc in self.open.values():
            if inc["system"] in changed:
                self._due.pop(inc["id"], None)  # looked at on the next tick

    # --- the ladder, cached per incident: it depends on the onset only ---------------

    def rungs_of(self, inc: Incident) -> list[Rung]:
        cached = self._rungs.get(inc["id"])
        if cached is None:
            onset = dt.datetime.fromisoformat(inc["onset"])
            cached = rungs(onset, self.calendar, self.tz, self.ladder)
            drill = self.drill_of(inc)
            if drill:
                cached = drills.hastened(cached, onset, drill["speed"])
            self._rungs[inc["id"]] = cached
        return cached

    def reached(self, inc: Incident, now: dt.datetime) -> tuple[Rung, Rung | None]:
        ladder = self.rungs_of(inc)
        done = [r for r in ladder if r.at <= now]
        ahead = [r for r in ladder if r.at > now]
        return (done[-1] if done else ladder[0]), (ahead[0] if ahead else None)

    # --- results in ---------------------------------------------------------------------

    def observe(self, results: Iterable[Result], now: dt.datetime) -> None:
        """Record results, open and recover incidents, then move the ladder."""
        with self.store.transaction() as tx:
            results = list(results)
            log_changes(tx, results)
            for r in results:
                self._track(tx, r, now)
            self._tick(tx, now)

    def tick(self, now: dt.datetime) -> None:
        with self.store.transaction() as tx:
            self._tick(tx, now)

    def _track(self, tx: Tx, r: Result, now: dt.datetime) -> None:
        esc = self.inv.escalation
        key = keys.track(r.key)
        st = tx.get_state(key) or {"history": [], "fails": 0, "passes": 0, "first_fail": None}
        failing = r.status in FAILING
        st["history"] = [*st["history"], "f" if failing else "p"][-esc.flap_window:]
        st["flapping"] = _changes(st["history"]) >= esc.flap_changes
        if failing:
            st["fails"], st["passes"] = st["fails"] + 1, 0
            st["first_fail"] = st["first_fail"] or (r.since or r.observed_at).isoformat()
        else:
            st["fails"], st["passes"] = 0, st["passes"] + 1
            if st["passes"] >= esc.recover_after and not st["flapping"]:
                st["first_fail"] = None
        st["system"], st["fault_class"] = r.system, r.fault_class.value
        tx.set_state(key, st)

        inc_id = tx.get_state(keys.open_incident(r.system, r.fault_class.value))
        if inc_id is None:
            if failing and (st["fails"] >= esc.open_after or st["flapping"]):
                self._open(tx, r, st, now)
            return
        inc = self.open.get(inc_id)
        if inc is None:
            return
        if r.key not in inc["checks"]:
            inc["checks"].append(r.key)
        if failing:
            inc["detail"] = [r.message_zh or r.message, r.message]
            tx.set_state(keys.incident(inc_id), inc)
        elif self._all_passing(tx, inc):
            self._recover(tx, inc, now)

    def _all_passing(self, tx: Tx, inc: Incident) -> bool:
        for check in inc["checks"]:
            st = tx.get_state(keys.track(check)) or {}
            if st.get("passes", 0) < self.inv.escalation.recover_after or st.get("flapping"):
                return False
        return True

    # --- opening, explaining, recovering ------------------------------------------------

    def _depends_on(self, system: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.inv.systems[system].depends_on) if system in self.inv.systems else []
        while todo:
            s = todo.pop()
            if s not in seen:
                seen.add(s)
                todo.extend(self.inv.systems[s].depends_on if s in self.inv.systems else [])
        return seen

    def _root(self, inc_id: str) -> str:
        while inc_id in self.open and (cause := self.open[inc_id]["cause"]):
            inc_id = cause
        return inc_id

    def _open(self, tx: Tx, r: Result, st: dict[str, Any], now: dt.datetime) -> None:
        onset = dt.datetime.fromisoformat(st["first_fail"] or
                                          (r.since or r.observed_at).isoformat())
        inc_id = f"{r.system}.{r.fault_class.value}.{onset.astimezone(self.tz):%Y%m%dT%H%M%S}"
        deps = self._depends_on(r.system)
        cause = next((self._root(i) for i, inc in self.open.items()
                      if inc["system"] in deps), None)
        system = self.inv.systems.get(r.system)
        inc: Incident = {"id": inc_id, "system": r.system, "fault_class": r.fault_class.value,
               "party": system.party if system else None, "onset": onset.isoformat(),
               "opened_at": now.isoformat(), "status": "open", "mark": None,
               "checks": [r.key], "cause": cause, "flapping": st["flapping"],
               "detail": [r.message_zh or r.message, r.message], "told": [],
               "last_told": None, "reminders": 0}
        drill = self.drills.get(r.system)
        if drill:
            inc["drill"] = drill["id"]
            self._drill_cache[drill["id"]] = drill
        self.open[inc_id] = inc
        tx.append("incident.opened", inc_id, {
            "system": r.system, "fault_class": r.fault_class.value, "onset": inc["onset"],
            "check": r.key, "cause": cause, "flapping": st["flapping"], "message": r.message,
            **({"drill": drill["id"]} if drill else {})})
        tx.set_state(keys.open_incident(r.system, r.fault_class.value), inc_id)
        # Faults already open below this system are consequences of it.
        for other in self.open.values():
            if other is not inc and other["cause"] is None and r.system in \
                    self._depends_on(other["system"]):
                other["cause"] = inc_id
                tx.append("incident.explained", other["id"], {"cause": inc_id})
                tx.set_state(keys.incident(other['id']), other)
        if cause is None:
            self._advance(tx, inc, now, opened=True)
        tx.set_state(keys.incident(inc_id), inc)

    def _recover(self, tx: Tx, inc: Incident, now: dt.datetime) -> None:
        inc["status"], inc["recovered_at"] = "recovered", now.isoformat()
        tx.append("incident.recovered", inc["id"], {
            "after_s": round((now - dt.datetime.fromisoformat(inc["onset"])).total_seconds()),
            "mark": inc["mark"]})
        tx.delete_state(keys.open_incident(inc['system'], inc['fault_class']))
        del self.open[inc["id"]]
        if inc["cause"] is None and inc["told"]:
            facts = self._facts(inc, now)
            for contact in (self.contacts[c] for c in inc["told"] if c in self.contacts):
                title, body = recovery_message(facts, contact.lang)
                self._queue(tx, inc, contact, "recovered", "", title, body, now)
        tx.set_state(keys.incident(inc['id']), inc)
        for other in list(self.open.values()):  # its consequences now stand on their own
            if other["cause"] == inc["id"]:
                other["cause"] = None
                tx.append("incident.unexplained", other["id"], {"former_cause": inc["id"]})
                self._advance(tx, other, now, opened=True)
                tx.set_state(keys.incident(other['id']), other)

    # --- faults people report (alerting.reported) ------------------------------------------

    def _take(self, tx: Tx, report: Report, now: dt.datetime) -> None:
        system = self.inv.systems.get(report["system"])
        if system is None:  # the inventory changed since: recorded, not lost silently
            tx.append("fault.report_dropped", report["system"], {"report": report["id"],
                                                                 "why": "no such system"})
            return
        key = reported_key(system.id)
        st = tx.get_state(keys.track(key)) or {"history": [], "fails": 0, "passes": 0,
                                               "first_fail": None}
        st.update(system=system.id, fault_class=system.fault_class.value, flapping=False)
        inc_id = tx.get_state(keys.open_incident(system.id, system.fault_class.value))
        inc = self.open.get(inc_id) if inc_id else None
        if report["action"] == "close":
            st.update(history=[*st["history"], "p"][-self.inv.escalation.flap_window:],
                      fails=0, passes=self.inv.escalation.recover_after, first_fail=None)
            tx.set_state(keys.track(key), st)
            if inc and self._all_passing(tx, inc):
                self._recover(tx, inc, now)
            return
        since = min(report["since"], st["first_fail"] or report["since"])
        st.update(history=[*st["history"], "f"][-self.inv.escalation.flap_window:],
                  fails=st["fails"] + 1, passes=0, first_fail=since)
        tx.set_state(keys.track(key), st)
        who = self.contacts[report["by"]].name if report["by"] in self.contacts \
            else report["by"]
        r = Result(check=REPORTED, kind="person", system=system.id, target=system.id,
                   fault_class=system.fault_class, status=Status.CRITICAL,
                   message=f"reported by {who}: {report['note']}",
                   message_zh=f"{who} 报告：{report['note']}", observed_at=now,
                   since=dt.datetime.fromisoformat(report["since"]))
        if inc is None:
            self._open(tx, r, st, now)
            return
        if key not in inc["checks"]:  # a detected fault someone also reports
            inc["checks"].append(key)
        inc["detail"] = [r.message_zh, r.message]
        tx.append("incident.reported", inc["id"], {"by": report["by"], "note": report["note"]})
        tx.set_state(keys.incident(inc["id"]), inc)

    # --- the ladder and the people --------------------------------------------------------

    def _tick(self, tx: Tx, now: dt.datetime) -> None:
        for key, report in tx.states(keys.REPORT).items():
            self._take(tx, report, now)
            tx.delete_state(key)
        acks: dict[str, Any] | None = None
        for inc in list(self.open.values()):
            due = self._due.get(inc["id"])
            if inc["cause"] is not None or (due is not None and now < due):
                continue
            if acks is None:
                acks = tx.states(keys.ACK)
            self._advance(tx, inc, now, ack=acks.get(keys.ack(inc['id'])))

    def _schedule(self, inc: Incident, now: dt.datetime) -> None:
        _, ahead = self.reached(inc, now)
        due = [ahead.at] if ahead else []
        if inc["last_told"]:
            due.append(dt.datetime.fromisoformat(inc["last_told"]) +
                       dt.timedelta(minutes=renotify_minutes(self.inv, inc["mark"] or Level.IV)))
        if due:
            self._due[inc["id"]] = min(due)
        else:
            self._due.pop(inc["id"], None)

    def _advance(self, tx: Tx, inc: Incident, now: dt.datetime, *, opened: bool = False,
                 ack: dict[str, Any] | None = None) -> None:
        rung, _ = self.reached(inc, now)
        if inc.get("held") and inc["system"] not in self.silences:
            held = inc.pop("held")  # the silence ended: what was held goes now
            if rung.mark == inc["mark"]:
                self._notify(tx, inc, held, now)
                tx.set_state(keys.incident(inc['id']), inc)
        if rung.mark != inc["mark"] or opened:
            if rung.mark != inc["mark"]:
                tx.append("incident.level", inc["id"], {"mark": rung.mark,
                                                        "level": rung.mark.plan_level.value,
                                                        "rule": rung.rule_en})
            kind = "opened" if opened or inc["mark"] is None else "level"
            inc["mark"], inc["reminders"] = rung.mark, 0
            self._notify(tx, inc, kind, now)
            tx.set_state(keys.incident(inc['id']), inc)
        elif ack and ack.get("mark") == inc["mark"]:
            _, ahead = self.reached(inc, now)  # acknowledged: quiet until the next level
            if ahead:
                self._due[inc["id"]] = ahead.at
            else:
                self._due.pop(inc["id"], None)
            return
        else:
            last = dt.datetime.fromisoformat(inc["last_told"]) if inc["last_told"] else None
            every = dt.timedelta(minutes=renotify_minutes(self.inv, rung.mark))
            if last and now - last >= every:
                inc["reminders"] += 1
                self._notify(tx, inc, "reminder", now)
                tx.set_state(keys.incident(inc['id']), inc)
        self._schedule(inc, now)

    def _facts(self, inc: Incident, now: dt.datetime) -> Facts:
        _, ahead = self.reached(inc, now)
        system = self.inv.systems.get(inc["system"])
        names = (system.name.zh, system.name.get("en")) if system else (inc["system"],) * 2
        return Facts(incident=inc["id"], system_name=names,
                     fault_class=FaultClass(inc["fault_class"]), mark=inc["mark"] or Level.IV,
                     onset=dt.datetime.fromisoformat(inc["onset"]), now=now,
                     next_mark=ahead.mark if ahead else None,
                     next_at=ahead.at if ahead else None,
                     detail=(inc["detail"][0], inc["detail"][1]), tz=self.tz,
                     runbook=self.inv.site_runbook)

    def _notify(self, tx: Tx, inc: Incident, kind: str, now: dt.datetime) -> None:
        why = self.silences.get(inc["system"])
        if why:
            if "held" not in inc:
                tx.append("incident.silenced", inc["id"], {"why": why, "kind": kind,
                                                           "mark": inc["mark"]})
            # An opening or a new level outranks a reminder as what is sent at the end.
            inc["held"] = kind if inc.get("held", "reminder") == "reminder" else inc["held"]
            inc["last_told"] = now.isoformat()  # reminders keep their pace, held too
            return
        facts = self._facts(inc, now)
        for contact in drills.told(self.drill_of(inc), recipients(
                self.inv, inc["party"] or "", inc["mark"] or Level.IV, inc["system"])):
            title, body = incident_message(facts, kind, contact.lang)
            self._queue(tx, inc, contact, kind, f"{inc['mark']}/{inc['reminders']}", title,
                        body, now)
            if contact.id not in inc["told"]:
                inc["told"].append(contact.id)
        inc["last_told"] = now.isoformat()

    def _queue(self, tx: Tx, inc: Incident, contact: Contact, kind: str, step: str,
               title: str, body: str, now: dt.datetime) -> None:
        if inc.get("drill"):
            title = drills.tag(title, contact.lang)
        for index in range(len(contact.channels)):
            outbox.queue(tx, key=f"{inc['id']}/{kind}/{step}/{contact.id}#{index}",
                         contact=contact, channel=index, title=title, body=body,
                         incident=inc["id"], kind=kind, now=now)


@dataclass(frozen=True)
class Acked:
    mark: str
    quiets: bool  # False: a receipt from someone told, the reminders go on


def handles(inv: Inventory, inc: Incident, person: str) -> bool:
    """Whether `person` works on the incident: of its system's party, one of the system's
    owners, or the implementation team (P4.2). Anyone else told of it (another party's
    staff, told at levels II and I) can confirm they received it, not stop the reminders
    to those who work on it."""
    contact = inv.contact(person)
    owners = inv.systems[inc["system"]].owners if inc["system"] in inv.systems else ()
    return (contact.party == inc["party"] or person in owners
            or Role.IMPLEMENTATION_TEAM in contact.roles)


def acknowledge(store: Store, inv: Inventory, incident: str, person: str,
                now: dt.datetime, via: str | None = None) -> Acked:
    """Record that `person` acknowledged `incident` at its current level: quiet until the
    next level when they work on it (`handles`), else their receipt.
    `via`: where they did it, if not in Vigil (e.g. "zabbix")."""
    inc = load_incident(store, incident)
    if inc is None:
        raise LookupError(f"no incident {incident!r}")
    if inc["status"] != "open":
        raise LookupError(f"incident {incident!r} is {inc['status']}")
    quiets = handles(inv, inc, person)  # PermissionError for a stranger
    data = {"by": person, "mark": inc["mark"], "at": now.isoformat(),
            **({"via": via} if via else {})}
    with store.transaction() as tx:
        if not quiets:
            tx.append("incident.received", incident, data)
            return Acked(str(inc["mark"]), False)
        tx.append("incident.acked", incident, data)
        tx.set_state(keys.ack(incident), {"by": person, "mark": inc["mark"],
                                         "at": now.isoformat()})
    return Acked(str(inc["mark"]), True)


def note(store: Store, inv: Inventory, incident: str, person: str, text: str,
         now: dt.datetime) -> None:
    """A person's note on an incident's timeline (what they saw or did)."""
    if load_incident(store, incident) is None:
        raise LookupError(f"no incident {incident!r}")
    inv.contact(person)
    text = text.strip()
    if not text:
        raise ValueError("an empty note")
    store.append("incident.noted", incident, {"by": person, "note": text[:4000],
                                              "at": now.isoformat()})
