"""One check cycle over N loopback targets: Vigil's runner against two peers, side by side —
Prometheus' blackbox_exporter (in-process probes, asked at the concurrency Vigil uses) and
one monitoring-plugins process per check (check_tcp / check_http, the classic Nagios way).

    python -m bench.check_cycle [--targets 1000] [--concurrency 32]

Prints probes per second for each, the ratios, the concurrency each really reached (the
most HTTP requests the targets held open at once), and the peak memory of Vigil's process.
Needs Debian's monitoring-plugins-basic and prometheus-blackbox-exporter for the peers.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.truth import Truth, add_arguments
from vigil.checks.cycle import ASYNC_CONCURRENCY, run_checks
from vigil.inventory import load_inventory
from vigil.result import Status

PLUGINS = Path("/usr/lib/nagios/plugins")
BLACKBOX = Path("/usr/bin/prometheus-blackbox-exporter")
BLACKBOX_PORT = 19115
BLACKBOX_MODULES = """modules:
  tcp_connect: {prober: tcp, timeout: 10s}
  http_2xx: {prober: http, timeout: 10s, http: {preferred_ip_protocol: ip4}}
"""
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


def peak_concurrency() -> int:
    """The most HTTP requests the targets held open at once since the last ask."""
    with urllib.request.urlopen(f"http://127.0.0.1:{BASE_PORT - 1}/peak", timeout=5) as reply:
        return int(reply.read())


def start_blackbox(folder: Path) -> subprocess.Popen[bytes]:
    conf = folder / "blackbox.yml"
    conf.write_text(BLACKBOX_MODULES)
    proc = subprocess.Popen([str(BLACKBOX), f"--config.file={conf}",
                             f"--web.listen-address=127.0.0.1:{BLACKBOX_PORT}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{BLACKBOX_PORT}/-/healthy", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("prometheus-blackbox-exporter did not start")


def run_blackbox(count: int, concurrency: int) -> tuple[float, int]:
    """Ask the exporter for every target's probe, `concurrency` at a time, as a Prometheus
    server scraping them would; a probe counts when it says probe_success 1. (A thread per
    request: httpx's asyncio client managed a tenth of the rate here.)"""
    def one(i: int) -> bool:
        port = BASE_PORT + i
        query = (f"module=http_2xx&target=http://127.0.0.1:{port}/" if i % 2
                 else f"module=tcp_connect&target=127.0.0.1:{port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{BLACKBOX_PORT}/probe?{query}",
                                    timeout=30) as reply:
            return b"\nprobe_success 1" in reply.read()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        ok = sum(pool.map(one, range(count)))
    return time.perf_counter() - started, ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    add_arguments(parser)
    args = parser.parse_args()
    truth = Truth("check_cycle", args.inject_mismatch)
    if not (PLUGINS / "check_tcp").exists() or not BLACKBOX.exists():
        sys.exit("install the peers: apt-get install monitoring-plugins-basic "
                 "prometheus-blackbox-exporter")

    targets = subprocess.Popen([sys.executable, "-m", "bench.targets", str(BASE_PORT),
                                str(args.targets)], stdout=subprocess.PIPE, text=True)
    try:
        assert targets.stdout and targets.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            checks = load_inventory(write_inventory(Path(tmp), args.targets)).checks
            load_s = time.perf_counter() - started
        blackbox = start_blackbox(Path(tmp_bb := tempfile.mkdtemp()))
        run_checks(checks[:50], concurrency=args.concurrency)  # warm-up: imports, first sockets
        run_blackbox(50, ASYNC_CONCURRENCY)
        times: dict[str, list[float]] = {"vigil": [], "blackbox": [], "plugins": []}
        peaks: dict[str, int] = {"vigil": 0, "blackbox": 0, "plugins": 0}
        peak_concurrency()
        for _ in range(args.rounds):
            started = time.perf_counter()
            results = run_checks(checks, concurrency=args.concurrency)
            times["vigil"].append(time.perf_counter() - started)
            peaks["vigil"] = max(peaks["vigil"], peak_concurrency())
            ok = sum(1 for r in results if r.status is Status.OK)
            truth.expect("targets ok in Vigil's run", args.targets, ok)
            elapsed, bb_ok = run_blackbox(args.targets, ASYNC_CONCURRENCY)
            times["blackbox"].append(elapsed)
            peaks["blackbox"] = max(peaks["blackbox"], peak_concurrency())
            truth.expect("targets ok in blackbox_exporter's run", args.targets, bb_ok)
            elapsed, peer_ok = run_peer(args.targets, args.concurrency)
            times["plugins"].append(elapsed)
            peaks["plugins"] = max(peaks["plugins"], peak_concurrency())
            truth.expect("targets ok in the plugins' run", args.targets, peer_ok)
        blackbox.terminate()
        shutil.rmtree(tmp_bb, ignore_errors=True)
    finally:
        targets.terminate()
    best = {k: min(v) for k, v in times.items()}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"targets: {args.targets} (half TCP, half HTTP), best of {args.rounds}; inventory "
          f"loaded in {load_s:.1f} s")
    print(f"asked for: Vigil up to {ASYNC_CONCURRENCY} probes in flight, blackbox_exporter "
          f"{ASYNC_CONCURRENCY} requests, plugins {args.concurrency} processes")
    for key, label in (("vigil", "vigil runner"), ("blackbox", "blackbox_exporter"),
                       ("plugins", "check_tcp/check_http")):
        print(f"{label + ':':24} {best[key]:6.2f} s  {args.targets / best[key]:8.0f} probes/s"
              f"  reached {peaks[key]} HTTP probes at once")
    for key, label in (("blackbox", "blackbox_exporter"), ("plugins", "plugins")):
        print(f"ratio ({label} / vigil): {best[key] / best['vigil']:6.1f}x")
    print(f"vigil peak RSS:          {peak_mb:6.0f} MB (this process, the peers' clients "
          "included)")
    truth.done()


if __name__ == "__main__":
    main()
