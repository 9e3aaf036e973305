"""The Result model, the worst-of rule, and the runner's timeouts."""

from __future__ import annotations

import json
import threading
import time

import pytest

from vigil.checks import registry
from vigil.checks.base import Probe, ProbeParams
from vigil.checks.cycle import run_checks
from vigil.domain import FaultClass
from vigil.model import CheckSpec
from vigil.result import Result, Status, worst


def test_exit_codes_follow_nagios() -> None:
    assert [s.exit_code for s in Status] == [0, 1, 2, 3]


@pytest.mark.parametrize(("statuses", "expected"), [
    ([], Status.OK),
    ([Status.OK, Status.WARNING], Status.WARNING),
    ([Status.WARNING, Status.UNKNOWN], Status.UNKNOWN),
    ([Status.UNKNOWN, Status.CRITICAL, Status.OK], Status.CRITICAL),
])
def test_worst(statuses: list[Status], expected: Status) -> None:
    assert worst(statuses) is expected


def test_result_json_round_trip_keeps_fault_class_and_metrics() -> None:
    r = Result(check="db.pair", kind="dbpair", system="db", target="127.0.0.1:5433",
               fault_class=FaultClass.DATABASE, status=Status.CRITICAL,
               message="two primaries", metrics={"primaries": 2, "lag_bytes": None})
    data = json.loads(r.model_dump_json())
    assert data["fault_class"] == "database" and data["status"] == "critical"
    assert data["observed_at"].endswith("Z")
    again = Result.model_validate(data)
    assert again == r and again.key == "db.pair@127.0.0.1:5433"
    assert FaultClass.DATABASE.clause == "P4.3.2"


class _SlowParams(ProbeParams):
    seconds: float = 0


class _SlowProbe(Probe):
    kind = "slow-test"
    Params = _SlowParams
    started = threading.Event()

    def run(self, check: CheckSpec) -> Result:
        self.started.set()
        if check.params.seconds < 0:
            raise RuntimeError("probe bug")
        time.sleep(check.params.seconds)
        return check.result(Status.OK, "done")


@pytest.fixture
def slow_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.PROBES, "slow-test", _SlowProbe())


def _spec(name: str, seconds: float, timeout: float = 0.3) -> CheckSpec:
    return CheckSpec(name=name, kind="slow-test", system="s", fault_class=FaultClass.CORE,
                     host="h", address="h", params=_SlowParams(seconds=seconds),
                     timeout_s=timeout)


@pytest.mark.usefixtures("slow_probe")
def test_a_hanging_probe_is_unknown_and_does_not_hold_the_others() -> None:
    checks = [_spec("hangs", 30), _spec("quick-1", 0), _spec("quick-2", 0)]
    started = time.monotonic()
    results = run_checks(checks, concurrency=2)
    elapsed = time.monotonic() - started
    assert [r.check for r in results] == ["hangs", "quick-1", "quick-2"]
    assert results[0].status is Status.UNKNOWN and "timeout" in results[0].message
    assert [r.status for r in results[1:]] == [Status.OK, Status.OK]
    assert elapsed < 5, "a hung probe must be abandoned at its timeout, not waited for"


@pytest.mark.usefixtures("slow_probe")
def test_a_crashing_probe_is_an_unknown_result() -> None:
    (result,) = run_checks([_spec("buggy", -1)])
    assert result.status is Status.UNKNOWN
    assert "RuntimeError: probe bug" in result.message
