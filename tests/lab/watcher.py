"""One `vigil watch` daemon over a private copy of the lab inventory, for lab tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT
from tests.receivers import SmtpReceiver, WebhookReceiver
from vigil import lab, lease
from vigil.store import Store

LIMIT = "payment-db*"


class Watch:
    """One `vigil watch` process at a time over a private copy of the lab inventory."""

    def __init__(self, tmp: Path, webhook: WebhookReceiver | None = None,
                 smtp: SmtpReceiver | None = None, *, limit: str = LIMIT,
                 observe_only: bool = False, site: dict[str, Any] | None = None,
                 store_url: str | None = None, extra: tuple[str, ...] = ()) -> None:
        self.inventory = tmp / "inv"
        self.extra = extra  # more `vigil watch` options (e.g. --serve)
        self.limit, self.observe_only = limit, observe_only
        shutil.copytree(ROOT / "inventory/lab", self.inventory)
        self.fallback = tmp / "fallback.log"
        test_vars: dict[str, Any] = {
            "vigil_lab_dir": str(lab.lab_dir()),
            "vigil_check_defaults": {"interval": 1, "timeout": 3},
            "vigil_escalation": {"open_after": 2, "recover_after": 2, "renotify_minutes": 600},
            **(site or {})}
        if webhook and smtp:  # people at real receivers instead of the lab's files
            test_vars["vigil_contacts"] = [
                {"id": "duty", "name": "值班员", "party": "finance",
                 "roles": ["implementation_team", "onsite_technician"],
                 "channels": [webhook.url]},
                {"id": "leader", "name": "领导小组", "party": "finance",
                 "roles": ["leadership_group"], "channels": [smtp.url("leader@lab.local")]},
                {"id": "backup-ops", "name": "备岗", "party": "finance",
                 "roles": ["implementation_team"], "channels": [f"file://{self.fallback}"]},
                # the database's owner (inventory/lab), reachable nowhere in these tests
                {"id": "lab-vendor", "name": "数据库厂商工程师", "party": "vendor",
                 "roles": ["vendor"], "channels": []},
            ]
        (self.inventory / "group_vars/all/zz-test.yml").write_text(
            yaml.safe_dump(test_vars, allow_unicode=True))
        self.store_path = tmp / "watch.db"
        self.store_url = store_url or str(self.store_path)  # a PostgreSQL URL to share one
        self.clock_file = tmp / "clock-offset"
        self.clock_file.write_text("0")
        self.log = (tmp / "watch.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "VIGIL_STORE": self.store_url,
                "VIGIL_SPOOL_DIR": str(self.inventory.parent / "spool"),
                "VIGIL_CLOCK_OFFSET_FILE": str(self.clock_file)}

    def start(self, group: int | None = None) -> None:
        """`group`: the daemon's group id, for a firewall rule that cuts it off alone."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vigil", "watch", "--inventory", str(self.inventory),
             "--limit", self.limit, *(["--observe-only"] if self.observe_only else []),
             *self.extra],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log, group=group)

    def kill(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGCONT)  # a frozen daemon dies too
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    @property
    def name(self) -> str:
        """Its name among the daemons sharing a store (vigil.lease.me)."""
        assert self.proc
        return f"{socket.gethostname()}:{self.proc.pid}"

    def stop(self) -> int:
        assert self.proc
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def jump(self, hours: float) -> None:
        self.clock_file.write_text(str(float(self.clock_file.read_text()) + hours * 3600))

    def store(self) -> Store:
        return Store(self.store_url)

    def open_incidents(self) -> list[dict]:
        return [i for i in self.store().states("incident:").values() if i["status"] == "open"]

    def vigil(self, *args: str, inventory: bool = True,
              stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a `vigil` command as a person would, against this daemon's store."""
        more = ["--inventory", str(self.inventory)] if inventory else []
        return subprocess.run([sys.executable, "-m", "vigil", *args, *more],
                              env={**self.env, "COLUMNS": "200"}, input=stdin,
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    def step(self, suffix: str) -> dict[str, Any] | None:
        hits = [r for k, r in self.store().states("step:").items() if k.endswith(suffix)]
        return hits[0] if hits else None

    def queued(self, channel_prefix: str = "") -> set[str]:
        return {e.subject for e in self.store().events(kind="message.queued")
                if e.data["contact"].startswith(channel_prefix)}


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for: {what}")


def leader(w: Watch) -> str | None:
    held, now = lease.current(w.store())
    return held.holder if held and held.expires > now else None


def stands_by(w: Watch) -> Callable[[], bool]:
    return lambda: any(m.name == w.name and not m.leading and m.heartbeat_age_s < 3
                       for m in lease.monitors(w.store())[0])


CUT_GID = 4242  # the group a daemon to be cut off runs as: a firewall rule matches it alone


class Cut:
    """A network cut between the daemons of one group and the store's PostgreSQL: their
    packets to it are dropped (no reset, no answer), as when a switch between them dies."""

    def __init__(self, gid: int = CUT_GID) -> None:
        self.rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "--dport", "5433", "-m", "owner",
                     "--gid-owner", str(gid), "-j", "DROP"]
        self.on = False

    def start(self) -> None:
        subprocess.run(["iptables", "-I", *self.rule], check=True)
        self.on = True

    def stop(self) -> None:
        if self.on:
            subprocess.run(["iptables", "-D", *self.rule], check=True)
            self.on = False
