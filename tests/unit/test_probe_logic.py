"""Probe logic that the lab cannot fault for real (a drifting clock) or that is pure."""

from __future__ import annotations

from vigil.checks.host import HostParams, evaluate, parse_remote
from vigil.checks.links import LinksParams, LinksProbe
from vigil.domain import FaultClass
from vigil.model import CheckSpec
from vigil.result import Result, Status

REMOTE = """@stat1
cpu  100 0 100 800 0 0 0 0 0 0
@stat2
cpu  150 0 150 900 0 0 0 0 0 0
@loadavg
0.50 0.40 0.30 1/100 1234
@nproc
2
@meminfo
MemTotal:       1000000 kB
MemAvailable:    250000 kB
@df
Filesystem     1-blocks      Used Available Capacity Mounted on
/dev/vda   100 97 3 97% /
@procs
sshd
voucherd
@uptime
120.5 200.0
@time
1000007.0
"""


def _spec(params: object, kind: str = "host") -> CheckSpec:
    return CheckSpec(name="h.host", kind=kind, system="h", fault_class=FaultClass.INFRASTRUCTURE,
                     host="h", address="192.0.2.5", params=params)


def test_remote_facts_are_parsed_and_graded() -> None:
    facts = parse_remote(REMOTE, local_midpoint=1000000.0)
    assert round(facts.cpu_percent) == 50 and facts.cores == 2
    assert facts.memory_percent == 75.0 and facts.disks == {"/": 97.0}
    assert facts.clock_offset_s == 7.0 and facts.processes == {"sshd", "voucherd"}
    result = evaluate(_spec(HostParams(processes=["voucherd", "ca-seal"])),
                      HostParams(processes=["voucherd", "ca-seal"]), facts)
    assert result.status is Status.CRITICAL
    for text in ("disk / 97%", "process ca-seal not running", "clock off by +7.0s",
                 "rebooted 2 min ago"):
        assert text in result.message
    assert "电子签名验证可能失败" in result.message_zh
    assert result.metrics["clock_offset_s"] == 7.0


def test_unreadable_remote_output_is_unknown_not_a_crash() -> None:
    facts = parse_remote("@loadavg\n@nproc\n1\n", local_midpoint=0)
    result = evaluate(_spec(HostParams()), HostParams(reboot_window_s=0), facts)
    assert result.status is Status.UNKNOWN and "unreadable" in result.message


def _links(out: str) -> tuple[Status, str, object]:
    params = LinksParams(lines=[{"name": "primary", "interface": "p0", "target": "x"},
                                {"name": "backup", "interface": "b0", "target": "x"}])
    r = LinksProbe().evaluate(_spec(params, "links"), params, out)
    return r.status, r.message, r.metrics["active_line"]


def _ping(name: str, got: int) -> str:
    return (f"@{name}\n3 packets transmitted, {got} received, {100 - got * 33}% packet loss\n"
            + ("rtt min/avg/max/mdev = 0.1/0.2/0.3/0.1 ms\n" if got else ""))


def test_failed_over_to_backup_then_primary_back() -> None:
    status, message, active = _links(_ping("primary", 0) + _ping("backup", 3)
                                     + "@route\ndefault via 10.0.0.1 dev b0 \n")
    assert status is Status.CRITICAL and active == "backup"
    assert "traffic already on the backup line" in message
    status, message, _ = _links(_ping("primary", 3) + _ping("backup", 3)
                                + "@route\ndefault via 10.0.0.1 dev b0 \n")
    assert status is Status.WARNING and "fail back" in message


def test_a_slow_round_trip_is_not_blamed_on_the_clock() -> None:
    """A busy machine stretched the SSH round trip to 1.2 s: a 0.5 s offset lies within
    what the trip explains (±0.6 s); 7 s does not, less the trip's half."""
    slow = parse_remote(REMOTE.replace("1000007.0", "1000000.5"), local_midpoint=1000000.0)
    slow.clock_uncertainty_s = 0.6
    ok = evaluate(_spec(HostParams()), HostParams(reboot_window_s=0), slow)
    assert ok.metrics["clock_offset_s"] == 0.5 and "clock" not in ok.message
    drifted = parse_remote(REMOTE, local_midpoint=1000000.0)
    drifted.clock_uncertainty_s = 0.6
    bad = evaluate(_spec(HostParams()), HostParams(reboot_window_s=0), drifted)
    assert bad.status is Status.CRITICAL and "clock off by +7.0s" in bad.message


def test_every_kind_the_registry_names_loads_a_probe_of_that_kind() -> None:
    from vigil.checks.registry import known_kinds, probe_for

    assert {probe_for(kind).kind for kind in known_kinds()} == set(known_kinds())


def _pair(sync_names: str, replicas: list[dict[str, object]], standby_up: bool,
          disk_full: str = "") -> Result:
    from vigil.checks.dbpair import DbPairParams, DbPairProbe, NodeState

    params = DbPairParams(nodes=[{"name": "pg-a", "address": "192.0.2.1"},
                                 {"name": "pg-b", "address": "192.0.2.2"}])
    primary = NodeState("pg-a", up=True, in_recovery=False, replicas=replicas,
                        sync_names=sync_names, disk_full=disk_full)
    standby = (NodeState("pg-b", up=True, in_recovery=True, streaming=True, replay_lsn="0/1")
               if standby_up else NodeState("pg-b", up=False, error="connection refused"))
    return DbPairProbe().evaluate(_spec(params, "dbpair"), params, [primary, standby])


def test_a_primary_whose_commits_wait_for_a_missing_synchronous_standby_says_so() -> None:
    waiting = _pair("*", [], standby_up=False)
    assert waiting.status is Status.CRITICAL
    assert "commits on primary pg-a wait" in waiting.message
    assert "提交在等待" in waiting.message_zh
    streaming = {"name": "pg-b", "client": "192.0.2.2", "state": "streaming", "lag_bytes": 0,
                 "lag_seconds": 0.0, "sync_state": "sync"}
    fine = _pair("*", [streaming], standby_up=True)
    assert fine.status is Status.OK, fine.message
    # asynchronous replication: a lost standby is critical, but nothing waits
    lost = _pair("", [], standby_up=False)
    assert "wait" not in lost.message and "commits_wait" not in lost.metrics


def test_a_primary_that_answers_but_cannot_write_for_a_full_disk_is_critical() -> None:
    streaming = {"name": "pg-b", "client": "192.0.2.2", "state": "streaming", "lag_bytes": 0,
                 "lag_seconds": 0.0, "sync_state": "async"}
    full = _pair("", [streaming], standby_up=True, disk_full="could not write to file "
                 '"base/pgsql_tmp/pgsql_tmp1.0": No space left on device')
    assert full.status is Status.CRITICAL and full.metrics["disk_full:pg-a"] is True
    assert "primary pg-a cannot write: its disk is full" in full.message
    assert "No space left on device" in full.message and "磁盘已满" in full.message_zh
    fine = _pair("", [streaming], standby_up=True)
    assert fine.status is Status.OK and fine.metrics["disk_full:pg-a"] is False
