"""One check cycle over N loopback targets: Vigil's runner against one monitoring-plugins
process per check (check_tcp / check_http, the classic Nagios way), side by side.

    python -m bench.check_cycle [--targets 1000] [--concurrency 32]

Prints probes per second for both, their ratio, and the peak memory of Vigil's process.
Needs Debian's monitoring-plugins-basic for the peer.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.truth import Truth, add_arguments
from vigil.checks.cycle import run_checks
from vigil.inventory import load_inventory
from vigil.result import Status

PLUGINS = Path("/usr/lib/nagios/plugins")
BASE_PORT = 21000


def write_inventory(folder: Path, count: int) -> Path:
    """An Ansible inventory with one system of `count` checks, loaded as `vigil check` would."""
    checks = []
    for i in range(count):
        port = BASE_PORT + i
        if i % 2:
            checks.append({"name": f"t{i}", "kind": "http", "timeout": 10,
                           "params": {"url": f"http://127.0.0.1:{port}/"}})
        else:
            checks.append({"name": f"t{i}", "kind": "tcp", "timeout": 10,
                           "params": {"port": port}})
    (folder / "group_vars").mkdir(parents=True)
    (folder / "hosts.yml").write_text(
        "all:\n  hosts:\n    bench: {ansible_connection: local, ansible_host: 127.0.0.1}\n")
    (folder / "group_vars" / "all.yml").write_text(json.dumps({
        "vigil_site": {"id": "bench", "name": "bench"},
        "vigil_parties": [{"id": "finance", "kind": "finance_bureau", "name": "bench"}],
        "vigil_party": "finance",
        "vigil_systems": [{"id": "bench", "name": "bench", "fault_class": "peripheral",
                           "checks": checks}]}))
    return folder


def peer_command(i: int) -> list[str]:
    port = str(BASE_PORT + i)
    if i % 2:
        return [str(PLUGINS / "check_http"), "-H", "127.0.0.1", "-p", port, "-t", "10"]
    return [str(PLUGINS / "check_tcp"), "-H", "127.0.0.1", "-p", port, "-t", "10"]


def run_peer(count: int, concurrency: int) -> tuple[float, int]:
    def one(i: int) -> int:
        return subprocess.run(peer_command(i), capture_output=True).returncode

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        codes = list(pool.map(one, range(count)))
    return time.perf_counter() - started, sum(1 for c in codes if c == 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    add_arguments(parser)
    args = parser.parse_args()
    truth = Truth("check_cycle", args.inject_mismatch)
    if not (PLUGINS / "check_tcp").exists():
        sys.exit("install monitoring-plugins-basic for the peer (apt-get install "
                 "monitoring-plugins-basic)")

    targets = subprocess.Popen([sys.executable, "-m", "bench.targets", str(BASE_PORT),
                                str(args.targets)], stdout=subprocess.PIPE, text=True)
    try:
        assert targets.stdout and targets.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            checks = load_inventory(write_inventory(Path(tmp), args.targets)).checks
            load_s = time.perf_counter() - started
        run_checks(checks[:50], concurrency=args.concurrency)  # warm-up: imports, first sockets
        vigil_times, peer_times = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            results = run_checks(checks, concurrency=args.concurrency)
            vigil_times.append(time.perf_counter() - started)
            ok = sum(1 for r in results if r.status is Status.OK)
            truth.expect("targets ok in Vigil's run", args.targets, ok)
            elapsed, peer_ok = run_peer(args.targets, args.concurrency)
            peer_times.append(elapsed)
            truth.expect("targets ok in the peer's run", args.targets, peer_ok)
    finally:
        targets.terminate()
    vigil_best, peer_best = min(vigil_times), min(peer_times)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"targets: {args.targets} (half TCP, half HTTP), concurrency {args.concurrency}, "
          f"best of {args.rounds}; inventory loaded in {load_s:.1f} s")
    for label, best in (("vigil runner", vigil_best), ("check_tcp/check_http", peer_best)):
        print(f"{label + ':':24} {best:6.2f} s  {args.targets / best:8.0f} probes/s")
    print(f"ratio (peer / vigil):    {peer_best / vigil_best:6.1f}x")
    print(f"vigil peak RSS:          {peak_mb:6.0f} MB")
    truth.done()


if __name__ == "__main__":
    main()
