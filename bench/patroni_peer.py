"""The failover benchmark's Patroni peer: Patroni (the release from the package index, in a
virtualenv of its own under build/) on each database host's namespace, with a three-member
etcd (Debian `etcd-server`) on the monitoring server's side of the bridge — so a primary
cut off from the monitoring server is cut off from the DCS too, as it would be on a site.

Defaults are Patroni's own (`ttl` 30, `loop_wait` 10, `retry_timeout` 10). Tuned polls as
often as Vigil (`loop_wait` 1) with the shortest lease Patroni accepts (`ttl` 20) and
`retry_timeout` 3. With synchronous replication, `synchronous_mode: true`, Patroni's
documented way to lose no acknowledged commit.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg
import yaml

from bench.failover_net import HOSTS, MONITOR, PORT, Pair, dsn, ns
from tests.conftest import ROOT
from vigil.lab.pg import pg_bin
from vigil.lab.procs import LabError, run, wait_for

VERSION = "4.1.5"
VENV = ROOT / "build" / "patroni-venv"
ETCD = [(2379, 2380), (2479, 2480), (2579, 2580)]  # client, peer
DEFAULT = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
TUNED = {"ttl": 20, "loop_wait": 1, "retry_timeout": 3}


def patroni() -> Path:
    exe = VENV / "bin" / "patroni"
    if not exe.exists():
        # Debian's Python: the postgres user must be able to run it (not one under /root)
        run(["/usr/bin/python3", "-m", "venv", "--clear", str(VENV)])
        run([str(VENV / "bin" / "pip"), "install", "-q",
             f"patroni[etcd3,psycopg3]=={VERSION}"], timeout=600)
    return exe


def start_etcd(root: Path) -> list[subprocess.Popen[bytes]]:
    cluster = ",".join(f"e{i}=http://{MONITOR}:{peer}" for i, (_, peer) in enumerate(ETCD))
    procs = []
    for i, (client, peer) in enumerate(ETCD):
        log = (root / f"etcd-{i}.log").open("ab")
        procs.append(subprocess.Popen(
            ["etcd", "--name", f"e{i}", "--data-dir", str(root / f"etcd-{i}"),
             "--listen-client-urls", f"http://{MONITOR}:{client}",
             "--advertise-client-urls", f"http://{MONITOR}:{client}",
             "--listen-peer-urls", f"http://{MONITOR}:{peer}",
             "--initial-advertise-peer-urls", f"http://{MONITOR}:{peer}",
             "--initial-cluster", cluster, "--initial-cluster-state", "new",
             "--initial-cluster-token", root.name],
            stdout=log, stderr=log, env={"ETCD_UNSUPPORTED_ARCH": "", "PATH": "/usr/bin:/bin"}))
    wait_for(lambda: _healthy(f"http://{MONITOR}:{ETCD[0][0]}/health"), "etcd healthy",
             timeout=30)
    return procs


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(json.load(reply).get("health") == "true")
    except (OSError, ValueError):
        return False


def _armed(sync: bool) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOSTS['b']}:8008/cluster", timeout=2) as reply:
            members = json.load(reply)["members"]
    except (OSError, ValueError, KeyError):
        return False
    roles = {m["name"]: (m["role"], m["state"]) for m in members}
    want = "sync_standby" if sync else "replica"
    return roles.get("bench-b") in ((want, "streaming"), (want, "running"))


def config(pair: Pair, node: str, timing: dict[str, int]) -> Path:
    conf = {
        "scope": pair.root.name, "name": f"bench-{node}",
        "log": {"dir": str(pair.root / f"patroni-{node}-log")},
        "restapi": {"listen": f"{HOSTS[node]}:8008", "connect_address": f"{HOSTS[node]}:8008"},
        "etcd3": {"hosts": [f"{MONITOR}:{c}" for c, _ in ETCD]},
        "bootstrap": {
            "dcs": {**timing, "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": pair.sync,
                    "postgresql": {"use_pg_rewind": False, "use_slots": True, "parameters": {
                        "wal_level": "replica", "hot_standby": "on", "wal_log_hints": "on",
                        "max_wal_senders": 10, "max_replication_slots": 10,
                        "wal_keep_size": "64MB"}}},
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}],
        },
        "postgresql": {
            "listen": f"{HOSTS[node]}:{PORT}", "connect_address": f"{HOSTS[node]}:{PORT}",
            "data_dir": str(pair.data(node)), "bin_dir": str(pg_bin()),
            "pgpass": str(pair.root / f"pgpass-{node}"),
            "authentication": {"superuser": {"username": "postgres"},
                               "replication": {"username": "postgres"}},
            "parameters": {"unix_socket_directories": str(pair.root / f"sock-{node}")},
            "pg_hba": ["local all all trust", "host all all 10.79.0.0/24 trust",
                       "host replication all 10.79.0.0/24 trust"],
        },
    }
    for folder in (f"patroni-{node}-log", f"sock-{node}"):
        (pair.root / folder).mkdir(exist_ok=True)
    path = pair.root / f"patroni-{node}.yml"
    path.write_text(yaml.safe_dump(conf))
    run(["chown", "-R", "postgres:postgres", str(pair.root)])
    return path


def role(node: str) -> str | None:
    try:
        with psycopg.connect(dsn(node), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return "standby" if row and row[0] else "primary"
    except psycopg.Error:
        return None


def arm_patroni(tmp: Path, tuned: bool) -> Callable[[Pair], Callable[[], str | None]]:
    def arm(pair: Pair) -> Callable[[], str | None]:
        exe = patroni()
        etcd = start_etcd(pair.root)
        procs: list[subprocess.Popen[bytes]] = []

        def start(node: str) -> None:
            path = config(pair, node, TUNED if tuned else DEFAULT)
            log = (pair.root / f"patroni-{node}.out").open("ab")
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns(node), "runuser", "-u", "postgres", "--", str(exe),
                 str(path)], stdout=log, stderr=log, cwd=pair.root))

        try:
            start("a")  # a bootstraps and leads; b clones it
            wait_for(lambda: role("a") == "primary", "Patroni bootstrapping a", timeout=90)
            with psycopg.connect(dsn("a", timeout=5), autocommit=True) as conn:
                conn.execute("CREATE TABLE ledger (id bigint PRIMARY KEY, writer text, "
                             "at timestamptz DEFAULT now())")
                conn.execute("CREATE TABLE probe (at timestamptz DEFAULT now())")
            start("b")
            wait_for(pair.streaming, "Patroni's standby streaming", timeout=90)
            # armed once Patroni itself knows it: b named the synchronous standby in the
            # DCS (before that Patroni rightly would not promote it)
            wait_for(lambda: _armed(pair.sync), "Patroni's cluster healthy", timeout=90)
            for bmc in pair.bmcs.values():
                bmc.start()
        except LabError:
            for p in [*procs, *etcd]:
                p.kill()
            raise

        def disarm() -> str | None:
            for p in [*procs, *etcd]:
                p.kill()
                p.wait(10)
            return None

        return disarm

    return arm
