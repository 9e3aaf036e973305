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
    {"peers": [{"name": "standby", "address": "10.0.0.2", "port": 5440}, ...],
     "limit_s": 4, "interval_s": 0.5, "timeout_s": 0.5,
     "data_dir": "/var/lib/postgresql/15/main",
     "fence_command": ["/usr/lib/postgresql/15/bin/pg_ctl", "stop", "-m", "immediate",
                       "-D", "/var/lib/postgresql/15/main"],
     "record": "/var/lib/vigil-self-fence/fenced.json",
     "listen": {"address": "10.0.0.1", "port": 5440},
     "status_key_file": "/etc/vigil/self-fence.key"}
`listen` (optional) serves what this node hears: the monitoring server asks the standby's
whether it still hears the primary before it promotes without a BMC. With
`status_key_file` (the pair's shared key, which Vigil has too) the asker first sends a
line of its own (a fresh nonce) and the answer is the JSON line then the hex HMAC-SHA256,
under the key, of the nonce, a newline and that JSON line: a forged or replayed answer
cannot say the primary is silent.

With the key it also takes the monitoring server's **kill order** for a primary that
failed while its host answers — hung (its port accepts and never answers; an immediate
stop does not end a stopped postmaster) or its disk full; this program, which hears its
peers, would never stop it: `kill <nonce>`, answered with
`challenge <nonce>`, then the HMAC of `kill`, the asker's nonce and the challenge. Only
then, and only on a primary, it SIGKILLs the postmaster and its children (named
`postgres`), writes `standby.signal` so that a restart comes back as a standby, records
it, and answers with a JSON line (`stopped`, `killed`, `why`) and its HMAC over both
nonces and the line. Without the key there is no kill order.
Exit codes: 0 stopped by a signal, 2 bad config.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import errno
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANSWERS = (errno.ECONNREFUSED, errno.ECONNRESET)  # the peer's kernel answered
STOP_WAIT_S = 10  # for the postmaster to be gone after the fence command
NONCE_MAX = 128  # bytes of an asker's nonce
POSTGRES = ("postgres", "postmaster")  # what a kill order may kill


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
    listen: tuple[str, int] | None = None  # where it tells what it hears (None: nowhere)
    status_key: bytes | None = None  # authenticates what it tells (None: unsigned)


def load(path: str) -> Config:
    raw: dict[str, Any] = json.loads(Path(path).read_text())
    peers = tuple(Peer(str(p["name"]), str(p["address"]), int(p["port"]))
                  for p in raw["peers"])
    if not peers:
        raise ValueError("peers: none (the standby and the monitoring server are needed)")
    config = Config(peers, float(raw.get("limit_s", 4)), float(raw.get("interval_s", 0.5)),
                    float(raw.get("timeout_s", 0.5)), Path(raw["data_dir"]),
                    tuple(str(a) for a in raw["fence_command"]), Path(raw["record"]),
                    (str(raw["listen"]["address"]), int(raw["listen"]["port"]))
                    if raw.get("listen") else None,
                    Path(raw["status_key_file"]).read_bytes().strip()
                    if raw.get("status_key_file") else None)
    if config.status_key is not None and len(config.status_key) < 16:
        raise ValueError("status_key_file: a key of 16 bytes or more is needed")
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


class Hearing:
    """When each peer last answered, on the caller's monotonic clock. Silence counts from
    the last answer of any peer (the start of the round it came in, so never short)."""

    def __init__(self, peers: tuple[Peer, ...], limit_s: float, now: float) -> None:
        self.limit_s = limit_s
        self.last = dict.fromkeys(peers, now)  # at start, as if just heard: a full limit first

    def heard(self, started: float, answered: dict[Peer, bool]) -> None:
        """Record one round of looks, begun at `started`."""
        for peer, yes in answered.items():
            if yes:
                self.last[peer] = started

    def must_fence(self, now: float) -> bool:
        return self.silent_for(now) >= self.limit_s

    def silent_for(self, now: float) -> float:
        return now - max(self.last.values())

    def status(self, now: float) -> list[dict[str, Any]]:
        return [{"name": p.name, "address": p.address, "port": p.port,
                 "silent_s": round(now - t, 2)} for p, t in self.last.items()]


def is_primary(data_dir: Path) -> bool:
    return (data_dir / "PG_VERSION").exists() and not (data_dir / "standby.signal").exists()


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (state, ppid, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def postmaster_runs(data_dir: Path) -> bool:
    pid = postmaster_pid(data_dir)
    state = proc_stat(pid)[:1] if pid else []
    return bool(state) and state[0] not in ("Z", "X")  # a dead one not yet reaped runs no more


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
    write_record(config, record)
    log("fenced", **{k: record[k] for k in ("exit", "seconds", "stopped")})


def write_record(config: Config, record: dict[str, Any]) -> None:
    config.record.parent.mkdir(parents=True, exist_ok=True)
    tmp = config.record.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1))
    os.replace(tmp, config.record)  # whole or not at all


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def postgres_pids(data_dir: Path) -> list[int]:
    """The postmaster of `data_dir` and its children, those named postgres (a PID file
    left by a dead postmaster may name a recycled PID: that one is left alone)."""
    postmaster = postmaster_pid(data_dir)
    if postmaster is None or comm(postmaster) not in POSTGRES:
        return []
    children = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()
                and proc_stat(int(e.name))[1:2] == [str(postmaster)]
                and comm(int(e.name)) in POSTGRES]
    return [postmaster, *children]


def obey_kill_order(config: Config) -> dict[str, Any]:
    """The monitoring server's kill order for a primary that failed it (hung, or its disk
    full), taken: SIGKILL is the one signal a stopped postmaster takes."""
    if not is_primary(config.data_dir):
        return {"stopped": not postmaster_runs(config.data_dir), "killed": [],
                "why": "not a primary: nothing killed"}
    pids = postgres_pids(config.data_dir)
    log("killing", pids=pids, why="the monitoring server's kill order (P4.3.2)")
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stopped = gone(config.data_dir, STOP_WAIT_S)
    if stopped:  # a restart (by hand, by systemd) must not bring a second primary
        (config.data_dir / "standby.signal").touch(mode=0o600)
        why = (f"killed {len(pids)} PostgreSQL processes on the monitoring server's order "
               "(P4.3.2: it failed as a primary); standby.signal written")
    else:
        why = f"killed {pids}, but the postmaster still runs after {STOP_WAIT_S} s"
    write_record(config, {"fenced_at": datetime.datetime.now().astimezone().isoformat(),
                          "why": why, "killed": pids, "stopped": stopped})
    log("killed", pids=pids, stopped=stopped)
    return {"stopped": stopped, "killed": pids, "why": why}


def serve_status(config: Config, hearing: Hearing) -> socketserver.TCPServer | None:
    """What this node hears, one JSON line to whoever connects: the monitoring server asks
    the standby's before it promotes without a BMC (does the standby hear the primary?)."""
    if config.listen is None:
        return None

    class Status(socketserver.StreamRequestHandler):
        timeout = 2  # for the asker's nonce; a peer merely probing sends none and leaves

        def handle(self) -> None:
            nonce = b""
            if config.status_key is not None:
                try:
                    nonce = self.rfile.readline(NONCE_MAX + 6).strip()
                except OSError:
                    return
                if nonce.startswith(b"kill "):
                    self.kill_order(config.status_key, nonce[5:])
                    return
                if not nonce or len(nonce) > NONCE_MAX:
                    return
            now = time.monotonic()
            said = {"primary": is_primary(config.data_dir), "limit_s": config.limit_s,
                    "silent_s": round(hearing.silent_for(now), 2),
                    "peers": hearing.status(now), "fenced": config.record.exists()}
            line = json.dumps(said).encode()
            self.wfile.write(line + b"\n")
            if config.status_key is not None:
                mac = hmac.new(config.status_key, nonce + b"\n" + line, hashlib.sha256)
                self.wfile.write(mac.hexdigest().encode() + b"\n")

        def kill_order(self, key: bytes, theirs: bytes) -> None:
            if not theirs or len(theirs) > NONCE_MAX:
                return
            ours = secrets.token_hex(16).encode()  # a recorded order cannot be replayed
            self.wfile.write(b"challenge " + ours + b"\n")
            self.wfile.flush()
            try:
                mac = self.rfile.readline(130).strip()
            except OSError:
                return
            good = hmac.new(key, b"kill\n" + theirs + b"\n" + ours, hashlib.sha256)
            if not hmac.compare_digest(mac, good.hexdigest().encode()):
                log("kill order refused", why="not signed with the pair's key",
                    asker=self.client_address[0])
                return
            line = json.dumps(obey_kill_order(config)).encode()
            mac = hmac.new(key, theirs + b"\n" + ours + b"\n" + line, hashlib.sha256).digest()
            self.wfile.write(line + b"\n" + mac.hex().encode() + b"\n")

    socketserver.TCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(config.listen, Status)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def watch(config: Config, stop: threading.Event) -> None:
    hearing = Hearing(config.peers, config.limit_s, time.monotonic())
    server = serve_status(config, hearing)
    log("started", peers=[f"{p.name} {p.address}:{p.port}" for p in config.peers],
        limit_s=config.limit_s, status=f"{config.listen[0]}:{config.listen[1]}"
        if config.listen else None)
    silent = False
    with concurrent.futures.ThreadPoolExecutor(len(config.peers)) as pool:
        while not stop.is_set():
            started = time.monotonic()
            answered = dict(zip(config.peers, pool.map(
                lambda p: answers(p, config.timeout_s), config.peers), strict=True))
            hearing.heard(started, answered)
            # decided after the round: a silent round takes a look's timeout
            must = hearing.must_fence(time.monotonic())
            if not any(answered.values()) and not silent:
                log("peers silent", limit_s=config.limit_s)
            elif any(answered.values()) and silent:
                log("peers answer again")
            silent = not any(answered.values())
            if must and is_primary(config.data_dir) and postmaster_runs(config.data_dir):
                fence(config, hearing.silent_for(time.monotonic()))
            stop.wait(max(0.0, config.interval_s - (time.monotonic() - started)))
    if server:
        server.shutdown()
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
