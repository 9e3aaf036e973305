"""Faults a person reports (P4.2: whoever finds a fault reports it).

`report` records the finding and asks the leading daemon's tracker to open the incident
with the onset the person gives: from there the ladder and the plan's steps follow as for
a detected fault. Such an incident is fed by the pseudo-check `reported@<system>`, which
fails until someone withdraws it (`withdraw`, when the fault is mended); the incident
recovers once that and every check that joined it pass.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal, TypedDict

from vigil import keys
from vigil.model import Inventory
from vigil.store import Store

REPORTED = "reported"  # the check name of a reported fault; its target is the system


class Report(TypedDict):
    id: str
    action: Literal["open", "close"]
    system: str
    note: str
    by: str  # the contact who reported it
    since: str  # ISO, UTC: when the fault began by the person's account
    at: str  # when it was reported


class ReportRefused(ValueError):
    """A report that cannot be taken: one line saying why."""


def reported_key(system: str) -> str:
    """The result key of the pseudo-check feeding a reported incident."""
    return f"{REPORTED}@{system}"


def _request(store: Store, report: Report) -> Report:
    with store.transaction() as tx:
        tx.append(f"fault.{'reported' if report['action'] == 'open' else 'withdrawn'}",
                  report["system"], {k: v for k, v in report.items() if k != "system"})
        tx.set_state(keys.report(report["id"]), report)
    return report


def report(store: Store, inv: Inventory, *, system: str, note: str, by: str,
           since: dt.datetime, now: dt.datetime) -> Report:
    """Record a fault found by `by`; the tracker opens (or joins) its incident next."""
    if system not in inv.systems:
        raise ReportRefused(f"no system {system!r} in {inv.path}")
    inv.contact(by)  # PermissionError for a stranger
    if not note.strip():
        raise ReportRefused("say what you found (--note): it is recorded and sent")
    if since > now:
        raise ReportRefused("the fault cannot begin in the future (--since)")
    return _request(store, {"id": f"r-{uuid.uuid4().hex[:8]}", "action": "open",
                            "system": system, "note": note, "by": by,
                            "since": since.astimezone(dt.UTC).isoformat(),
                            "at": now.isoformat()})


def withdraw(store: Store, inv: Inventory, *, incident: str, note: str, by: str,
             now: dt.datetime) -> Report:
    """The reported fault is mended: its pseudo-check passes from now on, and the incident
    recovers when no detected check of it still fails."""
    inv.contact(by)
    inc = store.get_state(keys.incident(incident))
    if inc is None:
        raise ReportRefused(f"no incident {incident!r}")
    if inc.get("status") != "open":
        raise ReportRefused(f"incident {incident!r} is {inc.get('status')}")
    if reported_key(inc["system"]) not in inc.get("checks", []):
        raise ReportRefused(f"incident {incident!r} was detected by checks, not reported: "
                            f"it recovers when they pass")
    return _request(store, {"id": f"w-{uuid.uuid4().hex[:8]}", "action": "close",
                            "system": inc["system"], "note": note, "by": by,
                            "since": now.isoformat(), "at": now.isoformat()})
