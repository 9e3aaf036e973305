"""Drills as the tracker and the executor see them (P3.2.3): while a drill of a system
runs, an incident that opens on it is the drill's. It carries the drill's id, walks the
ladder faster by the drill's declared factor (never by moving the real clock), tells only
the drill's participants, and every message it causes starts with 【演练】 / [DRILL].
The drill's plan, run and record are `vigil.remediations.drills`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal, TypedDict

from vigil.alerting.ladder import Rung
from vigil.model import Contact
from vigil.store import Store, Tx

PREFIX = "drill:"  # state keys of drills: drill:<run id>


class Drill(TypedDict):
    id: str  # the run's id: <plan id>-<stamp>
    plan: str
    systems: list[str]
    fault_class: str
    participants: list[str]  # contact ids
    speed: float  # the ladder walked this many times faster, inside the drill only
    # healing: the drill's heal actions run; the systems' automatic steps wait meanwhile
    status: Literal["running", "healing", "ended"]
    started: str
    ended: str | None
    by: str


def key(drill_id: str) -> str:
    return f"{PREFIX}{drill_id}"


def running(store: Store | Tx) -> dict[str, Drill]:
    """System -> the drill running (or healing) on it."""
    out: dict[str, Drill] = {}
    for drill in store.states(PREFIX).values():
        if drill.get("status") in ("running", "healing"):
            out |= {system: drill for system in drill["systems"]}
    return out


def load(store: Store | Tx, drill_id: str) -> Drill | None:
    value: Drill | None = store.get_state(key(drill_id))
    return value


def hastened(ladder: list[Rung], onset: dt.datetime, speed: float) -> list[Rung]:
    """The ladder of a drill's incident: each rung reached `speed` times sooner after the
    onset (the plan's rungs and rules, on a faster clock)."""
    if speed == 1:
        return ladder
    return [dataclasses.replace(r, at=onset + (r.at - onset) / speed) for r in ladder]


def tag(title: str, lang: str) -> str:
    """A drill's message title: nobody mistakes it for a real fault."""
    return f"【演练】{title}" if lang != "en" else f"[DRILL] {title}"


def told(drill: Drill | None, contacts: list[Contact]) -> list[Contact]:
    """Of the people a message would reach, those it reaches in a drill: its
    participants only (parties outside the drill are not told)."""
    if drill is None:
        return contacts
    return [c for c in contacts if c.id in drill["participants"]]
