"""`vigil check` on the real lab: every component reachable; a stopped one shows."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.conftest import VigilRunner
from tests.lab.watcher import wait_until
from vigil import lab

pytestmark = pytest.mark.lab


def _results(vigil: VigilRunner, *args: str) -> tuple[int, dict[str, dict]]:
    run = vigil("check", "--inventory", "inventory/lab", "--json", *args)
    assert "Traceback" not in run.err
    return run.code, {r["check"]: r for r in json.loads(run.out)}


@pytest.mark.usefixtures("lab_up")
def test_every_lab_component_is_reachable(vigil: VigilRunner) -> None:
    code, results = _results(vigil)
    expected = {"payment-db.primary-port", "payment-db.standby-port", "mq-broker.amqp",
                "mq-broker.management", "ups.upsd", "ca-seal.tls", "voucher-library.ssh",
                "finance-router.ssh", "monitoring-server.host"}
    assert expected <= set(results)
    not_ok = {k: r["message"] for k, r in results.items() if r["status"] != "ok"}
    assert not not_ok and code == 0


@pytest.mark.usefixtures("restore_lab")
def test_stopping_the_standby_turns_its_check_critical_and_is_recorded(
        vigil: VigilRunner) -> None:
    # A baseline first: on a loaded machine one probe may time out (unknown) once; the
    # test is about the standby's transition, so it waits for a healthy lab to start from.
    baseline: dict[str, str] = {}

    def healthy() -> bool:
        code, results = _results(vigil)
        baseline.update({k: r["message"] for k, r in results.items() if r["status"] != "ok"})
        return code == 0

    try:
        wait_until("every lab check ok", healthy, timeout=60)
    finally:
        print("not ok before the standby was stopped:", baseline)
    lab.component("pg").stop_node("standby")  # type: ignore[attr-defined]

    code, results = _results(vigil)
    standby = results["payment-db.standby-port"]
    assert standby["status"] == "critical" and standby["fault_class"] == "database"
    assert "refused" in standby["message"].lower()
    assert results["payment-db.primary-port"]["status"] == "ok"
    assert code == 2  # Nagios: critical

    events = json.loads(vigil("events", "list", "--json", "--kind", "result").out)
    transitions = [(e["data"]["previous"], e["data"]["status"]) for e in events
                   if e["data"]["check"] == "payment-db.standby-port"]
    assert transitions[0][0] is None and transitions[-1] == ("ok", "critical")
    assert all(a[1] == b[0] for a, b in itertools.pairwise(transitions))
    assert vigil("events", "verify").code == 0


@pytest.mark.usefixtures("restore_lab")
def test_cutting_the_ssh_host_network_is_a_result_not_a_crash(vigil: VigilRunner) -> None:
    from vigil.lab.net import ip

    ip("link", "set", "mgmt0", "down", netns="vgl-app1")
    try:
        code, results = _results(vigil, "--limit", "voucher-library")
    finally:
        ip("link", "set", "mgmt0", "up", netns="vgl-app1")
    assert results and code in (2, 3)
    for result in results.values():  # tcp, http and SSH host checks alike
        assert result["status"] in ("critical", "unknown"), result
