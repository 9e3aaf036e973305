"""A NUT server with a dummy UPS whose state the tests edit (external power, P4.3.1)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from vigil.lab.base import Component, Health
from vigil.lab.procs import LabError, alive, port_open, read_pid, run, stop, wait_for

PORT = 3493
UPS = "ups1"
ADMIN = ("vigil-admin", "lab-only-admin")

HEALTHY = {
    "device.mfr": "Vigil Lab", "device.model": "Dummy 3000", "ups.mfr": "Vigil Lab",
    "ups.model": "Dummy 3000", "ups.status": "OL", "battery.charge": "100",
    "battery.runtime": "3600", "ups.load": "23", "input.voltage": "230",
}


class NutServer(Component):
    name = "nut"

    @property
    def etc(self) -> Path:
        return self.dir / "etc"

    @property
    def state(self) -> Path:
        return self.dir / "state"

    @property
    def env(self) -> dict[str, str]:
        return {"NUT_CONFPATH": str(self.etc), "NUT_STATEPATH": str(self.state),
                "NUT_ALTPIDPATH": str(self.state)}

    def set_ups(self, values: dict[str, str], *, wait: bool = True) -> None:
        """Write the dummy UPS's variables and wait until upsd serves the new status.

        The driver re-reads its file when the file's modification time changes, in whole
        seconds: two writes within one second look like one. So each write moves the time
        forward, and a write the driver has not picked up after a while is made again."""
        merged = {**HEALTHY, **values}
        dev = self.etc / f"{UPS}.dev"
        for _attempt in range(6):
            before = dev.stat().st_mtime if dev.exists() else 0.0
            dev.write_text("".join(f"{k}: {v}\n" for k, v in merged.items()))
            stamp = max(time.time(), before + 1.0)
            os.utime(dev, (stamp, stamp))
            if not wait or not self._pids():
                return
            with contextlib.suppress(LabError):
                wait_for(lambda: self._var("ups.status") == merged["ups.status"],
                         f"UPS status {merged['ups.status']}", timeout=5)
                return
        raise LabError(f"upsd never served UPS status {merged['ups.status']}")

    def up(self) -> None:
        if self._pids() and port_open("127.0.0.1", PORT):
            self._heal()
            return
        self.etc.mkdir(exist_ok=True)
        self.state.mkdir(exist_ok=True)
        shutil.chown(self.state, "nut", "nut")
        self.state.chmod(0o770)
        (self.etc / "nut.conf").write_text("MODE=standalone\n")
        (self.etc / "ups.conf").write_text(
            f"[{UPS}]\n  driver = dummy-ups\n  port = {UPS}.dev\n  desc = \"Vigil lab UPS\"\n")
        (self.etc / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {PORT}\n")
        (self.etc / "upsd.users").write_text(
            f"[{ADMIN[0]}]\n  password = {ADMIN[1]}\n  actions = SET\n  instcmds = ALL\n")
        self.set_ups({}, wait=False)
        for f in self.etc.iterdir():
            shutil.chown(f, "root", "nut")
            f.chmod(0o640)
        self.etc.chmod(0o755)
        run(["upsdrvctl", "-u", "nut", "start"], env=self.env)
        # Debian's /usr/sbin/upsd is a wrapper that insists on /etc/nut/nut.conf.
        upsd = "/lib/nut/upsd" if Path("/lib/nut/upsd").exists() else "upsd"
        run([upsd, "-u", "nut"], env=self.env)
        wait_for(lambda: port_open("127.0.0.1", PORT), "upsd", timeout=20)
        wait_for(self._online, "dummy UPS status", timeout=20)

    def _heal(self) -> None:
        """Put the dummy UPS back on line power after a drill, and wait until upsd says so."""
        self.set_ups({})

    def _var(self, name: str) -> str:
        out = run(["upsc", f"{UPS}@127.0.0.1:{PORT}", name], check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    def _online(self) -> bool:
        out = run(["upsc", f"{UPS}@127.0.0.1:{PORT}", "ups.status"], check=False)
        return out.returncode == 0 and out.stdout.strip() not in ("", "WAIT")

    def _pids(self) -> dict[str, int]:
        found = {}
        for name, expect in (("upsd", "upsd"), (f"dummy-ups-{UPS}", "dummy-ups")):
            pid = read_pid(self.state / f"{name}.pid")
            if alive(pid) and pid:
                found[expect] = pid
        return found

    def down(self) -> None:
        for expect, pid in self._pids().items():
            stop(pid, expect)

    def status(self) -> list[Health]:
        ok = bool(self._pids()) and port_open("127.0.0.1", PORT)
        return [Health("nut-upsd", ok, f"{UPS}@127.0.0.1:{PORT}" if ok else "stopped")]
