"""The spool keeps what a daemon saw while the store was away, in order, across a crash
that cut its last line short."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from vigil.domain import FaultClass
from vigil.result import Result, Status
from vigil.spool import Spool


def result(check: str, status: Status) -> Result:
    return Result(check=check, kind="tcp", system="s", target="t",
                  fault_class=FaultClass.DATABASE, status=status, message="m")


def test_batches_come_back_in_order_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", "vm:1")
    assert not spool
    t0 = dt.datetime(2026, 12, 2, 8, tzinfo=dt.UTC)
    spool.add(t0, [result("a", Status.OK)])
    spool.add(t0 + dt.timedelta(seconds=5), [result("a", Status.CRITICAL),
                                             result("b", Status.OK)])
    spool.add(t0, [])  # nothing seen: nothing written
    with spool.path.open("a") as fh:
        fh.write('{"at": "2026-12-02T08:00:10+00:00", "results": [{"che')  # cut by a crash
    got = list(spool.batches())
    assert [(at, [(r.check, r.status) for r in rs]) for at, rs in got] == [
        (t0, [("a", Status.OK)]),
        (t0 + dt.timedelta(seconds=5), [("a", Status.CRITICAL), ("b", Status.OK)])]
    spool.clear()
    assert not spool and list(spool.batches()) == []
