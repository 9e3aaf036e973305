"""Drills (P3.2.3: periodic drills whose plan, process and evaluation are archived).

A drill plan (YAML, in the inventory's `drills/` folder or a file) names the scenario
(fault class, systems), how the fault is caused and healed (the lab's faults through
`vigil lab`, a playbook of the project, or a person's action), the participants, the
levels to walk through, how much faster the ladder runs inside the drill, and the times
expected. `start` marks the systems as drilled (alerting.drills: their incidents are the
drill's, tagged, told to participants only, kept out of the real statistics); `end`
closes it; `evaluate` compares what happened with the plan; `record` writes the archived
record (plan, timeline, evaluation, sign-off lines) whose digest `archive` puts in the
event chain. The run itself (cause, wait, heal) is `vigil drill run` (vigil.cli.drill).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vigil import keys as store_keys
from vigil.alerting import drills
from vigil.alerting.incidents import Incident, events_about, load_incidents, system_of
from vigil.clock import local_text
from vigil.domain import PLAN_LEVELS, FaultClass, Level, Role
from vigil.errors import first_error
from vigil.files import FileRefused, read_bounded, write_atomically
from vigil.model import Inventory, Text
from vigil.remediations.report import as_html, table_cell
from vigil.remediations.steps import FINAL, MOOT, StepRecord, load_steps
from vigil.store import Event, Store

# The `vigil lab` commands a plan may run: the lab's faults and their healing.
LAB_COMMANDS = {"fault", "line", "up"}


class DrillRefused(ValueError):
    """A drill plan or run that cannot be: one line saying why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Action(_Strict):
    """One controlled action: a `vigil lab` command (on the lab), a playbook of the
    project with its variables, or a person's action the drill waits for."""

    lab: list[str] | None = None  # e.g. [fault, pg-primary]; [line, primary, restore]
    playbook: str | None = Field(None, pattern=r"^[\w.-]+\.ya?ml$")
    vars: dict[str, Any] = {}
    by_hand: Text | None = None

    @model_validator(mode="after")
    def _one(self) -> Action:
        given = [x for x in (self.lab, self.playbook, self.by_hand) if x]
        if len(given) != 1:
            raise ValueError("give exactly one of lab, playbook, by_hand")
        if self.lab and self.lab[0] not in LAB_COMMANDS:
            raise ValueError(f"lab: one of {', '.join(sorted(LAB_COMMANDS))} (vigil lab ...)")
        return self

    def text(self, lang: str) -> str:
        if self.lab:
            return "vigil lab " + " ".join(self.lab)
        if self.playbook:
            extra = " ".join(f"-e {k}={v}" for k, v in self.vars.items())
            return f"ansible-playbook playbooks/{self.playbook} {extra}".strip()
        assert self.by_hand
        return self.by_hand.get(lang)


class Expect(_Strict):
    detected_s: float = Field(120, gt=0)  # from the cause to the incident opened
    told_s: float = Field(300, gt=0)  # from the incident's opening to each participant's
    # first message
    steps: dict[str, float] = {}  # "LEVEL/step id": seconds from planned to finished
    # A database host of the inventory -> seconds from the cause until it takes a write
    # (P4.3.2's "at once", measured as clients feel it)
    writable: dict[str, float] = {}


class DrillPlan(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)
    name: Text
    fault_class: FaultClass
    systems: list[str] = Field(min_length=1)
    cause: Action
    heal: list[Action] = []
    # Contact ids, or roles (every contact holding it): who takes part and is told.
    participants: list[str] = Field(min_length=1)
    levels: list[Level] = [Level.IV]  # the plan's levels to walk through
    # The ladder inside the drill runs this many times faster (24 h of level III in
    # 30 s at 2880); never the real clock.
    speed: float = Field(1, ge=1, le=1_000_000)
    expect: Expect = Expect()
    max_minutes: float = Field(30, gt=0, le=24 * 60)

    def check(self, inv: Inventory, where: str) -> DrillPlan:
        for host in self.expect.writable:
            if not (inv.hosts.get(host) and inv.hosts[host].pg_port):
                raise DrillRefused(f"{where}: expect.writable names {host!r}, not a database "
                                   "host of the inventory (vigil_pg_port)")
        for system in self.systems:
            known = inv.systems.get(system)
            if known is None:
                raise DrillRefused(f"{where}: systems: no system {system!r} in {inv.path}")
            if known.fault_class != self.fault_class:
                raise DrillRefused(f"{where}: systems: {system!r} is a "
                                   f"{known.fault_class.value} system, not "
                                   f"{self.fault_class.value}")
        contacts = {c.id for c in inv.contacts}
        for person in self.participants:
            if person not in contacts and person not in {r.value for r in Role}:
                raise DrillRefused(f"{where}: participants: {person!r} is neither a contact "
                                   f"nor a role")
        for level in self.levels:
            if level not in PLAN_LEVELS:
                raise DrillRefused(f"{where}: levels: {level.value!r} is not one of the "
                                   f"plan's levels (IV, III, II, I)")
        return self

    def people(self, inv: Inventory) -> list[str]:
        """The participants' contact ids, roles resolved to the contacts holding them."""
        return [c.id for c in inv.contacts
                if c.id in self.participants or {r.value for r in c.roles} & set(self.participants)]


def plans_dir(inv: Inventory) -> Path:
    base = Path(inv.path)
    return (base if base.is_dir() else base.parent) / "drills"


def load_plan(ref: str, inv: Inventory) -> DrillPlan:
    """A plan by file path, or by id from the inventory's drills/ folder."""
    path = Path(ref)
    if not path.exists():
        path = plans_dir(inv) / f"{ref}.yml"
    try:
        raw = yaml.safe_load(read_bounded(path, 1 << 20, "drill plan").decode("utf-8"))
    except FileRefused as exc:
        raise DrillRefused(f"no drill plan {ref!r} ({exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DrillRefused(f"{path}: not YAML text ({str(exc).splitlines()[0]})") from None
    try:
        plan = DrillPlan.model_validate(raw)
    except ValidationError as exc:
        raise DrillRefused(f"{path}: {first_error(exc)}") from None
    return plan.check(inv, str(path))


def list_plans(inv: Inventory) -> list[Path]:
    folder = plans_dir(inv)
    return sorted(folder.glob("*.yml")) if folder.is_dir() else []


# --- the run's records ------------------------------------------------------------------

def start(store: Store, inv: Inventory, plan: DrillPlan, by: str,
          now: dt.datetime) -> drills.Drill:
    inv.contact(by)  # PermissionError for a stranger
    with store.transaction() as tx:
        busy = drills.running(tx)
        taken = sorted(set(plan.systems) & set(busy))
        if taken:
            raise DrillRefused(f"{taken[0]} is in drill {busy[taken[0]]['id']} already")
        open_now = [tx.get_state(store_keys.open_incident(s, plan.fault_class.value))
                    for s in plan.systems]
        if any(open_now):  # a real fault is under way: never drill over it
            raise DrillRefused(f"a real incident is open on {plan.systems}: "
                               f"{', '.join(i for i in open_now if i)}")
        drill: drills.Drill = {
            "id": f"{plan.id}-{now.astimezone(ZoneInfo(inv.site.timezone)):%Y%m%dT%H%M%S}",
            "plan": plan.id, "systems": list(plan.systems),
            "fault_class": plan.fault_class.value, "participants": plan.people(inv),
            "speed": plan.speed, "status": "running", "started": now.isoformat(),
            "ended": None, "by": by}
        tx.set_state(drills.key(drill["id"]), drill)
        tx.append("drill.started", drill["id"], {**drill, "plan_text": plan.model_dump(
            mode="json")})
    return drill


def mark(store: Store, drill_id: str, what: str, data: dict[str, Any]) -> None:
    """A moment of the drill's process (caused, healed, ...), on record."""
    store.append(f"drill.{what}", drill_id, data)


def healing(store: Store, drill_id: str) -> None:
    """The heal actions start: the drilled systems' automatic steps wait (a remedy must
    not fight the healing, e.g. fail the database over again while the pair is rebuilt)."""
    with store.transaction() as tx:
        drill = drills.load(tx, drill_id)
        if drill is None:
            raise DrillRefused(f"no drill {drill_id!r}")
        drill["status"] = "healing"
        tx.set_state(drills.key(drill_id), drill)
        tx.append("drill.healing", drill_id, {})


def end(store: Store, drill_id: str, now: dt.datetime, why: str) -> drills.Drill:
    """The drill is over: its steps not yet finished will not be (recorded as skipped),
    and faults of its systems are real again."""
    with store.transaction() as tx:
        drill = drills.load(tx, drill_id)
        if drill is None:
            raise DrillRefused(f"no drill {drill_id!r}")
        drill["status"], drill["ended"] = "ended", now.isoformat()
        tx.set_state(drills.key(drill_id), drill)
        tx.append("drill.ended", drill_id, {"why": why})
        for key, rec in tx.states(store_keys.STEP).items():
            if rec.get("drill") == drill_id and rec["status"] not in FINAL | {"running"}:
                rec["status"] = "skipped"
                tx.set_state(key, rec)
                tx.append("step.skipped", rec["key"], {"incident": rec["incident"],
                                                       "why": "the drill ended"})
    return drill


def incidents_of(store: Store, drill_id: str) -> list[Incident]:
    return [i for i in load_incidents(store) if i.get("drill") == drill_id]


def steps_of(store: Store, drill_id: str) -> list[StepRecord]:
    return sorted((r for r in load_steps(store) if r.get("drill") == drill_id),
                  key=lambda r: (r["planned_at"], r["key"]))


def walked(store: Store, plan: DrillPlan, drill_id: str) -> bool:
    """Every level of the plan reached, and every step there that is not people's work
    finished: what the drill came to see."""
    incs = incidents_of(store, drill_id)
    if not incs:
        return False
    top = max(Level(i["mark"]).plan_level.rank for i in incs if i["mark"]) \
        if any(i["mark"] for i in incs) else -1
    if top < max(lv.rank for lv in plan.levels) and any(i["status"] == "open" for i in incs):
        return False
    return all(r["status"] in FINAL for r in steps_of(store, drill_id)
               if r["kind"] != "manual" and r["level"] != "recovery")


def settled(store: Store, drill_id: str) -> bool:
    """Its incidents recovered and their recovery steps (but people's) finished."""
    incs = incidents_of(store, drill_id)
    return bool(incs) and all(i["status"] == "recovered" for i in incs) and all(
        r["status"] in FINAL for r in steps_of(store, drill_id) if r["kind"] != "manual")


# --- the evaluation -----------------------------------------------------------------------

@dataclass
class Finding:
    what: str  # zh
    what_en: str
    expected: str
    actual: str
    ok: bool | None  # None: for information


def _at(e: Event) -> dt.datetime:
    return dt.datetime.fromisoformat(e.at)


def _finished_at(events: list[Event], key: str) -> dt.datetime | None:
    """When a step finished: its last outcome, or its planning for a step finished when
    planned (a notice sent, a step skipped as not applying)."""
    mine = [e for e in events if e.subject == key]
    ends = [e for e in mine if e.kind in ("step.succeeded", "step.failed", "step.done",
                                          "step.expired", "step.authorised",
                                          "step.released")]
    if ends:
        return _at(ends[-1])
    planned = [e for e in mine if e.kind == "step.planned"
               and e.data.get("status") in ("sent", "skipped", "observed")]
    return _at(planned[0]) if planned else None


def evaluate(store: Store, inv: Inventory, plan: DrillPlan, drill_id: str) -> list[Finding]:
    """What happened against the plan: detection, levels, who was told and when, each
    step's outcome and time, and nobody outside the drill told."""
    found: list[Finding] = []
    caused = store.events(kind="drill.caused", subject=drill_id)
    incs = incidents_of(store, drill_id)
    events = events_about(store, [i["id"] for i in incs])
    if not incs:
        return [Finding("检测到故障", "fault detected", f"≤ {plan.expect.detected_s:g} s",
                        "未检测到" if caused else "故障未造成", False)]
    opened = min((e for e in events if e.kind == "incident.opened"), key=lambda e: e.seq)
    if caused:
        took = (_at(opened) - _at(caused[0])).total_seconds()
        found.append(Finding("检测到故障", "fault detected", f"≤ {plan.expect.detected_s:g} s",
                             f"{took:.0f} s", took <= plan.expect.detected_s))
    reached = {Level(e.data["mark"]).plan_level for e in events if e.kind == "incident.level"}
    for level in plan.levels:
        found.append(Finding(f"达到{level.text('zh')}", f"{level.text('en')} reached",
                             "✓", "✓" if level in reached else "✗", level in reached))
    # Every time here is an event's, on the store's one clock.
    onset = _at(opened)
    first: dict[str, dt.datetime] = {}
    for e in events:
        if e.kind == "message.queued":
            first.setdefault(e.data.get("contact", ""), _at(e))
    drill = drills.load(store, drill_id)
    people = drill["participants"] if drill else plan.participants
    for person in people:
        at = first.get(person)
        after = (at - onset).total_seconds() if at else None
        found.append(Finding(f"通知 {person}", f"{person} told", f"≤ {plan.expect.told_s:g} s",
                             f"{after:.0f} s" if after is not None else "—",
                             None if after is None else after <= plan.expect.told_s))
    outsiders = sorted(set(first) - set(people))
    found.append(Finding("演练外人员未被通知", "nobody outside the drill told", "—",
                         ", ".join(outsiders) or "—", not outsiders))
    for r in steps_of(store, drill_id):
        name = f"{r['level']}/{r['step']}"
        done = _finished_at(events, r["key"])
        planned = next(e for e in events if e.subject == r["key"] and e.kind == "step.planned")
        spent = (done - _at(planned)).total_seconds() if done else None
        limit = plan.expect.steps.get(name)
        ok: bool | None = None
        skipped_why = {e.data.get("why") for e in events
                       if e.subject == r["key"] and e.kind == "step.skipped"}
        unfinished = "the drill ended" in skipped_why
        if r["status"] in ("failed", "expired") or (unfinished and limit is not None):
            ok = False
        elif MOOT in skipped_why:
            ok = None  # its fault went before it ran (a blip while the drill healed)
        elif limit is not None:
            ok = spent is not None and spent <= limit and r["status"] not in ("open",
                                                                              "awaiting")
        system = system_of(r["incident"])
        found.append(Finding(f"步骤 {name}（{r['clause']}）@ {system}",
                             f"step {name} ({r['clause']}) @ {system}",
                             f"≤ {limit:g} s" if limit is not None else "—",
                             f"{r['status']}" + (f", {spent:.0f} s" if spent is not None
                                                 else ""), ok))
    for host, limit in plan.expect.writable.items():
        seen = [e for e in store.events(kind="drill.writable", subject=drill_id)
                if e.data.get("host") == host]
        secs = seen[0].data.get("seconds") if seen else None
        found.append(Finding(f"{host} 接受写入", f"{host} takes writes", f"≤ {limit:g} s",
                             f"{secs:.1f} s" if secs is not None else "—",
                             secs is not None and secs <= limit))
    recovered = all(i["status"] == "recovered" for i in incs)
    found.append(Finding("演练结束时已恢复", "recovered by the drill's end", "✓",
                         "✓" if recovered else "✗", recovered))
    return found


def passed(findings: list[Finding]) -> bool:
    return all(f.ok is not False for f in findings)


# --- the archived record ----------------------------------------------------------------------

_W = {"zh": {"title": "应急演练记录", "per": "依据预案 P3.2.3；时间为站点当地时间",
             "plan": "演练计划", "scenario": "场景", "class": "故障类别", "systems": "系统",
             "cause": "故障造成方式", "heal": "恢复方式", "participants": "参与人员",
             "levels": "演练级别", "speed": "级别时限加速", "process": "演练过程",
             "when": "时间", "event": "事件", "detail": "说明", "evaluation": "评估",
             "item": "项目", "expected": "预期", "actual": "实际", "verdict": "结论",
             "passed": "通过", "failed": "未通过", "info": "记录", "overall": "总体结论",
             "sign": "签字确认", "started": "开始", "ended": "结束", "by": "组织人"},
      "en": {"title": "Emergency drill record", "per": "Per the plan's P3.2.3; times in the "
             "site's local time", "plan": "Drill plan", "scenario": "Scenario",
             "class": "Fault class", "systems": "Systems", "cause": "How the fault is caused",
             "heal": "How it is healed", "participants": "Participants",
             "levels": "Levels walked", "speed": "Ladder speed-up", "process": "Process",
             "when": "When", "event": "Event", "detail": "Detail", "evaluation": "Evaluation",
             "item": "Item", "expected": "Expected", "actual": "Actual", "verdict": "Verdict",
             "passed": "passed", "failed": "failed", "info": "noted", "overall": "Overall",
             "sign": "Sign-off", "started": "Started", "ended": "Ended", "by": "Organised by"}}


def record(store: Store, inv: Inventory, plan: DrillPlan, drill: drills.Drill,
           findings: list[Finding], lang: str) -> str:
    w = _W["en" if lang == "en" else "zh"]
    tz = ZoneInfo(inv.site.timezone)
    names = {c.id: c.name for c in inv.contacts}
    lines = [f"# {w['title']}: {plan.name.get(lang)} ({drill['id']})", "",
             f"_{w['per']} ({inv.site.timezone})_", "",
             f"- {w['started']}: {local_text(drill['started'], tz, seconds=True)}",
             f"- {w['ended']}: {local_text(drill['ended'], tz, seconds=True)}",
             f"- {w['by']}: {names.get(drill['by'], drill['by'])} ({drill['by']})", "",
             f"## {w['plan']}", "",
             f"- {w['class']}: {plan.fault_class.value} ({plan.fault_class.clause})",
             f"- {w['systems']}: {', '.join(plan.systems)}",
             f"- {w['cause']}: `{plan.cause.text(lang)}`",
             f"- {w['heal']}: " + ("; ".join(f"`{a.text(lang)}`" for a in plan.heal) or "—"),
             f"- {w['participants']}: " + ", ".join(f"{names.get(p, p)} ({p})"
                                                    for p in drill["participants"]),
             f"- {w['levels']}: {', '.join(lv.text(lang) for lv in plan.levels)}",
             f"- {w['speed']}: ×{plan.speed:g}", "",
             f"## {w['process']}", "", f"| {w['when']} | {w['event']} | {w['detail']} |",
             "|---|---|---|"]
    timeline = store.events(subject=drill["id"]) + events_about(
        store, [i["id"] for i in incidents_of(store, drill["id"])])
    for e in sorted(timeline, key=lambda e: e.seq):
        if e.kind in ("message.delivered", "step.run.task"):
            continue
        detail = e.data.get("why") or e.data.get("mark") or e.data.get("by") or \
            e.data.get("contact") or e.data.get("message") or e.data.get("action") or ""
        lines.append(f"| {local_text(e.at, tz, seconds=True)} | {e.kind} "
                     f"{table_cell(e.subject)} | {table_cell(detail)} |")
    lines += ["", f"## {w['evaluation']}", "",
              f"| {w['item']} | {w['expected']} | {w['actual']} | {w['verdict']} |",
              "|---|---|---|---|"]
    for f in findings:
        verdict = w["info"] if f.ok is None else w["passed"] if f.ok else w["failed"]
        lines.append(f"| {table_cell(f.what if lang != 'en' else f.what_en)} | "
                     f"{table_cell(f.expected)} | {table_cell(f.actual)} | {verdict} |")
    lines += ["", f"**{w['overall']}: {w['passed'] if passed(findings) else w['failed']}**",
              "", f"## {w['sign']}", ""]
    lines += [f"{names.get(p, p)} ({p}): ________________    ____________"
              for p in [drill["by"], *[p for p in drill["participants"] if p != drill["by"]]]]
    return "\n".join(lines) + "\n"


def archive(store: Store, inv: Inventory, plan: DrillPlan, drill: drills.Drill,
            findings: list[Finding], out_dir: Path) -> list[Path]:
    """Write the record (zh and en, Markdown and printable HTML) and put its digest in the
    chain (`drill.recorded`): a later edit of the files is visible."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written, digests = [], {}
    for lang in ("zh", "en"):
        md = record(store, inv, plan, drill, findings, lang)
        for ext, text in (("md", md), ("html", as_html(md, lang))):
            path = out_dir / f"{drill['id']}.{lang}.{ext}"
            data = text.encode("utf-8")
            write_atomically(path, data)
            written.append(path)
            digests[path.name] = hashlib.sha256(data).hexdigest()
    store.append("drill.recorded", drill["id"], {
        "files": [str(p) for p in written], "sha256": digests,
        "passed": passed(findings), "failed": [f.what_en for f in findings if f.ok is False]})
    return written


def last_drilled(store: Store) -> dict[str, dt.datetime]:
    """Fault class -> when a drill of it last ended."""
    started = {e.subject: e.data.get("fault_class") for e in store.events(kind="drill.started")}
    out: dict[str, dt.datetime] = {}
    for e in store.events(kind="drill.ended"):
        klass = started.get(e.subject)
        if klass:
            out[klass] = max(out.get(klass, _at(e)), _at(e))
    return out


def overdue(store: Store, inv: Inventory, now: dt.datetime) -> list[str]:
    """The fault classes of the site's systems not drilled within the interval."""
    last = last_drilled(store)
    limit = dt.timedelta(days=inv.drill_interval_days)
    classes = sorted({s.fault_class.value for s in inv.systems.values()})
    return [k for k in classes if k not in last or now - last[k] > limit]
