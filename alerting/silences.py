"""Maintenance windows: while a silence of a system lasts, its faults are recorded, shown
and climb the ladder, but nobody is paged (the tracker holds the message, and sends it
when the window ends, with the fault's true onset) and its automatic steps wait unless the
silence lets them run. A window ends by itself at its `until`; `end` closes it early.
Each is an event naming who set or ended it. A window over for more than `KEEP` leaves the
daemon's working set (it reads every window each pass); its events stay in the log."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TypedDict

from vigil import keys
from vigil.model import Inventory
from vigil.store import Store


class Silence(TypedDict):
    id: str
    system: str
    start: str  # ISO, UTC
    until: str
    reason: str
    by: str  # the contact who set it
    steps: bool  # automatic steps run during it
    ended: str | None  # when someone closed it before `until`
    ended_by: str | None


KEEP = dt.timedelta(days=30)


class SilenceRefused(ValueError):
    """A silence that cannot be: one line saying why."""


def add(store: Store, inv: Inventory, *, system: str, start: dt.datetime,
        until: dt.datetime, reason: str, by: str, steps: bool, now: dt.datetime) -> Silence:
    if system not in inv.systems:
        raise SilenceRefused(f"no system {system!r} in {inv.path}")
    inv.contact(by)  # PermissionError for a stranger
    if until <= start or until <= now:
        raise SilenceRefused("the window must end after it starts, and in the future")
    if not reason.strip():
        raise SilenceRefused("say why (--reason): it is recorded and shown")
    silence: Silence = {"id": f"s-{uuid.uuid4().hex[:8]}", "system": system,
                        "start": start.astimezone(dt.UTC).isoformat(),
                        "until": until.astimezone(dt.UTC).isoformat(), "reason": reason,
                        "by": by, "steps": steps, "ended": None, "ended_by": None}
    with store.transaction() as tx:
        tx.append("silence.added", silence["id"], dict(silence))
        tx.set_state(keys.silence(silence["id"]), silence)
        for key, old in tx.states(keys.SILENCE).items():
            if _over(old) < now - KEEP:
                tx.delete_state(key)
    return silence


def _over(s: Silence) -> dt.datetime:
    return dt.datetime.fromisoformat(s["ended"] or s["until"])


def end(store: Store, inv: Inventory, silence_id: str, by: str, now: dt.datetime) -> Silence:
    inv.contact(by)
    with store.transaction() as tx:
        silence: Silence | None = tx.get_state(keys.silence(silence_id))
        if silence is None:
            raise SilenceRefused(f"no silence {silence_id!r}")
        if silence["ended"] or dt.datetime.fromisoformat(silence["until"]) <= now:
            raise SilenceRefused(f"silence {silence_id!r} is over already")
        silence["ended"], silence["ended_by"] = now.isoformat(), by
        tx.append("silence.ended", silence_id, {"by": by, "system": silence["system"]})
        tx.set_state(keys.silence(silence_id), silence)
    return silence


def load(store: Store) -> list[Silence]:
    found: list[Silence] = list(store.states(keys.SILENCE).values())
    return sorted(found, key=lambda s: s["start"])


def is_active(s: Silence, now: dt.datetime) -> bool:
    return s["ended"] is None and \
        dt.datetime.fromisoformat(s["start"]) <= now < dt.datetime.fromisoformat(s["until"])


def active(store: Store, now: dt.datetime) -> list[Silence]:
    return [s for s in load(store) if is_active(s, now)]


def why(s: Silence) -> str:
    return f"Vigil silence {s['id']} by {s['by']}: {s['reason']}"
