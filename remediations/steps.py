"""The runbook's steps as durable records of an incident: planned when the incident
reaches a level (or recovers), then run, approved, denied, expired or ticked off.

A record lives in the store as `step:<incident>/<level>/<step id>` and every change is an
event in the same transaction, so a crash loses no approval and no ticked-off task.
"""

from __future__ import annotations

import datetime as dt
import itertools
from fnmatch import fnmatchcase
from typing import Any, NotRequired
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter
from typing_extensions import TypedDict

from vigil import identity, keys
from vigil.alerting import drills
from vigil.alerting.incidents import Incident, system_of
from vigil.clock import local_text
from vigil.delivery import outbox
from vigil.domain import FaultClass, PartyKind, Role
from vigil.model import Contact, Inventory
from vigil.result import Result
from vigil.runbook import Runbook, Step
from vigil.store import Store, Tx, checked_record

# The parties that exchange vouchers: "every party" of the notify steps (P2).
EXCHANGING = {PartyKind.FINANCE_BUREAU, PartyKind.CENTRAL_BANK_BRANCH, PartyKind.AGENT_BANK,
              PartyKind.PAYROLL_BANK, PartyKind.FISCAL_ACCOUNT_BANK}
FINAL = {"succeeded", "failed", "expired", "done", "sent", "observed", "dry-run", "skipped"}
# The roles that work on a fault (a leader decides, a supervisor watches).
OPERATIONAL = {Role.IMPLEMENTATION_TEAM, Role.ONSITE_TECHNICIAN, Role.VENDOR}
# A denial is a decision for now: the approvers may still approve until the step expires.
DECIDING = {"awaiting", "denied"}


class Approval(TypedDict):
    by: str  # a contact id
    roles: list[str]  # the roles they approved in
    at: str
    session: NotRequired[str]  # the sign-in or OS account it came through (vigil.identity)


class StepRecord(TypedDict):
    """A planned step's record in the store (keys.step): what the executor runs and
    people approve, deny or tick off."""

    key: str  # incident/level/step id
    incident: str
    level: str
    step: str
    fault_class: str
    clause: str
    kind: str
    status: str  # pending, running, awaiting, open, … (FINAL, DECIDING)
    attempts: int
    approvals: list[Approval]
    planned_at: str
    not_before: str
    expires_at: NotRequired[str]
    last: NotRequired[str]  # why the last run ended as it did
    denied_by: NotRequired[str]
    reason: NotRequired[str]
    done_by: NotRequired[str]
    done_at: NotRequired[str]
    drill: NotRequired[str]  # its incident's drill (alerting.drills)
    held: NotRequired[bool]  # its notice waits for the end of its system's silence


_STEP: TypeAdapter[StepRecord] = TypeAdapter(StepRecord)


def step_from(key: str, value: Any) -> StepRecord:
    """A stored step record, checked: a damaged one is one line, never a KeyError."""
    return checked_record(_STEP, key, value, "step record")


def load_steps(store: Store) -> list[StepRecord]:
    return [step_from(k, v) for k, v in store.states(keys.STEP).items()]


class StepError(Exception):
    """A step cannot do what was asked (it is not waiting, it expired, ...)."""


def step_key(incident: str, level: str, step_id: str) -> str:
    return f"{incident}/{level}/{step_id}"


def applies(step: Step, inc: Incident) -> bool:
    names = [Result.check_of(key) for key in inc.get("checks", [])]
    return not step.only_if_failing or any(
        fnmatchcase(n, pattern) for n in names for pattern in step.only_if_failing)


def _initial(step: Step, observe_only: bool) -> str:
    return {"auto": "observed" if observe_only else "pending", "approval": "awaiting",
            "manual": "open", "notify": "sent"}[step.kind]


def plan(tx: Tx, inv: Inventory, runbook: Runbook, inc: Incident, levels: list[str],
         now: dt.datetime, *, observe_only: bool = False,
         quiet: bool = False) -> list[StepRecord]:
    """Create the records of `levels` not yet planned for `inc`; queue their messages,
    unless `quiet` (its system is silenced): then they wait for `release`."""
    made = []
    klass = FaultClass(inc["fault_class"])
    for level in levels:
        for step_class, step in _expanded(runbook, klass, level):
            key = step_key(inc["id"], level, step.id if step_class == klass
                           else f"{step_class.value}.{step.id}")
            if tx.get_state(keys.step(key)) is not None:
                continue
            rec: StepRecord = {"key": key, "incident": inc["id"], "level": level, "step": step.id,
                   "fault_class": step_class.value, "clause": step.clause, "kind": step.kind,
                   "status": _initial(step, observe_only) if applies(step, inc) else "skipped",
                   "attempts": 0, "approvals": [],
                   "planned_at": now.isoformat(), "not_before": now.isoformat()}
            if inc.get("drill"):
                rec["drill"] = inc["drill"]
            if step.kind == "approval":
                rec["expires_at"] = (now + dt.timedelta(minutes=step.expires_minutes)).isoformat()
            tx.append("step.planned", key, {"incident": inc["id"], "clause": step.clause,
                                            "kind": step.kind, "status": rec["status"],
                                            "text": step.en, "text_zh": step.zh})
            if rec["status"] == "skipped":
                tx.append("step.skipped", key, {"incident": inc["id"], "only_if_failing":
                                                step.only_if_failing, "failing": inc["checks"]})
                tx.set_state(keys.step(key), rec)
                continue
            if step.kind == "auto" and observe_only:
                tx.append("step.observed", key, {"incident": inc["id"], "would_run":
                                                 step.run.playbook if step.run else None})
            if quiet and step.kind in ("notify", "approval"):
                rec["held"] = True
                if step.kind == "notify":
                    rec["status"] = "held"
                tx.append("step.held", key, {"incident": inc["id"], "kind": step.kind})
            else:
                _announce(tx, inv, step, rec, inc, now)
            tx.set_state(keys.step(key), rec)
            made.append(rec)
    return made


def _expanded(runbook: Runbook, klass: FaultClass, level: str) -> list[tuple[FaultClass, Step]]:
    out = []
    for step in runbook.steps(klass, level):
        out.append((klass, step))
        if step.as_class and step.as_class != klass:
            out += [(step.as_class, s) for s in runbook.steps(step.as_class, level)]
    return out


# --- who hears of a step --------------------------------------------------------------

def every_party(inv: Inventory) -> list[Contact]:
    return [c for c in inv.contacts
            if c.party in inv.parties and inv.parties[c.party].kind in EXCHANGING]


def approvers(inv: Inventory, step: Step) -> list[Contact]:
    roles = set(step.approvers) | set(step.two_person)
    return [c for c in inv.contacts if roles & set(c.roles)]


def doers(inv: Inventory, step: Step, system: str) -> list[Contact]:
    """Who may tick off a manual step of a system's incident: the roles the step names
    (else the implementation team and the affected party's operational staff), and always
    the system's owners."""
    sys_ = inv.systems.get(system)
    owners = set(sys_.owners) if sys_ else set()
    party = sys_.party if sys_ else None
    if step.roles:
        return [c for c in inv.contacts if c.id in owners or set(step.roles) & set(c.roles)]
    return [c for c in inv.contacts if c.id in owners
            or Role.IMPLEMENTATION_TEAM in c.roles
            or (c.party == party and set(c.roles) & OPERATIONAL)]


def _announce(tx: Tx, inv: Inventory, step: Step, rec: StepRecord, inc: Incident,
              now: dt.datetime) -> None:
    if step.kind == "notify":
        _tell(tx, inv, every_party(inv), rec, inc, "notify", step, now)
    elif step.kind == "approval":
        _tell(tx, inv, approvers(inv, step), rec, inc, "approval", step, now)


def release(tx: Tx, inv: Inventory, runbook: Runbook, rec: StepRecord,
            now: dt.datetime) -> None:
    """Its system's silence ended: the notice held back goes now (a notice to every party
    is then sent; an approval is asked)."""
    if not rec.get("held"):
        return
    del rec["held"]
    if rec["status"] == "held":
        rec["status"] = "sent"
    inc = tx.get_state(keys.incident(rec["incident"]))
    step = runbook.step(FaultClass(rec["fault_class"]), rec["level"], rec["step"])
    tx.append("step.released", rec["key"], {"incident": rec["incident"]})
    tx.set_state(keys.step(rec["key"]), rec)
    if inc and step and rec["status"] in ("sent", "awaiting", "denied"):
        _announce(tx, inv, step, rec, inc, now)


def _tell(tx: Tx, inv: Inventory, contacts: list[Contact], rec: StepRecord, inc: Incident,
          kind: str, step: Step, now: dt.datetime, note: str = "") -> None:
    tz = ZoneInfo(inv.site.timezone)
    drill = drills.load(tx, inc["drill"]) if inc.get("drill") else None
    for contact in drills.told(drill, contacts):
        title, body = notice(kind, step, rec, inc, contact.lang, tz, note)
        if drill:
            title = drills.tag(title, contact.lang)
        for index in range(len(contact.channels)):
            outbox.queue(tx, key=f"{rec['key']}/{kind}/{rec['attempts']}/{contact.id}#{index}",
                         contact=contact, channel=index, title=title, body=body,
                         incident=inc["id"], kind=f"step.{kind}", now=now)


def notice(kind: str, step: Step, rec: StepRecord, inc: Incident, lang: str, tz: ZoneInfo,
           note: str = "") -> tuple[str, str]:
    """The message about a step, in the contact's language, citing the clause."""
    zh = lang != "en"
    text = step.text(lang)
    where = f"{'事件' if zh else 'Incident'} {inc['id']}"
    if kind == "notify":
        title = (f"【通知各方】{text}（{step.clause}）" if zh
                 else f"[All parties] {text} ({step.clause})")
        body = f"{where}\n{'依据' if zh else 'Per'} {step.clause}: {text}"
    elif kind == "approval":
        title = (f"【待审批】{text}（{step.clause}）" if zh
                 else f"[Approval needed] {text} ({step.clause})")
        two = (("需两人分别批准：" if zh else "Needs two people, one of each role: ") +
               ", ".join(r.value for r in step.two_person)) if step.two_person else ""
        body = "\n".join(x for x in (
            where, f"{step.clause}: {text}", two,
            (f"请登录值守控制台审批（下方链接），或 vigil approve {rec['key']}；"
             f"拒绝：vigil deny {rec['key']} --reason 理由"
             if zh else f"Decide in the duty console (link below, sign in), or vigil approve "
                        f"{rec['key']}; deny: vigil deny {rec['key']} --reason WHY"),
            (f"有效期至 {local_text(rec.get('expires_at'), tz)}" if zh
             else f"Expires {local_text(rec.get('expires_at'), tz)}")) if x)
    elif kind == "expired":
        title = (f"【审批已过期】{text}（{step.clause}）" if zh
                 else f"[Approval expired] {text} ({step.clause})")
        got = ", ".join(a["by"] for a in rec["approvals"]) or ("无" if zh else "none")
        body = "\n".join((
            where, f"{step.clause}: {text}",
            (f"已于 {local_text(rec.get('expires_at'), tz)} 过期，未获足够批准（已批准：{got}）。"
             f"该步骤不会执行；如仍需要，请按预案另行决定并记录。" if zh else
             f"Expired at {local_text(rec.get('expires_at'), tz)} without enough approvals "
             f"(approved by: {got}). The step will not run; if it is still needed, decide "
             f"per the plan by other means and record it.")))
    else:  # escalated: an automatic remedy gave up
        title = (f"【需人工处理】自动处置未成功：{text}（{step.clause}）" if zh
                 else f"[People needed] automatic remedy failed: {text} ({step.clause})")
        body = (f"{where}\n{'已尝试' if zh else 'Attempts'}: {rec['attempts']}\n{note}\n" +
                ("Vigil 不再自动重试，请按预案人工处理。" if zh else
                 "Vigil will not retry again: carry out the plan's step by hand."))
    return title, body


MOOT = "the incident recovered before it ran"


def skip_moot(tx: Tx, rec: StepRecord) -> None:
    """A remedy not run yet whose fault has gone: running it now would act on a healthy
    system (a failover after the primary came back), so it is skipped, on record."""
    rec["status"] = "skipped"
    tx.append("step.skipped", rec["key"], {"incident": rec["incident"],
                                           "why": MOOT})
    tx.set_state(keys.step(rec["key"]), rec)


def escalate(tx: Tx, inv: Inventory, step: Step, rec: StepRecord, inc: Incident,
             now: dt.datetime, why: str) -> None:
    people = [c for c in inv.contacts
              if {Role.IMPLEMENTATION_TEAM, Role.LEADERSHIP_GROUP} & set(c.roles)]
    tx.append("step.escalated", rec["key"], {"incident": inc["id"], "attempts": rec["attempts"],
                                             "why": why, "to": [c.id for c in people]})
    _tell(tx, inv, people, rec, inc, "escalated", step, now, note=why)


# --- people act on steps ---------------------------------------------------------------

def find(store: Store, ref: str, statuses: set[str]) -> StepRecord:
    """A record by its full key, or by a step id that only one waiting record has."""
    value = store.get_state(keys.step(ref))
    if value is not None:
        return step_from(keys.step(ref), value)
    hits = [r for r in load_steps(store)
            if ref in (r["step"], r["key"].split("/", 2)[-1]) and r["status"] in statuses]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise StepError(f"no step {ref!r} is waiting (give INCIDENT/LEVEL/STEP; see vigil steps)")
    raise StepError(f"{ref!r} is waiting in {len(hits)} incidents: give INCIDENT/LEVEL/STEP "
                    f"({', '.join(sorted(h['key'] for h in hits))})")


def _step_of(runbook: Runbook, rec: StepRecord) -> Step:
    step = runbook.step(FaultClass(rec["fault_class"]), rec["level"], rec["step"])
    if step is None:
        raise StepError(f"{rec['key']}: the runbook no longer has this step")
    return step


def expire(tx: Tx, inv: Inventory, runbook: Runbook, rec: StepRecord,
           now: dt.datetime) -> bool:
    """An approval nobody gave in time: recorded, and told to those who could have given
    it, those who took part, and the implementation team that runs the incident."""
    if rec["status"] in DECIDING and now >= dt.datetime.fromisoformat(rec["expires_at"]):
        rec["status"] = "expired"
        step = runbook.step(FaultClass(rec["fault_class"]), rec["level"], rec["step"])
        took_part = {a["by"] for a in rec["approvals"]} | {rec.get("denied_by") or ""}
        people = [c for c in inv.contacts if c.id in took_part
                  or Role.IMPLEMENTATION_TEAM in c.roles] + (approvers(inv, step) if step
                                                             else [])
        people = list({c.id: c for c in people}.values())
        tx.append("step.expired", rec["key"], {"incident": rec["incident"],
                                               "approvals": rec["approvals"],
                                               "told": [c.id for c in people]})
        tx.set_state(keys.step(rec['key']), rec)
        inc = tx.get_state(keys.incident(rec["incident"]))
        if step and inc:
            _tell(tx, inv, people, rec, inc, "expired", step, now)
        return True
    return False


def _deciding(tx: Tx, inv: Inventory, runbook: Runbook, key: str,
              now: dt.datetime) -> tuple[StepRecord, bool]:
    """The record as committed, and whether it has just expired; refuses a decided one."""
    rec = tx.get_state(keys.step(key))
    if expire(tx, inv, runbook, rec, now):
        return rec, True
    if rec["status"] not in DECIDING:
        raise StepError(f"{key} is {rec['status']}, not waiting for approval")
    return rec, False


def satisfied(step: Step, approvals: list[Approval]) -> bool:
    if not step.two_person:
        return bool(approvals)
    # Each role of the rule by a different person (P4.3.3(4)).
    for chosen in itertools.permutations(approvals, len(step.two_person)):
        if len({a["by"] for a in chosen}) == len(chosen) and \
                all(role in a["roles"] for role, a in zip(step.two_person, chosen, strict=True)):
            return True
    return False


def approve(store: Store, inv: Inventory, runbook: Runbook, ref: str, person: str,
            now: dt.datetime) -> StepRecord:
    rec = find(store, ref, DECIDING)
    step = _step_of(runbook, rec)
    contact = inv.contact(person)
    allowed = set(step.approvers) | set(step.two_person)
    held = sorted(r.value for r in set(contact.roles) & allowed)
    actor = identity.current()
    session = actor.session if actor else None
    with store.transaction() as tx:
        rec, expired = _deciding(tx, inv, runbook, rec["key"], now)
        if expired:
            return rec
        if not held:
            tx.append("step.approval_refused", rec["key"], {
                "by": person, "roles": [r.value for r in contact.roles],
                "needs": sorted(r.value for r in allowed)})
            refused = PermissionError(
                f"{person} ({', '.join(r.value for r in contact.roles)}) may not approve "
                f"{rec['key']}: it needs {' and '.join(sorted(r.value for r in allowed))}")
        elif any(a["by"] == person for a in rec["approvals"]):
            raise StepError(f"{person} already approved {rec['key']}; "
                            f"the two-person rule needs somebody else")
        elif session and any(a.get("session") == session for a in rec["approvals"]):
            # One sign-in, or one OS account, never supplies both halves (P4.3.3(4)).
            tx.append("step.approval_refused", rec["key"], {
                "by": person, "why": "same session as an earlier approval"})
            refused = PermissionError(
                f"{rec['key']} was already approved from this session ({session}): the "
                f"two-person rule needs the other person signed in on their own")
        else:
            refused = None
            approval: Approval = {"by": person, "roles": held, "at": now.isoformat()}
            if session:
                approval["session"] = session
            rec["approvals"].append(approval)
            tx.append("step.approved", rec["key"], {"incident": rec["incident"], "by": person,
                                                    "roles": held, "clause": rec["clause"]})
            if satisfied(step, rec["approvals"]):
                rec["status"] = "pending" if step.run else "done"
                tx.append("step.authorised", rec["key"], {
                    "incident": rec["incident"], "by": [a["by"] for a in rec["approvals"]],
                    "next": "run" if step.run else "carry out"})
            tx.set_state(keys.step(rec['key']), rec)
    if refused:
        raise refused
    return rec


def deny(store: Store, inv: Inventory, runbook: Runbook, ref: str, person: str, reason: str,
         now: dt.datetime) -> StepRecord:
    rec = find(store, ref, DECIDING)
    step = _step_of(runbook, rec)
    contact = inv.contact(person)
    allowed = set(step.approvers) | set(step.two_person)
    if not set(contact.roles) & allowed:
        store.append("step.denial_refused", rec["key"], {
            "by": person, "roles": [r.value for r in contact.roles],
            "needs": sorted(r.value for r in allowed)})
        raise PermissionError(f"{person} may not decide on {rec['key']}: it needs "
                              f"{' or '.join(sorted(r.value for r in allowed))}")
    with store.transaction() as tx:
        rec, expired = _deciding(tx, inv, runbook, rec["key"], now)
        if expired:
            return rec
        # A no resets the yeses so far: a two-person approval starts again.
        rec["status"], rec["denied_by"], rec["reason"] = "denied", person, reason
        rec["approvals"] = []
        tx.append("step.denied", rec["key"], {"incident": rec["incident"], "by": person,
                                              "reason": reason})
        tx.set_state(keys.step(rec['key']), rec)
    return rec


def done(store: Store, inv: Inventory, runbook: Runbook, ref: str, person: str, note: str,
         now: dt.datetime) -> StepRecord:
    rec = find(store, ref, {"open"})
    step = _step_of(runbook, rec)
    inv.contact(person)  # PermissionError for a stranger
    system = system_of(rec["incident"])
    if person not in {c.id for c in doers(inv, step, system)}:
        whose = ", ".join(r.value for r in step.roles) if step.roles else \
            "the implementation team and the affected party's staff"
        raise PermissionError(f"{person} may not tick off {rec['key']}: it is for {whose}, "
                              f"or an owner of {system}")
    with store.transaction() as tx:
        rec = tx.get_state(keys.step(rec['key']))
        if rec["status"] != "open":
            raise StepError(f"{rec['key']} is {rec['status']}, not an open task")
        rec["status"], rec["done_by"], rec["done_at"] = "done", person, now.isoformat()
        tx.append("step.done", rec["key"], {"incident": rec["incident"], "by": person,
                                            "note": note, "clause": rec["clause"]})
        tx.set_state(keys.step(rec['key']), rec)
    return rec
