"""Database failover, primary death to the first write on the new primary: Vigil's
executor (`vigil watch` running `standby_activation`) side by side with repmgr's automatic
failover (Debian postgresql-15-repmgr), default and tuned, on the same kind of pair.

    apt-get install -y postgresql-15-repmgr
    .venv/bin/python -m bench.db_failover [--runs 10]

Each run builds a fresh PostgreSQL 15 pair on 127.0.0.1:5443 (primary) / 5444 (standby)
with synchronous replication and repmgr preloaded, starts a writer that commits a row
every 10 ms on the primary and remembers every commit the primary acknowledged, kills the
primary with SIGKILL, and tries a write on 5444 every 50 ms until one succeeds. Then it
counts acknowledged rows missing on the new primary (committed transactions lost) and
whether both nodes take writes (split brain). The lab (5433/5434) is not touched.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml

from tests.conftest import ROOT
from vigil.lab.pg import pg_bin
from vigil.lab.procs import port_open, read_pid, run, wait_for

PORTS = {"a": 5443, "b": 5444}
REPMGR_DEFAULT = {"reconnect_attempts": 6, "reconnect_interval": 10,
                  "monitor_interval_secs": 2}
REPMGR_TUNED = {"reconnect_attempts": 1, "reconnect_interval": 1, "monitor_interval_secs": 1}


def dsn(node: str, user: str = "postgres") -> str:
    return f"host=127.0.0.1 port={PORTS[node]} user={user} dbname=postgres connect_timeout=1"


class Pair:
    """A throwaway primary (a) / synchronous standby (b) under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        shutil.chown(root, "postgres", "postgres")

    def data(self, node: str) -> Path:
        return self.root / node

    def pg(self, tool: str, *args: str, timeout: float = 120) -> None:
        run([str(pg_bin() / tool), *args], user="postgres", timeout=timeout)

    def build(self) -> None:
        a = self.data("a")
        self.pg("initdb", "-D", str(a), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                "--locale=C.UTF-8")
        with (a / "postgresql.conf").open("a") as fh:
            fh.write("\n".join([
                "", "listen_addresses = '127.0.0.1'", f"port = {PORTS['a']}",
                f"unix_socket_directories = '{self.root}'", "wal_level = replica",
                "max_wal_senders = 10", "max_replication_slots = 10", "hot_standby = on",
                "wal_log_hints = on", "shared_preload_libraries = 'repmgr'",
                "synchronous_commit = on",
                "wal_keep_size = 64MB", ""]))
        (a / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n"
                                       "host replication all 127.0.0.1/32 trust\n")
        self.start("a")
        with psycopg.connect(dsn("a"), autocommit=True) as conn:
            conn.execute("CREATE USER repmgr SUPERUSER")
            conn.execute("CREATE DATABASE repmgr OWNER repmgr")
            conn.execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
            conn.execute("CREATE TABLE probe (at timestamptz DEFAULT now())")
        self.pg("pg_basebackup", "-h", "127.0.0.1", "-p", str(PORTS["a"]), "-U", "postgres",
                "-D", str(self.data("b")), "-R", "-X", "stream", "-c", "fast")
        with (self.data("b") / "postgresql.conf").open("a") as fh:
            # Once promoted, b has no standby to wait for: it must not block its writes.
            fh.write(f"\nport = {PORTS['b']}\nsynchronous_standby_names = ''\n"
                     f"cluster_name = 'bench-b'\n")  # its name in pg_stat_replication
        self.start("b")
        with psycopg.connect(dsn("a"), autocommit=True) as conn:
            # Synchronous from now on: a commit is acknowledged once the standby has it.
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            conn.execute("SELECT pg_reload_conf()")
        wait_for(self.streaming, "synchronous standby streaming", timeout=30)

    def start(self, node: str) -> None:
        self.pg("pg_ctl", "-D", str(self.data(node)), "-l", str(self.root / f"{node}.log"),
                "-w", "-t", "60", "start", timeout=90)

    def streaming(self) -> bool:
        with psycopg.connect(dsn("a"), autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_replication "
                               "WHERE sync_state = 'sync'").fetchone()
        return bool(row and row[0])

    def cut(self, node: str) -> list[str]:
        """A partition as seen from everyone else: the node runs on, but nothing reaches its
        port (existing connections included). Returns the rule, for `heal`."""
        rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(PORTS[node]), "-j", "DROP"]
        subprocess.run(["iptables", "-I", *rule], check=True)
        return rule

    def heal(self, rule: list[str]) -> None:
        subprocess.run(["iptables", "-D", *rule], check=False)

    def acts_as_primary(self, node: str) -> bool:
        """Running and out of recovery, asked over its Unix socket (a cut leaves that)."""
        try:
            with psycopg.connect(f"host={self.root} port={PORTS[node]} user=postgres "
                                 "dbname=postgres connect_timeout=2", autocommit=True) as conn:
                row = conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
            return bool(row and row[0])
        except psycopg.Error:
            return False

    def kill(self, node: str) -> None:
        pid = read_pid(self.data(node) / "postmaster.pid")
        if pid:
            os.kill(pid, signal.SIGKILL)

    def destroy(self) -> None:
        for node in ("a", "b"):
            pid = read_pid(self.data(node) / "postmaster.pid")
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        subprocess.run(["pkill", "-9", "-f", f"postgres -D {self.root}/"], check=False)
        time.sleep(0.3)
        shutil.rmtree(self.root, ignore_errors=True)


class Writer(threading.Thread):
    """Commits one row at a time on the primary; remembers what the primary acknowledged."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.acked: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(dsn("a"), autocommit=True) as conn:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    conn.execute("INSERT INTO ledger VALUES (%s)", (n,))
                    self.acked.append(n)
                    time.sleep(0.01)
        except psycopg.Error:
            return  # the primary died under us: what was acknowledged is in self.acked


def takes_write(node: str) -> bool:
    try:
        with psycopg.connect(dsn(node), autocommit=True) as conn:
            conn.execute("INSERT INTO probe DEFAULT VALUES")
        return True
    except psycopg.Error:
        return False


@dataclass
class Trial:
    seconds: float | None  # None: the standby never took a write in the time allowed
    lost: int
    split_brain: bool  # two nodes acting as primary at once


@dataclass
class Contender:
    name: str
    arm: Callable[[Pair], Callable[[], None]]  # set up on a fresh pair; returns disarm
    trials: list[Trial] = field(default_factory=list)


def trial(pair: Pair, contender: Contender, fault: str = "kill", timeout: float = 180) -> Trial:
    disarm = contender.arm(pair)
    rule: list[str] = []
    try:
        writer = Writer()
        writer.start()
        time.sleep(1.0 + random.random())  # at any phase of the contenders' polling
        if fault == "kill":
            pair.kill("a")
        else:
            rule = pair.cut("a")
        t0 = time.monotonic()
        writer.stop.set()
        seconds: float | None = None
        while seconds is None and time.monotonic() - t0 < timeout:
            if takes_write("b"):
                seconds = time.monotonic() - t0
            else:
                time.sleep(0.05)
        if seconds is None and fault == "kill":
            raise RuntimeError(f"{contender.name}: no write on the standby after {timeout}s")
        writer.join(5)
        lost = 0
        if seconds is not None:
            with psycopg.connect(dsn("b"), autocommit=True) as conn:
                present = {r[0] for r in conn.execute("SELECT id FROM ledger")}
            lost = len(set(writer.acked) - present)
        split = pair.acts_as_primary("a") and pair.acts_as_primary("b")
        return Trial(seconds, lost, split)
    finally:
        if rule:
            pair.heal(rule)
        disarm()


def arm_vigil(tmp: Path, keep: Path | None = None) -> Callable[[Pair], Callable[[], None]]:
    runs = itertools.count(1)

    def arm(pair: Pair) -> Callable[[], None]:
        inv = tmp / "inv"
        shutil.rmtree(inv, ignore_errors=True)
        (inv / "group_vars/all").mkdir(parents=True)
        (inv / "host_vars").mkdir()
        (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"dbpair": {
            "hosts": {f"bench-{n}": {"ansible_host": "127.0.0.1", "ansible_connection": "local",
                                     "vigil_pg_port": PORTS[n],
                                     "vigil_pg_data": str(pair.data(n))} for n in PORTS}}}}}))
        (inv / "group_vars/all/site.yml").write_text(yaml.safe_dump({
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "vigil_lab_dir": str(tmp),
            "vigil_site": {"id": "bench", "name": {"zh": "基准", "en": "bench"}},
            "vigil_parties": [{"id": "finance", "kind": "finance_bureau",
                               "name": {"zh": "财政", "en": "finance"}}],
            "vigil_contacts": [{"id": "duty", "name": "duty", "party": "finance",
                                "roles": ["implementation_team"],
                                "channels": [f"file://{tmp}/duty.log"]}],
            "vigil_check_defaults": {"interval": 0.25, "timeout": 1},
            "vigil_escalation": {"open_after": 2, "recover_after": 2},
            "vigil_runbook": {"overrides": {"database.IV.activate-standby": {"run": {"vars": {
                "db_failover_primary": "bench-a", "db_failover_standby": "bench-b"}}}}}},
            allow_unicode=True))
        (inv / "host_vars/bench-a.yml").write_text(yaml.safe_dump({
            "vigil_party": "finance", "vigil_systems": [{
                "id": "bench-db", "name": {"zh": "数据库", "en": "database"},
                "fault_class": "database", "checks": [{
                    "name": "bench-db.primary-port", "kind": "tcp",
                    "params": {"port": PORTS["a"]}, "timeout": 1}]}]}))
        store = (keep or tmp) / f"bench-{next(runs)}.db"  # one a run: --keep keeps them
        env = {**os.environ, "VIGIL_STORE": str(store)}
        log = (tmp / "watch.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "vigil", "watch", "--inventory",
                                 str(inv)], cwd=ROOT, env=env, stdout=log, stderr=log)
        time.sleep(3)  # loaded and a few healthy cycles seen

        def disarm() -> None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            log.close()

        return disarm

    return arm


def _replayed_registration() -> bool:
    try:
        with psycopg.connect(dsn("b", "repmgr").replace("dbname=postgres", "dbname=repmgr"),
                             autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM repmgr.nodes").fetchone()
        return bool(row and row[0])
    except psycopg.Error:
        return False


def arm_repmgr(settings: dict[str, int]) -> Callable[[Pair], Callable[[], None]]:
    def conf(pair: Pair, node: str, node_id: int) -> Path:
        path = pair.root / f"repmgr-{node}.conf"
        lines = {
            "node_id": str(node_id), "node_name": f"'bench-{node}'",
            "conninfo": f"'host=127.0.0.1 port={PORTS[node]} user=repmgr dbname=repmgr "
                        f"connect_timeout=2'",
            "data_directory": f"'{pair.data(node)}'", "pg_bindir": f"'{pg_bin()}'",
            "failover": "'automatic'",
            "promote_command": f"'{pg_bin()}/repmgr standby promote -f {path} --log-to-file'",
            "follow_command": f"'{pg_bin()}/repmgr standby follow -f {path} --log-to-file "
                              f"--upstream-node-id=%n'",
            "log_file": f"'{pair.root}/repmgrd-{node}.log'", "monitoring_history": "no",
            "repmgrd_pid_file": f"'{pair.root}/repmgrd-{node}.pid'",
            **{k: str(v) for k, v in settings.items()}}
        path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        shutil.chown(path, "postgres", "postgres")
        return path

    def arm(pair: Pair) -> Callable[[], None]:
        ca, cb = conf(pair, "a", 1), conf(pair, "b", 2)
        repmgr = str(pg_bin() / "repmgr")
        run([repmgr, "-f", str(ca), "primary", "register"], user="postgres")
        wait_for(lambda: _replayed_registration(), "the standby replayed the registration",
                 timeout=30)
        run([repmgr, "-f", str(cb), "standby", "register"], user="postgres")
        procs = [subprocess.Popen(["runuser", "-u", "postgres", "--", str(pg_bin() / "repmgrd"),
                                   "-f", str(c), "--daemonize=false"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for c in (ca, cb)]
        log = pair.root / "repmgrd-b.log"
        wait_for(lambda: log.exists() and "monitoring connection to upstream node"
                 in log.read_text(), "repmgrd on the standby monitoring", timeout=30)

        def disarm() -> None:
            for p in procs:
                p.kill()
                p.wait(10)
            subprocess.run(["pkill", "-9", "-f", f"repmgrd -f {pair.root}/"], check=False)

        return disarm

    return arm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--default-runs", type=int, default=None,
                        help="runs of repmgr with its default settings (slow; default --runs)")
    parser.add_argument("--only", choices=["vigil", "repmgr-tuned", "repmgr-default"],
                        help="one contender (to look into it; no ratios)")
    parser.add_argument("--fault", choices=["kill", "partition"], default="kill",
                        help="kill: SIGKILL the primary; partition: the primary runs on but "
                             "nothing reaches its port (iptables)")
    parser.add_argument("--timeout", type=float, default=180,
                        help="seconds a contender has to make the standby take writes")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep Vigil's event stores here, one a run")
    args = parser.parse_args()
    if port_open("127.0.0.1", PORTS["a"]) or port_open("127.0.0.1", PORTS["b"]):
        sys.exit(f"ports {PORTS} are in use")
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        os.chmod(tmp, 0o755)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
        contenders = [Contender("vigil", arm_vigil(Path(tmp), args.keep)),
                      Contender("repmgr-tuned", arm_repmgr(REPMGR_TUNED)),
                      Contender("repmgr-default", arm_repmgr(REPMGR_DEFAULT))]
        if args.only:
            contenders = [c for c in contenders if c.name == args.only]
        runs = {"repmgr-default": args.default_runs or args.runs}
        for i in range(max(args.runs, runs["repmgr-default"])):
            for c in contenders:  # interleaved: the machine's state is the same for each
                if i >= runs.get(c.name, args.runs):
                    continue
                pair = Pair(Path(tmp) / f"pair-{c.name}-{i}")
                try:
                    pair.build()
                    t = trial(pair, c, args.fault, args.timeout)
                finally:
                    pair.destroy()
                c.trials.append(t)
                took = f"{t.seconds:6.2f} s" if t.seconds is not None else "no promotion"
                print(f"run {i + 1} {c.name:15} {took}  lost {t.lost}  "
                      f"split-brain {t.split_brain}", flush=True)
        print()
        print("| contender | runs | promoted | median s | worst s | committed lost | "
              "split brain |")
        print("|---|---|---|---|---|---|---|")
        for c in contenders:
            secs = [t.seconds for t in c.trials if t.seconds is not None]
            median = f"{statistics.median(secs):.2f}" if secs else "-"
            worst = f"{max(secs):.2f}" if secs else "-"
            print(f"| {c.name} | {len(c.trials)} | {len(secs)} | {median} | {worst} | "
                  f"{sum(t.lost for t in c.trials)} | {sum(t.split_brain for t in c.trials)} |")
        if args.only or args.fault != "kill":
            return
        vigil = statistics.median(t.seconds or 0 for t in contenders[0].trials)
        for c in contenders[1:]:
            ratio = statistics.median(t.seconds or 0 for t in c.trials) / vigil
            print(f"median ratio {c.name} / vigil: {ratio:.1f}x")


if __name__ == "__main__":
    main()
