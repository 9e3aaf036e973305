"""The duty console with a long history: the overview and an incident's page, timed over
real HTTP (uvicorn on loopback), with 10,000 open incidents and 1,000,000 events.

    python -m bench.console [--incidents 10000] [--events 1000000] [--store URL]

The store (a fresh SQLite file, or the PostgreSQL URL given, emptied first) gets the incidents, two
plan steps each, their events, and filler check-result events up to the count, the hash
chain intact. Vigil runs at its shipped defaults. Checked against the truth: the
overview's counts per level and of incidents not listed, and on each incident page its
steps and its timeline's events; exit 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete

from bench.truth import Truth, add_arguments
from tests.conftest import ROOT
from vigil import accounts, keys
from vigil.console import sessions
from vigil.console.server import config
from vigil.console.views import SHOWN
from vigil.domain import FaultClass
from vigil.inventory import load_inventory
from vigil.model import Inventory
from vigil.store import (
    GENESIS,
    Store,
    canonical,
    chain_hash,
    events_table,
    head_table,
    state_table,
)

MARKS = ("IV", "IV+", "III", "II", "I")
TARGET_MS = 300.0


def fill(store: Store, inv: Inventory, incidents: int, events: int,
         now: dt.datetime) -> tuple[dict[str, int], dict[str, int]]:
    """The history; returns the open incidents per level and each incident's event count."""
    steps = inv.site_runbook.steps(FaultClass.DATABASE, "IV")[:2]
    per_level: dict[str, int] = {}
    counts: dict[str, int] = {}
    # Each incident as the tracker writes it: its events, and its state rows carrying the
    # seq of the last of them (what the console's incremental refresh relies on).
    planned: list[tuple[str, str, dict[str, Any], str, list[tuple[str, Any]]]] = []
    for i in range(incidents):
        onset = now - dt.timedelta(minutes=5 + i % 5000)
        inc_id = f"bench-{i}.database.{onset:%Y%m%dT%H%M%S}"
        mark = MARKS[i % len(MARKS)]
        per_level[mark.rstrip("+")] = per_level.get(mark.rstrip("+"), 0) + 1
        at = onset.isoformat()
        planned.append(("incident.opened", inc_id, {"system": "payment-db", "onset": at}, at,
                        []))
        for step in steps:
            key = f"{inc_id}/IV/{step.id}"
            planned.append(("step.planned", key, {"incident": inc_id, "clause": step.clause},
                            at, [(keys.step(key), {
                                "key": key, "incident": inc_id, "level": "IV", "step": step.id,
                                "fault_class": "database", "clause": step.clause,
                                "kind": step.kind,
                                "status": "open" if step.kind == "manual" else "sent",
                                "attempts": 0, "approvals": [], "planned_at": at,
                                "not_before": at})]))
        planned.append(("incident.level", inc_id, {"mark": mark}, at, [(keys.incident(inc_id), {
            "id": inc_id, "system": "payment-db", "fault_class": "database",
            "party": "finance", "onset": at, "opened_at": at, "status": "open",
            "mark": mark, "checks": [], "cause": None, "flapping": False,
            "detail": ["", ""], "told": ["lab-duty"], "last_told": at, "reminders": 0})]))
        counts[inc_id] = 2 + len(steps)
    filler = max(0, events - len(planned))
    rows: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    seq, prev = 0, GENESIS
    with store.engine.begin() as conn:
        for table in (events_table, head_table, state_table):
            conn.execute(delete(table))

        def event(kind: str, subject: str, data: dict[str, Any], at: str) -> None:
            nonlocal seq, prev
            seq += 1
            data_json = json.dumps(data, sort_keys=True, ensure_ascii=False)
            digest = chain_hash(prev, canonical(seq, at, kind, subject, data_json))
            rows.append({"seq": seq, "at": at, "kind": kind, "subject": subject,
                         "data": data_json, "prev_hash": prev, "hash": digest})
            prev = digest
            if len(rows) >= 20000:
                conn.execute(events_table.insert(), rows)
                rows.clear()

        for k in range(filler):  # older check results first, then the incidents' own
            at = (now - dt.timedelta(days=30, seconds=-k)).isoformat()
            event("result", f"check-{k % 500}@10.0.{k % 250}.{k % 200}",
                  {"status": "ok" if k % 2 else "critical", "message": "filler"}, at)
        for kind, subject, data, at, set_states in planned:
            event(kind, subject, data, at)
            states += [{"key": key, "value": json.dumps(value, sort_keys=True,
                                                        ensure_ascii=False), "seq": seq}
                       for key, value in set_states]
        if rows:
            conn.execute(events_table.insert(), rows)
        conn.execute(state_table.insert(), states)
        conn.execute(head_table.insert().values(id=1, seq=seq, hash=prev))
    return per_level, counts


def timed(client: httpx.Client, path: str) -> tuple[float, str]:
    started = time.perf_counter()
    r = client.get(path)
    took = (time.perf_counter() - started) * 1000
    if r.status_code != 200:
        raise SystemExit(f"{path}: HTTP {r.status_code}")
    return took, r.text


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    return (f"{name}: p50 {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, max {ms[-1]:.0f} ms"
            f" over {len(ms)} requests ({'within' if p95 <= TARGET_MS else 'OVER'} the "
            f"{TARGET_MS:.0f} ms target)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=10000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--store", help="A PostgreSQL URL (default: a fresh SQLite file).")
    add_arguments(parser)
    args = parser.parse_args()
    truth = Truth("console", args.inject_mismatch)
    inv = load_inventory(ROOT / "inventory/lab")
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.store or str(Path(tmp) / "bench.db"))
        started = time.perf_counter()
        per_level, counts = fill(store, inv, args.incidents, args.events, now)
        print(f"store: {store.safe_url.split('@')[-1]}; {args.incidents} open incidents, "
              f"{args.events} events written in {time.perf_counter() - started:.0f} s")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        import uvicorn

        server = uvicorn.Server(config(inv, store, f"127.0.0.1:{port}"))
        threading.Thread(target=server.run, daemon=True).start()
        # Signed in as the duty engineer (the sign-in itself is not what is timed).
        accounts.set_password(store, inv, "lab-duty", "bench password", by="bench", now=now,
                              new=True)
        sid = sessions.start(store, "lab-duty", "console", "127.0.0.1", 12, now, "zh")
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                              cookies={sessions.COOKIE: sid}, timeout=30)
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        _, page = timed(client, "/")  # warm
        for mark in ("I", "II", "III", "IV"):
            shown = re.search(rf'id="count-{mark}">(\d+)<', page)
            truth.expect(f"overview: level {mark} count", per_level.get(mark, 0),
                         int(shown[1]) if shown else None)
        hidden = re.search(r"另有 (\d+) 个未列出", page)
        truth.expect("overview: incidents not listed", max(0, args.incidents - SHOWN),
                     int(hidden[1]) if hidden else 0)
        overview = [timed(client, "/")[0] for _ in range(args.requests)]
        ids = random.Random(7).sample(sorted(counts), min(args.requests, len(counts)))
        incident = []
        for inc_id in ids:
            took, page = timed(client, f"/incidents/{inc_id}")
            incident.append(took)
            timeline = page.split('id="timeline"', 1)[-1]
            truth.expect(f"{inc_id}: steps shown", 2, page.count("<tr data-step="))
            truth.expect(f"{inc_id}: timeline events", counts[inc_id],
                         timeline.count("<tr><td>"))
        server.should_exit = True
    print(summary("overview", overview))
    print(summary("incident page", incident))
    truth.done()


if __name__ == "__main__":
    main()
