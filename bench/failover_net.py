"""A database pair whose nodes are hosts of their own: PostgreSQL 15 in network namespaces,
each with a BMC (`vigil.lab.bmc`), so that every way a primary fails is real for every
connection — clients, replication, the monitoring server, the fence path.

    monitoring server (root ns) 10.79.0.254 ── bridge vbf-br0 ──┬── vbf-a 10.79.0.1 primary
                                                                 ├── vbf-b 10.79.0.2 standby
                                                                 └── vbf-c 10.79.0.3 clients
    BMCs on 10.79.0.254:6231 (vbf-a) and :6232 (vbf-b), outside the nodes' namespaces:
    reachable from the monitoring server and from the other node (where a peer fences
    from), and untouched by a node's crash or cut

Each node runs sshd on its address (host keys made per pair, verified by the client), so
that Ansible reaches a node over the network as at a site: a cut or a crash cuts it too.

The shapes of failure (`SHAPES`): kill (PostgreSQL SIGKILLed, the host lives), host
(every process of the host killed and its link down: a crash or power loss), cut (the
primary drops everything from the standby and the monitoring server; the clients still
reach it), hang (every PostgreSQL process SIGSTOPped), disk (the primary's data directory,
a file system of its own, filled up by someone else: PostgreSQL runs on, answers every
query and fails each write that needs a new block).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg

from vigil.lab.bmc import Bmc
from vigil.lab.net import sshd_config
from vigil.lab.pg import pg_bin
from vigil.lab.procs import port_open, read_pid, run, wait_for

BRIDGE = "vbf-br0"
MONITOR = "10.79.0.254"
HOSTS = {"a": "10.79.0.1", "b": "10.79.0.2", "c": "10.79.0.3"}
BMC_PORTS = {"a": 6231, "b": 6232}
PORT = 5432
SHAPES = ("kill", "host", "cut", "hang", "disk")
DISK_MB = 256  # the primary's own file system in the disk shape (a tmpfs)


def ns(node: str) -> str:
    return f"vbf-{node}"


def link(node: str) -> str:
    return f"vbf-{node}0"


def dsn(node: str, user: str = "postgres", timeout: int = 1) -> str:
    return (f"host={HOSTS[node]} port={PORT} user={user} dbname=postgres "
            f"connect_timeout={timeout}")


def sh(*cmd: str, check: bool = True) -> None:
    subprocess.run(cmd, check=check, capture_output=True, timeout=60)


class Net:
    """The bridge and three host namespaces; `down` removes every trace."""

    def up(self) -> None:
        self.down()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{MONITOR}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for node, address in HOSTS.items():
            sh("ip", "netns", "add", ns(node))
            sh("ip", "link", "add", link(node), "type", "veth", "peer", "name", f"vbf-{node}1")
            sh("ip", "link", "set", link(node), "netns", ns(node))
            sh("ip", "link", "set", f"vbf-{node}1", "master", BRIDGE, "up")
            sh("ip", "-n", ns(node), "addr", "add", f"{address}/24", "dev", link(node))
            sh("ip", "-n", ns(node), "link", "set", link(node), "up")
            sh("ip", "-n", ns(node), "link", "set", "lo", "up")

    def down(self) -> None:
        for node in HOSTS:
            if Path(f"/run/netns/{ns(node)}").exists():
                self.kill_all(node)
                sh("ip", "netns", "del", ns(node), check=False)
            sh("ip", "link", "del", f"vbf-{node}1", check=False)
        sh("ip", "link", "del", BRIDGE, check=False)

    @staticmethod
    def pids(node: str) -> list[int]:
        if not Path(f"/run/netns/{ns(node)}").exists():
            return []
        out = subprocess.run(["ip", "netns", "pids", ns(node)], capture_output=True,
                             text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def kill_all(self, node: str) -> None:
        for pid in self.pids(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a stopped process dies only once it runs
                os.kill(pid, signal.SIGKILL)


class Pair:
    """Primary a / standby b under one folder, each in its namespace, each with a BMC."""

    def __init__(self, root: Path, net: Net, sync: bool, bmc_password: str,
                 own_disk: bool = False) -> None:
        self.root, self.net, self.sync = root, net, sync
        root.mkdir(parents=True)
        shutil.chown(root, "postgres", "postgres")
        self.own_disk = own_disk  # the primary's data on a file system of its own
        if own_disk:
            self.data("a").mkdir()
            sh("mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs",
               str(self.data("a")))
            shutil.chown(self.data("a"), "postgres", "postgres")
        self.bmcs = {n: Bmc(root / f"bmc-{n}", ns(n), link(n), BMC_PORTS[n], bmc_password,
                            address=MONITOR)
                     for n in BMC_PORTS}

    def data(self, node: str) -> Path:
        return self.root / node

    @property
    def ssh_dir(self) -> Path:
        """The client key, `known_hosts` and each node's sshd files."""
        return self.root / "ssh"

    def start_sshd(self) -> None:
        """sshd on each node's address, inside its namespace (a crash kills it too)."""
        keys = self.ssh_dir
        keys.mkdir(mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "id_ed25519")])
        (keys / "authorized_keys").write_text((keys / "id_ed25519.pub").read_text())
        known = []
        for node in BMC_PORTS:
            host_key = keys / f"host-{node}"
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
            kind, blob = Path(f"{host_key}.pub").read_text().split()[:2]
            known.append(f"{HOSTS[node]} {kind} {blob}")
            (keys / f"sshd-{node}.conf").write_text(sshd_config(
                HOSTS[node], host_key, keys / "authorized_keys", keys / f"sshd-{node}.pid"))
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation
            sh("ip", "netns", "exec", ns(node), "/usr/sbin/sshd", "-f",
               str(keys / f"sshd-{node}.conf"), "-E", str(keys / f"sshd-{node}.log"))
        (keys / "known_hosts").write_text("\n".join(known) + "\n")
        for node in BMC_PORTS:
            wait_for(lambda node=node: port_open(HOSTS[node], 22),  # type: ignore[misc]
                     f"sshd on {node}", timeout=20)

    def in_ns(self, node: str, *cmd: str, timeout: float = 120) -> None:
        run(["ip", "netns", "exec", ns(node), "runuser", "-u", "postgres", "--", *cmd],
            timeout=timeout)

    def initdb(self, node: str, preload: str = "", address: str = "", port: int = PORT) -> None:
        """A new cluster in `node`'s folder, listening on its host (or `address`:`port`)."""
        data = self.data(node)
        run([str(pg_bin() / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C.UTF-8"], user="postgres")
        self._conf(node, preload, address or HOSTS[node], port)
        (data / "pg_hba.conf").write_text("local all all trust\n"
                                          "host all all 10.79.0.0/24 trust\n"
                                          "host replication all 10.79.0.0/24 trust\n")

    def build(self, preload: str = "") -> None:
        """initdb on a, a base backup on b, streaming (synchronous if `sync`)."""
        self.initdb("a", preload)
        self.start("a")
        with psycopg.connect(dsn("a", timeout=5), autocommit=True) as conn:
            conn.execute("CREATE USER repmgr SUPERUSER")
            conn.execute("CREATE DATABASE repmgr OWNER repmgr")
            conn.execute("CREATE TABLE ledger (id bigint PRIMARY KEY, writer text, "
                         "at timestamptz DEFAULT now())")
            conn.execute("CREATE TABLE probe (at timestamptz DEFAULT now())")
        run([str(pg_bin() / "pg_basebackup"), "-h", HOSTS["a"], "-p", str(PORT), "-U",
             "postgres", "-D", str(self.data("b")), "-R", "-X", "stream", "-c", "fast"],
            user="postgres")
        self._conf("b", preload)
        self.start("b")
        if self.sync:
            with psycopg.connect(dsn("a", timeout=5), autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
                conn.execute("SELECT pg_reload_conf()")
        wait_for(self.streaming, "the standby streaming", timeout=30)
        for bmc in self.bmcs.values():
            bmc.start()

    def _conf(self, node: str, preload: str, address: str = "", port: int = PORT) -> None:
        sock = self.root / f"sock-{node}"  # not in the data: a base backup would copy it
        sock.mkdir(exist_ok=True)
        shutil.chown(sock, "postgres", "postgres")
        with (self.data(node) / "postgresql.conf").open("a") as fh:
            fh.write("\n".join([
                "", f"listen_addresses = '{address or HOSTS[node]}'", f"port = {port}",
                f"unix_socket_directories = '{sock}'", "wal_level = replica",
                "max_wal_senders = 10", "max_replication_slots = 10", "hot_standby = on",
                "wal_log_hints = on", "wal_keep_size = 64MB",
                # once promoted, b has no standby to wait for
                "synchronous_standby_names = ''", f"cluster_name = 'bench-{node}'",
                *([f"shared_preload_libraries = '{preload}'"] if preload else []), ""]))

    def start(self, node: str) -> None:
        self.in_ns(node, str(pg_bin() / "pg_ctl"), "-D", str(self.data(node)), "-l",
                   str(self.root / f"{node}.log"), "-w", "-t", "60", "start", timeout=90)

    def streaming(self) -> bool:
        with psycopg.connect(dsn("a"), autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = "
                               "'streaming' AND sync_state = %s",
                               ("sync" if self.sync else "async",)).fetchone()
        return bool(row and row[0])

    # The shapes of failure ------------------------------------------------------------
    def fail(self, shape: str) -> None:
        if shape == "kill":  # PostgreSQL dies; its host lives and refuses the port
            pid = read_pid(self.data("a") / "postmaster.pid")
            if pid:
                os.kill(pid, signal.SIGKILL)
        elif shape == "host":  # crashed or lost power: nothing runs, nothing answers
            self.net.kill_all("a")
            sh("ip", "-n", ns("a"), "link", "set", link("a"), "down")
        elif shape == "cut":  # the standby and the monitoring server cut off; clients not
            for source in (HOSTS["b"], MONITOR):
                sh("ip", "netns", "exec", ns("a"), "iptables", "-I", "INPUT", "-s", source,
                   "-j", "DROP")
        elif shape == "hang":  # every PostgreSQL process stopped in its tracks
            for pid in self.net.pids("a"):
                with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                    if Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres",
                                                                        "postmaster"):
                        os.kill(pid, signal.SIGSTOP)
        elif shape == "disk":  # its file system filled to the last block by something else
            assert self.own_disk, "the disk shape needs Pair(own_disk=True)"
            fs = os.statvfs(self.data("a"))
            sh("fallocate", "-l", str(fs.f_bavail * fs.f_frsize), str(self.data("a") / "filler"))
        else:
            raise ValueError(shape)

    def destroy(self) -> None:
        for bmc in self.bmcs.values():
            bmc.stop()
        for node in HOSTS:
            self.net.kill_all(node)
        if self.own_disk:
            sh("umount", "--lazy", str(self.data("a")), check=False)
        shutil.rmtree(self.root, ignore_errors=True)
