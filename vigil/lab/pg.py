"""A PostgreSQL primary/standby pair with streaming replication on 127.0.0.1 (P4.3.2).

Two private clusters under the lab folder, never the machine's default one.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

from vigil.lab.base import Component, Health
from vigil.lab.procs import LabError, alive, port_open, read_pid, run, stop, wait_for

PRIMARY_PORT = 5433
STANDBY_PORT = 5434
SLOT = "vigil_standby"


def pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise LabError("PostgreSQL server is not installed (run lab/install-packages.sh)")
    return versions[-1].parent


class PostgresPair(Component):
    name = "pg"

    def node_dir(self, node: str) -> Path:
        return self.dir / node

    @property
    def sockets(self) -> Path:
        return self.dir / "run"

    def up(self) -> None:
        self.sockets.mkdir(exist_ok=True)
        shutil.chown(self.dir, "postgres", "postgres")
        shutil.chown(self.sockets, "postgres", "postgres")
        if (self.node_dir("primary") / "standby.signal").exists():
            # A drill left the pair reversed (the roles' failover without the way back):
            # start again from the lab's shape rather than guess at its history.
            self.down()
            shutil.rmtree(self.node_dir("primary"))
        if not (self.node_dir("primary") / "PG_VERSION").exists():
            self._init_primary()
        self._start("primary", PRIMARY_PORT)
        standby = self.node_dir("standby")
        if (standby / "PG_VERSION").exists() and not (standby / "standby.signal").exists():
            # A drill promoted it: the lab's shape is primary on 5433, standby on 5434.
            self.stop_node("standby")
            shutil.rmtree(standby)
        if not (standby / "PG_VERSION").exists():
            self._clone_standby()
        self._start("standby", STANDBY_PORT)
        wait_for(self._streaming, "standby streaming from primary", timeout=30)
        self.seed_backups()

    def seed_backups(self, max_age_h: float = 24) -> None:
        """A fresh dump in the machine room and in the other building, each with its
        .sha256, unless a fresh one is there (the backup_rotation role does this on a site)."""
        import hashlib
        import time

        folders = [self.root / "backups" / "machine-room", self.root / "backups" / "other-building"]
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            dumps = sorted(folder.glob("*.dump"), key=lambda f: f.stat().st_mtime)
            if dumps and time.time() - dumps[-1].stat().st_mtime < max_age_h * 3600:
                sums = dumps[-1].with_name(dumps[-1].name + ".sha256")
                if sums.exists() and sums.read_text().split()[0] == hashlib.sha256(
                        dumps[-1].read_bytes()).hexdigest():
                    continue
            name = f"payment-{time.strftime('%Y%m%dT%H%M%S')}.dump"
            dump = run([str(pg_bin() / "pg_dump"), "-h", "127.0.0.1", "-p", str(PRIMARY_PORT),
                        "-U", "postgres", "-Fc", "postgres"], user="postgres", binary=True)
            (folder / name).write_bytes(dump.stdout)  # type: ignore[arg-type]
            digest = hashlib.sha256(dump.stdout).hexdigest()  # type: ignore[arg-type]
            (folder / f"{name}.sha256").write_text(f"{digest}  {name}\n")

    def _init_primary(self) -> None:
        data = self.node_dir("primary")
        run([str(pg_bin() / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C.UTF-8"], user="postgres")
        conf = data / "postgresql.conf"
        conf.write_text(conf.read_text() + "\n".join([
            "", "# vigil lab",
            "listen_addresses = '127.0.0.1'",
            f"port = {PRIMARY_PORT}",
            f"unix_socket_directories = '{self.sockets}'",
            "wal_level = replica", "max_wal_senders = 10", "max_replication_slots = 10",
            "hot_standby = on", "wal_keep_size = 64MB", "fsync = on",
            "wal_log_hints = on  # pg_rewind, for standby_rebuild", ""]))
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
            "host replication all 127.0.0.1/32 trust\n")

    def _clone_standby(self) -> None:
        data = self.node_dir("standby")
        if data.exists():
            shutil.rmtree(data)
        self._psql(PRIMARY_PORT, f"SELECT pg_create_physical_replication_slot('{SLOT}') "
                   f"WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots "
                   f"WHERE slot_name = '{SLOT}')")
        run([str(pg_bin() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(PRIMARY_PORT),
             "-U", "postgres", "-D", str(data), "-R", "-X", "stream", "-S", SLOT],
            user="postgres", timeout=300)
        with (data / "postgresql.conf").open("a") as fh:
            fh.write(f"\nport = {STANDBY_PORT}\n")

    def _start(self, node: str, port: int) -> None:
        if self._pid(node) and port_open("127.0.0.1", port):
            return
        data = self.node_dir(node)
        run([str(pg_bin() / "pg_ctl"), "-D", str(data), "-l", str(self.dir / f"{node}.log"),
             "-w", "-t", "60", "start"], user="postgres", timeout=90)

    def _pid(self, node: str) -> int | None:
        pid = read_pid(self.node_dir(node) / "postmaster.pid")
        return pid if alive(pid) else None

    def _psql(self, port: int, sql: str) -> str:
        out = run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-AtXq",
                   "-c", sql], user="postgres")
        return out.stdout.strip()

    def _streaming(self) -> bool:
        try:
            return self._psql(PRIMARY_PORT, "SELECT count(*) FROM pg_stat_replication "
                              "WHERE state = 'streaming'") not in ("", "0")
        except LabError:
            return False

    def promote_standby(self) -> None:
        """Promote the standby while the primary runs: two primaries (fault injection)."""
        self._psql(STANDBY_PORT, "SELECT pg_promote(wait => true)")

    def start_node(self, node: str) -> None:
        self._start(node, PRIMARY_PORT if node == "primary" else STANDBY_PORT)

    def stop_node(self, node: str) -> None:
        """Fast shutdown of one node by its postmaster PID (used by fault drills too)."""
        stop(self._pid(node), "postgres", sig=signal.SIGINT, timeout=60)

    def down(self) -> None:
        for node in ("standby", "primary"):
            self.stop_node(node)

    def status(self) -> list[Health]:
        out = []
        for node, port in (("primary", PRIMARY_PORT), ("standby", STANDBY_PORT)):
            pid = self._pid(node)
            listening = port_open("127.0.0.1", port)
            ok = bool(pid) and listening
            out.append(Health(f"postgresql-{node}", ok,
                              f"127.0.0.1:{port} pid {pid}" if ok else "stopped"))
        if out[0].ok:
            out.append(Health("replication", self._streaming(),
                              "standby streaming" if self._streaming() else "not streaming"))
        return out
