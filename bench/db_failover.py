"""Database failover for every way a primary fails: Vigil (at its shipped defaults, and
tuned, labelled so) side by side with its peers, on a PostgreSQL 15 pair whose nodes are
hosts in network namespaces with BMCs (`bench/failover_net.py`).

    apt-get install -y postgresql-15-repmgr fence-agents openipmi ipmitool etcd-server
    .venv/bin/python -m bench.db_failover --runs 5 [--shapes kill,host,cut,hang,disk]
        [--replication sync,async] [--only vigil,patroni-default,…]

Each run builds a fresh pair, lets the contender arm itself, starts a client writing a row
every 10 ms on the primary from a namespace of its own (on the primary's side of any cut)
and, once it has commits, fails the primary in one shape. The benchmark then tries a write
on the standby every 50 ms. Measured: seconds from the fault to the first write on the new
primary; committed transactions lost (acknowledged by the old primary before that write,
missing on the new one); divergent writes (acknowledged by the old primary after the new
one took a write: a split brain). Vigil's runs are also checked against Vigil's own record:
its step must have succeeded.

Vigil's contenders: `vigil` (shipped defaults, a BMC per node), `vigil-tuned`,
`vigil-self-fence` (defaults, BMCs, and `roles/db_self_fence`'s program on both nodes),
`vigil-self-fence-only` (the self-fence, no BMC: a hung primary, or one whose disk is
full, is killed by its own self-fence on the monitoring server's signed order).

Exits 1 (`bench/truth.py`) when a Vigil run did not promote (or, where it must not,
promoted), lost a committed transaction with synchronous replication, took a divergent
write, did not record its step as succeeded (failed: handed to people), or — with the
self-fence, cut off — its old primary acknowledged a write later than the self-fence's
limit + 1.5 s after the cut; and when a run's client had no commit before the fault
(nothing was measured). Peers are reported as they behave, not judged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
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

from bench.failover_net import BMC_PORTS, HOSTS, MONITOR, PORT, SHAPES, Net, Pair, dsn, ns
from bench.truth import Truth, add_arguments
from tests.conftest import ROOT
from vigil.lab.bmc import USER as BMC_USER
from vigil.lab.pg import pg_bin
from vigil.lab.procs import LabError, run, wait_for
from vigil.model import SelfFence
from vigil.store import Store

OBSERVE_S = 3.0  # after the new primary's first write: does the old one still take writes?
BMC_PASSWORD = "bmc-Secret-16"  # IPMI 1.5 passwords: at most 16 bytes
SELF_FENCE_KEY = "bench self-fence pair key"  # signs what a self-fence tells Vigil
REPMGR_DEFAULT = {"reconnect_attempts": 6, "reconnect_interval": 10,
                  "monitor_interval_secs": 2}
REPMGR_TUNED = {"reconnect_attempts": 1, "reconnect_interval": 1, "monitor_interval_secs": 1}
SELF_FENCE = ROOT / "roles/db_self_fence/files/vigil_self_fence.py"
# beyond its limit: a round of looks (0.5 s, its silent looks' timeout), the immediate
# stop, the scheduler of a busy machine
SELF_FENCE_SLACK_S = 1.5
WITNESS_PORT = 5439  # repmgr's witness: a PostgreSQL of its own on the monitoring server

STORES = itertools.count(1)  # Vigil's event stores, numbered across its contenders
Arm = Callable[[Pair], Callable[[], str | None]]  # returns disarm, which says Vigil's step


@dataclass
class Trial:
    shape: str
    sync: bool
    seconds: float | None  # None: no write on the standby in the time allowed
    lost: int
    divergent: int
    before: int  # commits acknowledged before the fault
    step: str | None = None  # Vigil: its step's recorded status
    wrote_on: str | None = None  # the node that took the first write again
    old_took_for: float = 0.0  # seconds after the fault the old primary still acknowledged


@dataclass
class Contender:
    name: str
    arm: Arm
    judged: bool = False  # Vigil: its results are checked against the ground truth
    # the self-fence's promise: a cut-off primary takes no write later than this
    writes_until: float | None = None
    # shapes it must fail over; in the others it must hand the step to people (failed)
    fails_over: frozenset[str] = frozenset(SHAPES)
    trials: list[Trial] = field(default_factory=list)


class Prober(threading.Thread):
    """Tries a write on one node every 50 ms from the monitoring server's side; remembers
    when the first one after the fault was acknowledged."""

    def __init__(self, node: str) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.first: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.first is None:
            try:
                with psycopg.connect(dsn(self.node), autocommit=True) as conn:
                    conn.execute("INSERT INTO probe DEFAULT VALUES")
                self.first = time.time()
            except psycopg.Error:
                self.stop.wait(0.05)


def acks(path: Path) -> list[tuple[int, float]]:
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out.append((int(parts[0]), float(parts[1])))
    return out


def trial(pair: Pair, contender: Contender, shape: str, timeout: float) -> Trial:
    """Writes stop when the primary fails; the time counted is until a write is taken
    again — on the standby, promoted, or (a peer restarting it in place) on the old
    primary. Divergent: the old primary's commits after the standby took one."""
    disarm = contender.arm(pair)
    out = pair.root / "writer.out"
    writer = subprocess.Popen(
        ["ip", "netns", "exec", ns("c"), sys.executable, "-m", "bench.failover_writer",
         dsn("a", timeout=2), "old"], cwd=ROOT, stdout=out.open("w"),
        stderr=subprocess.DEVNULL)
    probers = {n: Prober(n) for n in ("a", "b")}
    try:
        wait_for(lambda: len(acks(out)) >= 20, "the client's first commits", timeout=30)
        time.sleep(random.random())  # at any phase of the contenders' polling
        before = len(acks(out))
        t0 = time.time()
        pair.fail(shape)
        time.sleep(0.05)  # a probe already under way when the fault came does not count
        for p in probers.values():
            p.start()
        until(lambda: any(p.first for p in probers.values()), timeout)
        if probers["b"].first is None and probers["a"].first is not None:
            # written on the old primary again: does the standby still get promoted?
            until(lambda: probers["b"].first is not None, OBSERVE_S)
        if probers["b"].first is not None:
            time.sleep(OBSERVE_S)  # the old side's client keeps trying meanwhile
    finally:
        for p in probers.values():
            p.stop.set()
        writer.kill()
        writer.wait(10)
        step = disarm()
    acked = acks(out)
    t_b, t_a = probers["b"].first, probers["a"].first
    firsts = [t for t in (t_a, t_b) if t is not None]
    seconds = min(firsts) - t0 if firsts else None
    lost = divergent = 0
    if t_b is not None:
        with psycopg.connect(dsn("b", timeout=5), autocommit=True) as conn:
            present = {r[0] for r in conn.execute("SELECT id FROM ledger")}
        lost = sum(1 for n, at in acked if at <= t_b and n not in present)
        divergent = sum(1 for _, at in acked if at > t_b)
    elif t_a is not None:  # restarted in place: its own commits must have survived
        with psycopg.connect(dsn("a", timeout=5), autocommit=True) as conn:
            present = {r[0] for r in conn.execute("SELECT id FROM ledger")}
        lost = sum(1 for n, _ in acked if n not in present)
    return Trial(shape, pair.sync, seconds, lost, divergent, before, step,
                 "b" if t_b is not None and (t_a is None or t_b <= t_a) else
                 "a" if t_a is not None else None,
                 max((at - t0 for _, at in acked if at > t0), default=0.0))


def until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# Vigil ----------------------------------------------------------------------------------
def self_fences(pair: Pair) -> list[subprocess.Popen[bytes]]:
    """`roles/db_self_fence`'s program on both nodes, as the role configures it at its
    defaults: each listens for the other node and the monitoring server."""
    procs = []
    program = pair.root / SELF_FENCE.name  # where postgres may read it, as the role installs it
    shutil.copy(SELF_FENCE, program)
    key = pair.root / "self-fence.key"
    key.write_text(SELF_FENCE_KEY + "\n")
    shutil.chown(key, "postgres", "postgres")
    key.chmod(0o600)
    for node, other in (("a", "b"), ("b", "a")):
        config = pair.root / f"self-fence-{node}.json"
        config.write_text(json.dumps({
            "peers": [{"name": f"bench-{other}", "address": HOSTS[other],
                       "port": SelfFence().port},
                      {"name": "monitoring server", "address": MONITOR, "port": 22}],
            "limit_s": SelfFence().limit_s, "data_dir": str(pair.data(node)),
            "fence_command": [str(pg_bin() / "pg_ctl"), "stop", "-m", "immediate", "-D",
                              str(pair.data(node))],
            "record": str(pair.root / f"self-fence-{node}" / "fenced.json"),
            "listen": {"address": HOSTS[node], "port": SelfFence().port},
            "status_key_file": str(key)}))
        with (pair.root / f"self-fence-{node}.log").open("wb") as out:  # the child keeps its own
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns(node), "runuser", "-u", "postgres", "--",
                 "/usr/bin/python3", str(program), "--config", str(config)],
                stdout=out, stderr=subprocess.STDOUT))
    for node in ("a", "b"):
        log = pair.root / f"self-fence-{node}.log"
        wait_for(lambda log=log: '"started"' in log.read_text(),  # type: ignore[misc]
                 f"the self-fence on {node} started", timeout=30)
    return procs


def arm_vigil(tmp: Path, tuned: bool, keep: Path | None, self_fence: bool = False,
              bmc: bool = True) -> Arm:

    def arm(pair: Pair) -> Callable[[], str | None]:
        pair.build()
        pair.start_sshd()  # the playbook reaches the nodes over SSH, as at a site
        fences = self_fences(pair) if self_fence else []
        inv = tmp / "inv"
        shutil.rmtree(inv, ignore_errors=True)
        (inv / "group_vars/all").mkdir(parents=True)
        (inv / "host_vars").mkdir()
        (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"dbpair": {
            "hosts": {f"bench-{n}": {
                "ansible_host": HOSTS[n], "ansible_user": "root",
                "ansible_ssh_private_key_file": str(pair.ssh_dir / "id_ed25519"),
                "vigil_known_hosts": f"{pair.ssh_dir}/known_hosts",
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes "
                                           f"-o UserKnownHostsFile={pair.ssh_dir}/known_hosts",
                # connections kept per pair: the next pair has the same addresses
                "ansible_control_path_dir": str(pair.ssh_dir / "cp"),
                "vigil_pg_port": PORT, "vigil_pg_data": str(pair.data(n)),
                **({"vigil_fence": {"ip": MONITOR, "port": BMC_PORTS[n], "username": BMC_USER,
                                    "password": "env:BENCH_BMC_PASSWORD"}} if bmc else {}),
                # at its defaults, with the pair's key
                **({"vigil_self_fence": {"key": "env:BENCH_SELF_FENCE_KEY"}}
                   if self_fence else {})}
                for n in BMC_PORTS}}}}}))
        (inv / "group_vars/all/site.yml").write_text(yaml.safe_dump({
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "vigil_lab_dir": str(tmp),
            "vigil_site": {"id": "bench", "name": {"zh": "基准", "en": "bench"}},
            "vigil_parties": [{"id": "finance", "kind": "finance_bureau",
                               "name": {"zh": "财政", "en": "finance"}}],
            "vigil_contacts": [{"id": "duty", "name": "duty", "party": "finance",
                                "roles": ["implementation_team"],
                                "channels": [f"file://{tmp}/duty.log"]}],
            # which hosts the step acts on, and where it records the old primary
            "vigil_runbook": {"overrides": {"database.IV.activate-standby": {"run": {"vars": {
                "db_failover_primary": "bench-a", "db_failover_standby": "bench-b",
                "standby_activation_record": str(tmp / "failover" / "old-primary.json")}}}}}},
            allow_unicode=True))
        check: dict[str, object] = {
            "name": "bench-db.dbpair", "kind": "dbpair", "params": {"nodes": [
                {"name": f"pg-{n}", "address": HOSTS[n], "port": PORT} for n in BMC_PORTS]}}
        if tuned:
            check |= {"interval": 0.5, "timeout": 1}
        (inv / "host_vars/bench-a.yml").write_text(yaml.safe_dump({
            "vigil_party": "finance", "vigil_systems": [{
                "id": "bench-db", "name": {"zh": "数据库", "en": "database"},
                "fault_class": "database", "checks": [check]}]}))
        # one a run, whichever Vigil contender (--keep keeps them)
        store_path = (keep or tmp) / f"vigil-{next(STORES)}.db"
        store_path.unlink(missing_ok=True)
        env = {**os.environ, "VIGIL_STORE": str(store_path), "BENCH_BMC_PASSWORD": BMC_PASSWORD,
               "BENCH_SELF_FENCE_KEY": SELF_FENCE_KEY,
               "VIGIL_SPOOL_DIR": str(tmp / "spool")}
        log = (tmp / "watch.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "vigil", "watch", "--inventory",
                                 str(inv)], cwd=ROOT, env=env, stdout=log, stderr=log)

        def watching() -> bool:
            if proc.poll() is not None:
                said = (tmp / "watch.log").read_text(errors="replace").strip().splitlines()
                raise RuntimeError(f"vigil watch exited {proc.returncode}: "
                                   f"{said[-1] if said else 'nothing said'}")
            if not store_path.exists():
                return False
            seen = Store(str(store_path)).states("check:")
            return any(v.get("status") == "ok" for v in seen.values())

        wait_for(watching, "vigil watch seeing the pair healthy", timeout=60)

        def disarm() -> str | None:
            def step() -> str | None:
                recs = Store(str(store_path)).states("step:")
                hits = [r["status"] for k, r in recs.items() if k.endswith("activate-standby")]
                return hits[0] if hits else None

            # the playbook finishes the step after first aid's promotion; whatever its
            # status then, that is the answer
            until(lambda: step() in ("succeeded", "failed", None), 180)
            status = step()
            proc.terminate()
            proc.wait(30)
            for f in fences:
                f.terminate()
                f.wait(10)
            log.close()
            return status

        return disarm

    return arm


# repmgr ---------------------------------------------------------------------------------
def arm_repmgr(settings: dict[str, int], fenced: bool = False) -> Arm:
    """repmgrd on both nodes, `failover=automatic`. `fenced`: as its documentation sets up
    a two-node pair against a split brain — a witness server beside the primary (here on
    the monitoring server: a standby that sees neither does not promote), and a
    promote_command that fences the old primary first (its BMC powered off through
    fence_ipmilan, as Vigil does) and promotes only when that succeeded. Not
    `primary_visibility_consensus` (for several standbys across sites): with it, a kill
    within a second of the witness's last look cancelled the election, and repmgrd did
    not try again in 120 s."""
    def conf(pair: Pair, node: str, node_id: int, host: str, port: int,
             promote: str = "") -> Path:
        path = pair.root / f"repmgr-{node}.conf"
        promote = promote or f"{pg_bin()}/repmgr standby promote -f {path} --log-to-file"
        lines = {
            "node_id": str(node_id), "node_name": f"'bench-{node}'",
            "conninfo": f"'host={host} port={port} user=repmgr dbname=repmgr "
                        f"connect_timeout=2'",
            "data_directory": f"'{pair.data(node)}'", "pg_bindir": f"'{pg_bin()}'",
            "failover": "'automatic'", "promote_command": f"'{promote}'",
            "follow_command": f"'{pg_bin()}/repmgr standby follow -f {path} --log-to-file "
                              f"--upstream-node-id=%n'",
            "log_file": f"'{pair.root}/repmgrd-{node}.log'", "monitoring_history": "no",
            "repmgrd_pid_file": f"'{pair.root}/repmgrd-{node}.pid'",
            **{k: str(v) for k, v in settings.items()}}
        path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        shutil.chown(path, "postgres", "postgres")
        return path

    def fence_then_promote(pair: Pair) -> str:
        """b's promote_command: the old primary's power off (confirmed) before promoting."""
        script = pair.root / "fence-then-promote.sh"
        script.write_text(
            "#!/bin/sh\n"
            f"printf 'ip={MONITOR}\\nipport={BMC_PORTS['a']}\\nusername={BMC_USER}\\n"
            f"password={BMC_PASSWORD}\\nlanplus=0\\naction=off\\n' | "
            f"/usr/sbin/fence_ipmilan >> {pair.root}/fence.log 2>&1 || exit 1\n"
            f"exec {pg_bin()}/repmgr standby promote -f {pair.root}/repmgr-b.conf "
            "--log-to-file\n")
        script.chmod(0o700)
        shutil.chown(script, "postgres", "postgres")
        return str(script)

    def registered() -> bool:
        try:
            with psycopg.connect(dsn("b", "repmgr").replace("dbname=postgres", "dbname=repmgr"),
                                 autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM repmgr.nodes").fetchone()
            return bool(row and row[0])
        except psycopg.Error:
            return False

    def witness(pair: Pair) -> Path:
        """A PostgreSQL of its own on the monitoring server, registered as repmgr's witness."""
        pair.initdb("w", "repmgr", MONITOR, WITNESS_PORT)
        run([str(pg_bin() / "pg_ctl"), "-D", str(pair.data("w")), "-l", str(pair.root / "w.log"),
             "-w", "start"], user="postgres", timeout=90)  # not in a node's namespace
        with psycopg.connect(f"host={MONITOR} port={WITNESS_PORT} user=postgres "
                             "dbname=postgres", autocommit=True) as c:
            c.execute("CREATE USER repmgr SUPERUSER")
            c.execute("CREATE DATABASE repmgr OWNER repmgr")
        cw = conf(pair, "w", 3, MONITOR, WITNESS_PORT)
        run([str(pg_bin() / "repmgr"), "-f", str(cw), "witness", "register", "-h", HOSTS["a"],
             "-p", str(PORT)], user="postgres", timeout=60)
        return cw

    def arm(pair: Pair) -> Callable[[], str | None]:
        pair.build(preload="repmgr")
        ca = conf(pair, "a", 1, HOSTS["a"], PORT)
        cb = conf(pair, "b", 2, HOSTS["b"], PORT, fence_then_promote(pair) if fenced else "")
        repmgr = str(pg_bin() / "repmgr")
        pair.in_ns("a", repmgr, "-f", str(ca), "primary", "register")
        wait_for(registered, "the standby replayed the registration", timeout=30)
        pair.in_ns("b", repmgr, "-f", str(cb), "standby", "register")
        daemons = [["ip", "netns", "exec", ns(n), "runuser", "-u", "postgres", "--",
                    str(pg_bin() / "repmgrd"), "-f", str(c), "--daemonize=false"]
                   for n, c in (("a", ca), ("b", cb))]
        if fenced:
            daemons.append(["runuser", "-u", "postgres", "--", str(pg_bin() / "repmgrd"),
                            "-f", str(witness(pair)), "--daemonize=false"])
        procs = [subprocess.Popen(d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for d in daemons]
        log = pair.root / "repmgrd-b.log"
        wait_for(lambda: log.exists() and "monitoring connection to upstream node"
                 in log.read_text(), "repmgrd on the standby monitoring", timeout=30)

        def disarm() -> str | None:
            for p in procs:
                p.kill()
                p.wait(10)
            if fenced:  # the witness is not in a node's namespace: stopped here
                run([str(pg_bin() / "pg_ctl"), "-D", str(pair.data("w")), "-m", "immediate",
                     "stop"], user="postgres", timeout=60)
            return None

        return disarm

    return arm


def contenders(tmp: Path, keep: Path | None) -> list[Contender]:
    from bench.patroni_peer import arm_patroni

    return [Contender("vigil", arm_vigil(tmp, False, keep), judged=True),
            Contender("vigil-tuned", arm_vigil(tmp, True, keep), judged=True),
            Contender("vigil-self-fence", arm_vigil(tmp, False, keep, self_fence=True),
                      judged=True, writes_until=SelfFence().limit_s + SELF_FENCE_SLACK_S),
            # no BMC: a hung primary hears its peers, so its self-fence leaves it; the
            # playbook kills it on its host (reached over SSH) before it promotes
            Contender("vigil-self-fence-only",
                      arm_vigil(tmp, False, keep, self_fence=True, bmc=False), judged=True,
                      writes_until=SelfFence().limit_s + SELF_FENCE_SLACK_S),
            Contender("patroni-default", arm_patroni(tmp, tuned=False)),
            Contender("patroni-tuned", arm_patroni(tmp, tuned=True)),
            Contender("repmgr-default", arm_repmgr(REPMGR_DEFAULT)),
            Contender("repmgr-tuned", arm_repmgr(REPMGR_TUNED)),
            Contender("repmgr-fenced", arm_repmgr(REPMGR_TUNED, fenced=True))]


def judge(truth: Truth, c: Contender, t: Trial) -> None:
    what = f"{c.name} {t.shape} {'sync' if t.sync else 'async'}"
    truth.expect(f"{what}: commits before the fault (none: nothing measured)", True,
                 t.before > 0)
    if not c.judged:
        return
    fails_over = t.shape in c.fails_over
    truth.expect(f"{what}: promoted", fails_over, t.wrote_on == "b")
    truth.expect(f"{what}: divergent writes", 0, t.divergent)
    if t.sync:
        truth.expect(f"{what}: committed transactions lost", 0, t.lost)
    if c.writes_until is not None and t.shape == "cut":
        truth.expect(f"{what}: the old primary's last write within {c.writes_until:g} s of "
                     "the cut (its self-fence)", True, t.old_took_for <= c.writes_until)
    truth.expect(f"{what}: its step as Vigil recorded it",
                 "succeeded" if fails_over else "failed", t.step)


def table(cs: list[Contender]) -> None:
    print("\n| contender | shape | replication | runs | promoted | median s | worst s | "
          "committed lost | divergent writes (runs) | old primary wrote for, worst s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in cs:
        groups: dict[tuple[str, bool], list[Trial]] = {}
        for t in c.trials:
            groups.setdefault((t.shape, t.sync), []).append(t)
        for (shape, sync), ts in groups.items():
            secs = [t.seconds for t in ts if t.seconds is not None]
            median = f"{statistics.median(secs):.2f}" if secs else "-"
            worst = f"{max(secs):.2f}" if secs else "-"
            split = sum(1 for t in ts if t.divergent)
            print(f"| {c.name} | {shape} | {'sync' if sync else 'async'} | {len(ts)} | "
                  f"{len(secs)} | {median} | {worst} | {sum(t.lost for t in ts)} | "
                  f"{sum(t.divergent for t in ts)} ({split}) | "
                  f"{max(t.old_took_for for t in ts):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per contender and shape")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--replication", default="sync,async")
    parser.add_argument("--only", default="", help="contenders, comma-separated")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds a contender has to make the standby take writes")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep each run's logs and Vigil's event stores here")
    add_arguments(parser)
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    if unknown := set(shapes) - set(SHAPES):
        sys.exit(f"unknown shapes {sorted(unknown)} (known: {', '.join(SHAPES)})")
    truth = Truth("db_failover", args.inject_mismatch)
    net = Net()
    with tempfile.TemporaryDirectory(prefix="vigil-failover-") as tmp:
        os.chmod(tmp, 0o755)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
        cs = contenders(Path(tmp), args.keep)
        if args.only:
            wanted = args.only.split(",")
            cs = [c for c in cs if c.name in wanted]
        n = 0
        try:
            for i in range(args.runs):
                for shape in shapes:
                    for replication in args.replication.split(","):
                        for c in cs:  # interleaved: the machine is in the same state for each
                            n += 1
                            net.up()
                            pair = Pair(Path(tmp) / f"pair-{n}", net, replication == "sync",
                                        BMC_PASSWORD, own_disk=shape == "disk")
                            try:
                                t = trial(pair, c, shape, args.timeout)
                            finally:
                                try:
                                    if args.keep:  # its logs, to look into a run
                                        shutil.copytree(
                                            pair.root, args.keep / pair.root.name,
                                            ignore=shutil.ignore_patterns(
                                                "a", "b", "w", "etcd-*", "sock-*", "cp"),
                                            dirs_exist_ok=True)
                                finally:  # a failed copy must not leave BMCs and nodes up
                                    pair.destroy()
                                    net.down()
                            c.trials.append(t)
                            judge(truth, c, t)
                            took = f"{t.seconds:6.2f} s" if t.seconds is not None else \
                                "no promotion"
                            print(f"run {i + 1} {c.name:16} {shape:4} {replication:5} {took}  "
                                  f"on {t.wrote_on or '-'}  lost {t.lost}  "
                                  f"divergent {t.divergent}  old primary wrote for "
                                  f"{t.old_took_for:.2f} s"
                                  + (f"  step {t.step}" if c.judged else ""), flush=True)
        except LabError as e:  # the lab could not be set up: no run to judge
            sys.exit(f"db_failover: {e}")
        finally:
            net.down()
        table(cs)
    truth.done()


if __name__ == "__main__":
    main()
