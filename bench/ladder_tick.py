"""Ladder and outbox scale: 10,000 open incidents evaluated in one tick.

    python -m bench.ladder_tick [--incidents 10000]

Creates the incidents in a fresh SQLite store, loads them as the daemon does on start,
then times ticks: the first computes every incident's ladder (cached afterwards); the
next ones are the steady state, where nothing escalates. Checked against the truth: after
the ticks every incident is open at the mark the ladder's pure function gives for its
onset (the tick's caching and scheduling skip no escalation); exit 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.truth import Truth, add_arguments
from tests.conftest import ROOT
from vigil.alerting.incidents import Tracker, calendar_for
from vigil.alerting.ladder import reached
from vigil.inventory import load_inventory
from vigil.store import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=10000)
    add_arguments(parser)
    args = parser.parse_args()
    truth = Truth("ladder_tick", args.inject_mismatch)
    inv = load_inventory(ROOT / "inventory/lab")
    now = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "bench.db"))
        with store.transaction() as tx:
            for i in range(args.incidents):
                onset = now - dt.timedelta(minutes=i % 3000)
                inc_id = f"bench-{i}.database.{onset:%Y%m%dT%H%M%S}"
                mark = "IV+" if i % 3000 >= 240 else "IV"
                mark = "III" if i % 3000 >= 1440 else mark
                tx.set_state(f"incident:{inc_id}", {
                    "id": inc_id, "system": "payment-db", "fault_class": "database",
                    "party": "finance", "onset": onset.isoformat(), "opened_at": now.isoformat(),
                    "status": "open", "mark": mark, "checks": [], "cause": None,
                    "flapping": False, "detail": ["", ""], "told": ["lab-duty"],
                    "last_told": now.isoformat(), "reminders": 0})
        started = time.perf_counter()
        tracker = Tracker(inv, store)
        load_s = time.perf_counter() - started
        timings = []
        for _ in range(6):
            started = time.perf_counter()
            tracker.tick(now)
            timings.append(time.perf_counter() - started)
        truth.expect("incidents open", args.incidents, len(tracker.open))
        calendar, tz = calendar_for(inv), ZoneInfo(inv.site.timezone)
        wrong = [i for i in tracker.open.values() if i["mark"] != reached(
            dt.datetime.fromisoformat(i["onset"]), now, calendar, tz, inv.ladder).mark]
        truth.expect("incidents at the ladder's mark", [], [i["id"] for i in wrong[:5]])
    steady = sorted(timings[1:])
    print(f"open incidents: {len(tracker.open)}; loaded in {load_s * 1000:.0f} ms")
    print(f"first tick (computes every ladder): {timings[0] * 1000:.0f} ms")
    print(f"steady tick: median {steady[len(steady) // 2] * 1000:.1f} ms, "
          f"worst {steady[-1] * 1000:.1f} ms (target < 100 ms)")
    truth.done()


if __name__ == "__main__":
    main()
