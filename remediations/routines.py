"""The runbook's routines (P3.2.2): people's work on a schedule. The leading daemon opens a
routine's task when the last time it was done is `every_days` ago (or it never was), and
tells the people of its roles once; `done` ticks it off with a note. Each opening and
ticking off is an event: the record the plan asks for."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from vigil.clock import local_text
from vigil.delivery import outbox
from vigil.model import Contact, Inventory
from vigil.runbook import Routine
from vigil.store import Store, Tx

PREFIX = "routine:"


class RoutineRefused(ValueError):
    """One line saying why a routine cannot be ticked off."""


def key(routine_id: str) -> str:
    return f"{PREFIX}{routine_id}"


def doers(inv: Inventory, routine: Routine) -> list[Contact]:
    return [c for c in inv.contacts if set(routine.roles) & set(c.roles)]


def _due(rec: dict[str, Any], routine: Routine, now: dt.datetime) -> bool:
    if rec.get("status") == "open":
        return False  # opened already: it stays open until done
    last = rec.get("done_at")
    return not last or now - dt.datetime.fromisoformat(last) >= \
        dt.timedelta(days=routine.every_days)


def due(store: Store, inv: Inventory, now: dt.datetime) -> bool:
    """Whether a routine needs opening (a read: most cycles write nothing)."""
    return any(_due(store.get_state(key(r.id)) or {}, r, now)
               for r in inv.site_runbook.routines)


def tick(tx: Tx, inv: Inventory, now: dt.datetime) -> None:
    """Open the routines that are due; a routine already open stays as it is."""
    for routine in inv.site_runbook.routines:
        rec: dict[str, Any] = tx.get_state(key(routine.id)) or {}
        if not _due(rec, routine, now):
            continue
        last = rec.get("done_at")
        rec = {**rec, "id": routine.id, "clause": routine.clause, "status": "open",
               "opened_at": now.isoformat()}
        tx.set_state(key(routine.id), rec)
        tx.append("routine.due", routine.id, {"clause": routine.clause, "last_done": last})
        tz = ZoneInfo(inv.site.timezone)
        for contact in doers(inv, routine):
            zh = contact.lang != "en"
            title = (f"【例行检查】{routine.zh}（{routine.clause}）" if zh
                     else f"[Routine] {routine.en} ({routine.clause})")
            body = (f"上次完成：{local_text(last, tz) if last else '无记录'}。\n"
                    f"完成后登记：vigil routine done {routine.id} --as <你的编号> --note <情况>"
                    if zh else
                    f"Last done: {local_text(last, tz) if last else 'never on record'}.\n"
                    f"When done: vigil routine done {routine.id} --as <your id> --note "
                    f"<what you found>")
            for index in range(len(contact.channels)):
                outbox.queue(tx, key=f"routine/{routine.id}/{rec['opened_at']}/{contact.id}"
                             f"#{index}", contact=contact, channel=index, title=title,
                             body=body, incident=None, kind="routine", now=now)


def done(store: Store, inv: Inventory, routine_id: str, person: str, note: str,
         now: dt.datetime) -> dict[str, Any]:
    routine = next((r for r in inv.site_runbook.routines if r.id == routine_id), None)
    if routine is None:
        raise RoutineRefused(f"no routine {routine_id!r} (see vigil routine list)")
    contact = inv.contact(person)
    if not set(routine.roles) & set(contact.roles):
        raise PermissionError(f"{person} may not tick off {routine_id}: it is for "
                              f"{', '.join(r.value for r in routine.roles)}")
    if not note.strip():
        raise RoutineRefused("say what you found (--note): it is the record")
    with store.transaction() as tx:
        rec: dict[str, Any] = tx.get_state(key(routine_id)) or {"id": routine_id,
                                                                "clause": routine.clause}
        rec.update(status="done", done_at=now.isoformat(), done_by=person, note=note)
        tx.set_state(key(routine_id), rec)
        tx.append("routine.done", routine_id, {"by": person, "note": note,
                                               "clause": routine.clause})
    return rec


def state(store: Store, inv: Inventory, now: dt.datetime) -> list[dict[str, Any]]:
    """Each routine: open or done, when last done and by whom, when next due."""
    rows = []
    for routine in inv.site_runbook.routines:
        rec: dict[str, Any] = store.get_state(key(routine.id)) or {}
        last = rec.get("done_at")
        due = dt.datetime.fromisoformat(last) + dt.timedelta(days=routine.every_days) \
            if last else None
        rows.append({"id": routine.id, "clause": routine.clause, "text": routine.zh,
                     "text_en": routine.en, "status": rec.get("status", "never done"),
                     "done_at": last, "done_by": rec.get("done_by"), "note": rec.get("note"),
                     "next_due": due.isoformat() if due else None,
                     "overdue": rec.get("status") == "open" or due is None or now >= due})
    return rows
