"""An IPMI BMC for a lab host: OpenIPMI's `ipmi_sim` on a loopback port, whose chassis
power control runs a script that really powers the "host" off — every process in its
network namespace killed and its link taken down — or on again (the link back up; like
a real machine, nothing is started on it). Fenced through ClusterLabs' `fence_ipmilan`
exactly as a county's database server would be through its iLO / iDRAC / IMM.

    Bmc(folder, "vbf-a", "vbf-a0", 6231, "bmc-Secret-16").start()  # IPMI 1.5: <= 16 bytes
    fence_ipmilan --ip=127.0.0.1 --ipport=6231 --username=admin --password=… --action=off
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import psutil

from vigil.lab.procs import LabError, alive, read_pid, spawn, stop, wait_for

USER = "admin"

_EMU = """mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
"""


class Bmc:
    def __init__(self, folder: Path, netns: str, link: str, port: int, password: str,
                 address: str = "127.0.0.1") -> None:
        self.dir, self.netns, self.link, self.port = folder, netns, link, port
        self.address = address  # where it listens (ipmi_sim takes one address)
        self.password = password
        self.pid_file = folder / "ipmi_sim.pid"
        self.power_file = folder / "power"  # what the chassis says: 1 on, 0 off

    @property
    def script(self) -> Path:
        return self.dir / "chassis"

    def start(self) -> None:
        if holder := self.port_holder():
            raise LabError(f"UDP port {self.port} for the BMC of {self.netns} is held by "
                           f"{holder}: a simulator left by an earlier run? Stop it first")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.power_file.write_text("1")
        self.script.write_text(f"""#!/bin/sh
# ipmi_sim calls: chassis get power | chassis set power 0|1 (the lab host {self.netns}).
case "$1 $2" in
  "get power") echo "power:$(cat {self.power_file})" ;;
  "set power")
    if [ "$3" = 0 ]; then
      ip netns pids {self.netns} | xargs -r kill -9
      ip -n {self.netns} link set {self.link} down
      echo 0 > {self.power_file}
    else
      ip -n {self.netns} link set {self.link} up
      echo 1 > {self.power_file}
    fi ;;
esac
""")
        self.script.chmod(0o755)
        (self.dir / "cmds.emu").write_text(_EMU)
        lan = self.dir / "lan.conf"
        lan.write_text(f"""name "{self.netns}"
set_working_mc 0x20
  startlan 1
    addr {self.address} {self.port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{self.script}"
  user 2 true "{USER}" "{self.password}" admin 10 none md2 md5 straight
""")
        lan.chmod(0o600)  # the BMC's password
        (self.dir / "state").mkdir(exist_ok=True)
        pid = spawn(["ipmi_sim", "-c", str(lan), "-f", str(self.dir / "cmds.emu"), "-n",
                     "-s", str(self.dir / "state")], self.dir / "ipmi_sim.log")
        self.pid_file.write_text(str(pid))
        wait_for(self.answers, f"the BMC of {self.netns} on port {self.port}", timeout=20)

    def port_holder(self) -> str | None:
        """Which process already holds this BMC's port. One left by a run that died before
        its teardown would answer `fence_ipmilan` in the new one's place, with the same
        password, and power off nothing of the new run."""
        for conn in psutil.net_connections("udp"):
            if conn.laddr and conn.laddr.port == self.port:
                if conn.pid is None:  # not ours to see without root
                    return "another user's process"
                try:
                    return f"process {conn.pid} ({' '.join(psutil.Process(conn.pid).cmdline())})"
                except psutil.Error:
                    return f"process {conn.pid}"
        return None

    def answers(self) -> bool:
        if not alive(read_pid(self.pid_file)):
            log = (self.dir / "ipmi_sim.log").read_text(errors="replace")[-500:]
            raise LabError(f"ipmi_sim for {self.netns} exited: {log}")
        proc = subprocess.run(["ipmitool", "-I", "lan", "-H", self.address, "-p", str(self.port),
                               "-U", USER, "-P", self.password, "chassis", "power", "status"],
                              capture_output=True, text=True, timeout=10)
        return proc.returncode == 0

    @property
    def powered(self) -> bool:
        return self.power_file.read_text().strip() == "1"

    def stop(self) -> None:
        # waited for: the next run's BMC takes this port at once
        stop(read_pid(self.pid_file), "ipmi_sim", sig=signal.SIGKILL, timeout=10)
        self.pid_file.unlink(missing_ok=True)
