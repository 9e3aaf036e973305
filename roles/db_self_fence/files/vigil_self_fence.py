#!/usr/bin/python3
"""Vigil's self-fence for a database host (P4.3.2): a primary that has lost both its
standby and the monitoring server for longer than a limit stops taking writes — as
Patroni's leader demotes itself when its key can no longer be renewed.

Why: a primary cut off from the standby and the monitoring server may still be reached
by some clients. The monitoring server, which cannot tell it from a dead one, may promote
the standby once the limit and a margin have passed; the self-fence makes sure that, by
then, the old primary takes no more writes (no split brain), and bounds what clients on
its side can write that the new primary will never have (asynchronous replication).

A peer "answers" when a TCP connection to it is accepted or refused within the timeout:
a refusal proves the network path as well as an acceptance does, so any port of the
monitoring server will do. Only silence (a timeout, no route) counts as lost.

The node is a primary when its data directory has no `standby.signal`: a file read, so a
hung or full PostgreSQL cannot delay the answer. Fencing runs the configured command
(`pg_ctl stop -m immediate` by default) and records when and why in a JSON file; it acts
again only if a primary is started again while still cut off.

Standard library only: the database host needs no Vigil installed. One JSON config:
    {"peers": [{"name": "standby", "address": "10.0.0.2", "port": 5432}, ...],
     "limit_s": 4, "interval_s": 0.5, "timeout_s": 1,
     "data_dir": "/var/lib/postgresql/15/main",
     "fence_command": ["/usr/lib/postgresql/15/bin/pg_ctl", "stop", "-m", "immediate",
                       "-D", "/var/lib/postgresql/15/main"],
     "record": "/var/lib/vigil-self-fence/fenced.json"}
Exit codes: 0 stopped by a signal, 2 bad config.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANSWERS = (errno.ECONNREFUSED, errno.ECONNRESET)  # the peer's kernel answered
STOP_WAIT_S = 10  # for the postmaster to be gone after the fence command


@dataclass(frozen=True)
class Peer:
    name: str
    address: str
    port: int


@dataclass(frozen=True)
class Config:
    peers: tuple[Peer, ...]
    limit_s: float
    interval_s: float
    timeout_s: float
    data_dir: Path
    fence_command: tuple[str, ...]
    record: Path


def load(path: str) -> Config:
    raw: dict[str, Any] = json.loads(Path(path).read_text())
    peers = tuple(Peer(str(p["name"]), str(p["address"]), int(p["port"]))
                  for p in raw["peers"])
    if not peers:
        raise ValueError("peers: none (the standby and the monitoring server are needed)")
    config = Config(peers, float(raw.get("limit_s", 4)), float(raw.get("interval_s", 0.5)),
                    float(raw.get("timeout_s", 1)), Path(raw["data_dir"]),
                    tuple(str(a) for a in raw["fence_command"]), Path(raw["record"]))
    if config.timeout_s + config.interval_s > config.limit_s:
        raise ValueError(f"limit_s {config.limit_s} must exceed interval_s + timeout_s: one "
                         "silent look alone must never fence")
    return config


def answers(peer: Peer, timeout: float) -> bool:
    try:
        with socket.create_connection((peer.address, peer.port), timeout=timeout):
            return True
    except OSError as exc:
        return exc.errno in ANSWERS


class Isolation:
    """How long no peer has answered; the decision alone, on the caller's clock."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.silent_since: float | None = None

    def look(self, now: float, any_answered: bool) -> bool:
        """Record one round of looks; True when the node must be fenced now."""
        if any_answered:
            self.silent_since = None
            return False
        if self.silent_since is None:
            self.silent_since = now
        return now - self.silent_since >= self.limit_s


def is_primary(data_dir: Path) -> bool:
    return (data_dir / "PG_VERSION").exists() and not (data_dir / "standby.signal").exists()


def postmaster_runs(data_dir: Path) -> bool:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return state not in ("Z", "X")  # a dead process not yet reaped runs no more


def gone(data_dir: Path, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while postmaster_runs(data_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def log(event: str, **fields: Any) -> None:
    line = {"at": datetime.datetime.now().astimezone().isoformat(timespec="milliseconds"),
            "event": event, **fields}
    print(json.dumps(line, ensure_ascii=False), flush=True)


def fence(config: Config, silent_s: float) -> None:
    why = (f"no answer from {', '.join(p.name for p in config.peers)} for {silent_s:.1f} s "
           f"(limit {config.limit_s:g} s): this primary stops taking writes (P4.3.2)")
    log("fencing", why=why, command=list(config.fence_command))
    started = time.monotonic()
    proc = subprocess.run(config.fence_command, capture_output=True, text=True, timeout=60,
                          check=False)
    record = {"fenced_at": datetime.datetime.now().astimezone().isoformat(),
              "why": why, "command": list(config.fence_command),
              "exit": proc.returncode, "output": (proc.stdout + proc.stderr).strip()[-500:],
              "seconds": round(time.monotonic() - started, 2),
              "stopped": gone(config.data_dir, STOP_WAIT_S)}
    config.record.parent.mkdir(parents=True, exist_ok=True)
    tmp = config.record.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1))
    os.replace(tmp, config.record)  # whole or not at all
    log("fenced", **{k: record[k] for k in ("exit", "seconds", "stopped")})


def watch(config: Config, stop: threading.Event) -> None:
    isolation = Isolation(config.limit_s)
    log("started", peers=[f"{p.name} {p.address}:{p.port}" for p in config.peers],
        limit_s=config.limit_s)
    with concurrent.futures.ThreadPoolExecutor(len(config.peers)) as pool:
        while not stop.is_set():
            started = time.monotonic()
            answered = any(pool.map(lambda p: answers(p, config.timeout_s), config.peers))
            was_silent = isolation.silent_since is not None
            must = isolation.look(started, answered)
            if not answered and not was_silent:
                log("peers silent", limit_s=config.limit_s)
            elif answered and was_silent:
                log("peers answer again")
            if must and is_primary(config.data_dir) and postmaster_runs(config.data_dir):
                assert isolation.silent_since is not None
                fence(config, started - isolation.silent_since)
            stop.wait(max(0.0, config.interval_s - (time.monotonic() - started)))
    log("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    try:
        config = load(args.config)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"vigil-self-fence: {args.config}: {exc}", file=sys.stderr)
        sys.exit(2)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    watch(config, stop)


if __name__ == "__main__":
    main()
