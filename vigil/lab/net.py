"""Test hosts in network namespaces: SSH hosts and a site router with two lines.

    monitoring server (root ns) 10.77.0.254 ── bridge vgl-br0 ──┬── vgl-app1   10.77.0.11 (sshd)
                                                                 └── vgl-router 10.77.0.1  (sshd)
    vgl-router ── primary0 10.78.1.1/30 ═ primary line ═ 10.78.1.2 wan-primary ─┐ vgl-upstream
               └─ backup0  10.78.2.1/30 ═ backup line  ═ 10.78.2.2 wan-backup ──┘ 10.78.0.1

Traffic stays inside these namespaces. A line is cut by taking its far end down.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from vigil.lab.base import Component, Health
from vigil.lab.procs import LabError, alive, port_open, read_pid, run, spawn, stop, wait_for

BRIDGE = "vgl-br0"
MONITOR_ADDR = "10.77.0.254"
UPSTREAM = "vgl-upstream"
UPSTREAM_ADDR = "10.78.0.1"
ROUTER = "vgl-router"
VOUCHER_PORT = 8080


@dataclass(frozen=True)
class SshHost:
    netns: str
    address: str


SSH_HOSTS = (SshHost("vgl-app1", "10.77.0.11"), SshHost(ROUTER, "10.77.0.1"))
# line name -> (router side, router address, upstream side, upstream address)
LINES = {
    "primary": ("primary0", "10.78.1.1", "wan-primary", "10.78.1.2"),
    "backup": ("backup0", "10.78.2.1", "wan-backup", "10.78.2.2"),
}


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    cmd = ["ip", "-n", netns, *args] if netns else ["ip", *args]
    return run(cmd, check=check).stdout


def sshd_config(address: str, host_key: Path, authorized_keys: Path, pid_file: Path) -> str:
    """A lab host's sshd: root by key only, on its address, with files outside /etc."""
    return "\n".join([
        f"ListenAddress {address}", "Port 22", f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
        f"PidFile {pid_file}", "Subsystem sftp internal-sftp", ""])


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


class LabNetwork(Component):
    name = "net"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def client_key(self) -> Path:
        return self.dir / "id_ed25519"

    def up(self) -> None:
        self._bridge()
        for host in SSH_HOSTS:
            self._namespace(host)
        self._lines()
        self._ssh_keys()
        for host in SSH_HOSTS:
            self._sshd(host)
        self._voucher_service()

    def _web_pid(self) -> int | None:
        pid = read_pid(self.dir / "voucher-service.pid")
        return pid if alive(pid) else None

    @property
    def voucher_script(self) -> Path:
        return self.dir / "voucher-service"

    def _voucher_service(self) -> None:
        """The voucher library's health endpoint on vgl-app1 (the vendor's software stands
        behind such an endpoint on a real site), run by an init-style script that the
        service_restart role can also call over SSH on lab-app1."""
        if self._web_pid():
            return
        www = self.dir / "www"
        www.mkdir(exist_ok=True)
        (www / "health").write_text("OK voucher-library\n")
        host = SSH_HOSTS[0]
        pid_file, log = self.dir / "voucher-service.pid", self.dir / "voucher-service.log"
        self.voucher_script.write_text(f"""#!/bin/sh
# The lab's voucher library stand-in; run inside {host.netns} (its SSH host lab-app1).
# Ours only if its pid still runs http.server: a pid left over may name another process.
ours() {{ [ -f {pid_file} ] && grep -q http.server "/proc/$(cat {pid_file})/cmdline" 2>/dev/null; }}
case "$1" in
  start)
    ours && exit 0
    setsid nohup {sys.executable} -m http.server {VOUCHER_PORT} --bind {host.address} \\
      --directory {www} >> {log} 2>&1 < /dev/null &
    echo $! > {pid_file} ;;
  stop)
    ours && kill "$(cat {pid_file})" 2>/dev/null; rm -f {pid_file} ;;
  restart)
    "$0" stop; sleep 0.2; "$0" start ;;
  *) echo "usage: $0 start|stop|restart" >&2; exit 2 ;;
esac
""")
        self.voucher_script.chmod(0o755)
        run(["ip", "netns", "exec", host.netns, str(self.voucher_script), "start"])
        wait_for(lambda: port_open(host.address, VOUCHER_PORT), "voucher service", 20)

    def stop_voucher_service(self) -> None:
        stop(self._web_pid(), "http.server")

    def _bridge(self) -> None:
        if not Path(f"/sys/class/net/{BRIDGE}").exists():
            ip("link", "add", BRIDGE, "type", "bridge")
        if f"{MONITOR_ADDR}/24" not in ip("-o", "addr", "show", "dev", BRIDGE):
            ip("addr", "add", f"{MONITOR_ADDR}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")

    def _namespace(self, host: SshHost) -> None:
        if not netns_exists(host.netns):
            ip("netns", "add", host.netns)
        ip("link", "set", "lo", "up", netns=host.netns)
        outer = f"{host.netns[:11]}-m"
        inner_missing = "does not exist" in run(["ip", "-n", host.netns, "link", "show",
                                                 "mgmt0"], check=False).stderr
        if inner_missing and Path(f"/sys/class/net/{outer}").exists():
            # Its peer lives in a namespace of an earlier lab that some process kept alive.
            ip("link", "del", outer)
        if not Path(f"/sys/class/net/{outer}").exists():
            ip("link", "add", outer, "type", "veth", "peer", "name", "mgmt0",
               "netns", host.netns)
            ip("addr", "add", f"{host.address}/24", "dev", "mgmt0", netns=host.netns)
        ip("link", "set", outer, "master", BRIDGE)  # again: a bridge rebuilt loses its ports
        ip("link", "set", outer, "up")
        ip("link", "set", "mgmt0", "up", netns=host.netns)

    def _lines(self) -> None:
        if not netns_exists(UPSTREAM):
            ip("netns", "add", UPSTREAM)
            ip("link", "set", "lo", "up", netns=UPSTREAM)
            ip("addr", "add", f"{UPSTREAM_ADDR}/32", "dev", "lo", netns=UPSTREAM)
        for inner, inner_addr, outer, outer_addr in LINES.values():
            if "does not exist" in run(["ip", "-n", ROUTER, "link", "show", inner],
                                       check=False).stderr:
                ip("link", "add", inner, "netns", ROUTER, "type", "veth", "peer", "name",
                   outer, "netns", UPSTREAM)
                ip("addr", "add", f"{inner_addr}/30", "dev", inner, netns=ROUTER)
                ip("addr", "add", f"{outer_addr}/30", "dev", outer, netns=UPSTREAM)
            ip("link", "set", inner, "up", netns=ROUTER)
            ip("link", "set", outer, "up", netns=UPSTREAM)
        primary_gw = LINES["primary"][3]
        ip("route", "replace", "default", "via", primary_gw, "dev", LINES["primary"][0],
           netns=ROUTER)

    def _ssh_keys(self) -> None:
        if not self.client_key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vigil-lab",
                 "-f", str(self.client_key)])
        (self.dir / "authorized_keys").write_text(
            Path(f"{self.client_key}.pub").read_text())
        lines = []
        for host in SSH_HOSTS:
            key = self.dir / f"{host.netns}_host_ed25519"
            if not key.exists():
                run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.netns,
                     "-f", str(key)])
            kind, blob = Path(f"{key}.pub").read_text().split()[:2]
            lines.append(f"{host.address} {kind} {blob}\n")
        self.known_hosts.write_text("".join(lines))

    def _sshd_config(self, host: SshHost) -> Path:
        cfg = self.dir / f"{host.netns}_sshd_config"
        cfg.write_text(sshd_config(host.address, self.dir / f"{host.netns}_host_ed25519",
                                   self.dir / "authorized_keys",
                                   self.dir / f"{host.netns}_sshd.pid"))
        return cfg

    def _sshd_pid(self, host: SshHost) -> int | None:
        pid = read_pid(self.dir / f"{host.netns}_sshd.spawned")
        return pid if alive(pid) else None

    def _sshd(self, host: SshHost) -> None:
        if self._sshd_pid(host):
            return
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        cfg = self._sshd_config(host)
        pid = spawn([sshd, "-D", "-f", str(cfg), "-E", str(self.dir / f"{host.netns}_sshd.log")],
                    self.dir / f"{host.netns}_sshd.out", netns=host.netns)
        (self.dir / f"{host.netns}_sshd.spawned").write_text(f"{pid}\n")
        wait_for(lambda: port_open(host.address, 22), f"sshd in {host.netns}", 20)

    def set_line(self, line: str, up: bool) -> None:
        """Cut (or restore) a line at its far end, as a broken carrier circuit would."""
        if line not in LINES:
            raise LabError(f"no line {line!r} (lines: {', '.join(LINES)})")
        ip("link", "set", LINES[line][2], "up" if up else "down", netns=UPSTREAM)

    def down(self) -> None:
        self.stop_voucher_service()
        for host in SSH_HOSTS:
            stop(self._sshd_pid(host), "sshd")
        for ns in (UPSTREAM, *(h.netns for h in SSH_HOSTS)):
            if netns_exists(ns):
                # Whatever still runs inside (an SSH session Ansible keeps open, say) would
                # keep the namespace and its links alive after `ip netns del`.
                for pid in run(["ip", "netns", "pids", ns], check=False).stdout.split():
                    stop(int(pid), "", timeout=5)
                ip("netns", "del", ns, check=False)
        for host in SSH_HOSTS:
            if Path(f"/sys/class/net/{host.netns[:11]}-m").exists():
                ip("link", "del", f"{host.netns[:11]}-m", check=False)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            ip("link", "del", BRIDGE, check=False)

    def status(self) -> list[Health]:
        out = []
        for host in SSH_HOSTS:
            ok = bool(self._sshd_pid(host)) and port_open(host.address, 22)
            out.append(Health(f"ssh-{host.netns}", ok, f"{host.address}:22" if ok else "stopped"))
        web = bool(self._web_pid()) and port_open(SSH_HOSTS[0].address, VOUCHER_PORT)
        out.append(Health("voucher-service", web,
                          f"http://{SSH_HOSTS[0].address}:{VOUCHER_PORT}/health" if web
                          else "stopped"))
        if netns_exists(ROUTER):
            for line, (inner, *_rest) in LINES.items():
                state = run(["ip", "-n", ROUTER, "-br", "link", "show", inner],
                            check=False).stdout.split()
                carrier = len(state) > 1 and state[1] == "UP"
                out.append(Health(f"line-{line}", carrier, " ".join(state[1:2]) or "missing"))
        return out
