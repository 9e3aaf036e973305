"""The deployed monitoring server: the daemon under systemd answers /metrics, pages, and is
brought back after kill -9 or a hang (SIGSTOP, caught by the watchdog); stop is clean."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

DEADLINE_S = 90  # a restart is RestartSec=2 (kill) or WatchdogSec=10 (hang) plus start-up


def wait_for(what: str, probe: Callable[[], Any], timeout: float = DEADLINE_S) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.5)


def main_pid(host: Any) -> int:
    return int(host.check_output("systemctl show -p MainPID --value vigil"))


def events(host: Any, kind: str) -> list[dict[str, Any]]:
    cmd = host.run(f"vigil events list --kind {kind} --json")
    assert cmd.rc == 0, cmd.stderr
    return json.loads(cmd.stdout)  # type: ignore[no-any-return]


def running_again(host: Any, old_pid: int, started_before: int) -> bool:
    pid = main_pid(host)
    return (pid not in (0, old_pid) and host.service("vigil").is_running
            and len(events(host, "daemon.started")) > started_before)


def test_the_service_runs_as_its_own_user_and_answers_metrics(host: Any) -> None:
    assert host.service("vigil").is_enabled
    wait_for("the unit active", lambda: host.service("vigil").is_running)
    assert host.process.get(pid=main_pid(host)).user == "vigil"
    out = wait_for("/metrics", lambda: host.run("curl -fsS http://127.0.0.1:9464/metrics").stdout)
    assert "vigil_check_runs_total" in out


def test_the_store_is_postgresql_and_its_password_is_not_world_readable(host: Any) -> None:
    env = host.file("/etc/vigil/vigil.env")
    assert env.mode == 0o640 and env.group == "vigil"
    assert "VIGIL_STORE=postgresql+psycopg://vigil:" in env.content_string
    # The password never shows on the daemon's command line.
    assert "molecule-only" not in host.check_output("ps -eo args")


def test_the_daemon_pages_for_a_port_that_is_down(host: Any) -> None:
    wait_for("the page in the message file",
             lambda: "payment-gateway" in host.run("cat /var/lib/vigil/messages.log").stdout)


def test_kill_9_is_followed_by_a_restart_and_daemon_started(host: Any) -> None:
    wait_for("the unit active", lambda: host.service("vigil").is_running)
    pid, before = main_pid(host), len(events(host, "daemon.started"))
    host.run(f"kill -9 {pid}")
    wait_for("a new daemon", lambda: running_again(host, pid, before))


def test_a_hung_daemon_is_restarted_by_the_watchdog(host: Any) -> None:
    wait_for("the unit active", lambda: host.service("vigil").is_running)
    pid, before = main_pid(host), len(events(host, "daemon.started"))
    host.run(f"kill -STOP {pid}")
    wait_for("a new daemon after the watchdog", lambda: running_again(host, pid, before))
    log = host.check_output("journalctl -u vigil --no-pager -n 200")
    assert "Watchdog timeout" in log


def test_systemctl_stop_ends_it_cleanly(host: Any) -> None:
    wait_for("the unit active", lambda: host.service("vigil").is_running)
    stopped_before = len(events(host, "daemon.stopped"))
    host.run("systemctl stop vigil")
    try:
        assert host.check_output("systemctl show -p Result --value vigil") == "success"
        assert host.check_output("systemctl show -p ActiveState --value vigil") == "inactive"
        assert len(events(host, "daemon.stopped")) == stopped_before + 1
    finally:
        host.run("systemctl start vigil")
