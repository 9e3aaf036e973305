"""Ladder and outbox scale: 10,000 open incidents evaluated in one tick.

    python -m bench.ladder_tick [--incidents 10000]

Creates the incidents in a fresh SQLite store, loads them as the daemon does on start,
then times ticks: the first computes every incident's ladder (cached afterwards); the
next ones are the steady state, where nothing escalates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from tests.conftest import ROOT
from vigil.alerting.incidents import Tracker
from vigil.inventory import load_inventory
from vigil.store import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=10000)
    args = parser.parse_args()
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
    steady = sorted(timings[1:])
    print(f"open incidents: {len(tracker.open)}; loaded in {load_s * 1000:.0f} ms")
    print(f"first tick (computes every ladder): {timings[0] * 1000:.0f} ms")
    print(f"steady tick: median {steady[len(steady) // 2] * 1000:.1f} ms, "
          f"worst {steady[-1] * 1000:.1f} ms (target < 100 ms)")


if __name__ == "__main__":
    main()
