"""Pushing a cycle to Zabbix (issue 16), on the lab's real Zabbix 6.0 (`vigil lab up`):

1. 10,000 values of one cycle, from the offer to the last of them in Zabbix's history
   (its database, as the frontend reads it): Vigil's Pusher at shipped defaults (the one
   `vigil watch` makes: zabbix_utils' Sender, 250 values a connection) side by side with
   the peer, Zabbix's own `zabbix_sender` reading a file with timestamps (`-T -i`, its
   documented way for many values). Ground truth: every item's value at that clock, right.
2. What a cycle of the daemon spends on Zabbix (making the cycle's values and offering
   them) while the trapper answers, and while it is black-holed (a firewall rule drops the
   packets, the worst kind of away: each attempt waits out its timeout).

    .venv/bin/python -m bench.zabbix_push [--values 10000] [--runs 5] [--cycles 50]

Exits 1 (`bench/truth.py`) when a value is missing or wrong in Zabbix's history.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from pyzabbix import ZabbixAPI

from bench.truth import Truth, add_arguments
from vigil.lab.zabbix import ADMIN, DB_PASSWORD, DB_PORT, TRAPPER_PORT, WEB_PORT
from vigil.zabbix.push import Pusher, Value
from vigil.zabbix.sync import TRAPPER, UNSIGNED

BLACKHOLE_PORT = 10059  # a trapper address whose packets are dropped


def db() -> psycopg.Connection[tuple[int, ...]]:
    return psycopg.connect(host="127.0.0.1", port=DB_PORT, dbname="zabbix", user="zabbix",
                           password=DB_PASSWORD, autocommit=True)


def stored(conn: psycopg.Connection[tuple[int, ...]], hostid: str, clock: int
           ) -> tuple[int, int]:
    """How many of the host's items have a value at `clock`, and the sum of those values."""
    row = conn.execute(
        "SELECT count(DISTINCT h.itemid), coalesce(sum(h.value), 0) FROM history_uint h "
        "JOIN items i ON i.itemid = h.itemid WHERE i.hostid = %s AND h.clock = %s",
        (int(hostid), clock)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


SENT: dict[str, list[float]] = {"vigil": [], "zabbix_sender": []}  # until the trapper said


def arrived(conn: psycopg.Connection[tuple[int, ...]], hostid: str, clock: int, n: int,
            started: float, limit_s: float = 60) -> tuple[float | None, int, int]:
    """Seconds from `started` until all n values are in the history (None: never), with the
    count and the sum of the values found there."""
    count, got = 0, 0
    while time.monotonic() - started < limit_s:
        count, got = stored(conn, hostid, clock)
        if count == n:
            return time.monotonic() - started, count, got
        time.sleep(0.02)
    return None, count, got


def setup(api: ZabbixAPI, n: int) -> tuple[str, str, list[str]]:
    name = f"vigil.bench-{uuid.uuid4().hex[:6]}"
    group = api.hostgroup.create(name=f"Vigil bench {name}")["groupids"][0]
    hostid = api.host.create(host=name, groups=[{"groupid": group}],
                             tags=[{"tag": "vigil", "value": "bench"}])["hostids"][0]
    keys = [f'vigil.check.status["bench.c{i}"]' for i in range(n)]
    for start in range(0, n, 1000):
        api.do_request("item.create", [{"hostid": hostid, "key_": k, "name": k,
                                        "type": TRAPPER, "value_type": UNSIGNED}
                                       for k in keys[start:start + 1000]])
    return name, hostid, keys


def ready(conn: psycopg.Connection[tuple[int, ...]], pusher: Pusher, name: str, hostid: str,
          keys: list[str]) -> None:
    """Zabbix takes trapper values for new items once its configuration cache has them."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        clock = int(time.time()) - 100_000
        pusher.offer([Value(name, keys[-1], 1, clock)])
        time.sleep(1)
        if stored(conn, hostid, clock)[0]:
            return
    raise SystemExit("Zabbix never took the bench items (configuration cache)")


def values(name: str, keys: list[str], clock: int) -> list[Value]:
    return [Value(name, k, i % 4, clock) for i, k in enumerate(keys)]


Arrival = tuple[float | None, int, int]


def run_vigil(conn: psycopg.Connection[tuple[int, ...]], pusher: Pusher, name: str,
              hostid: str, keys: list[str], clock: int) -> Arrival:
    batch = values(name, keys, clock)
    started = time.monotonic()
    pusher.offer(batch)
    while pusher.queue:
        time.sleep(0.001)
    SENT["vigil"].append(time.monotonic() - started)
    return arrived(conn, hostid, clock, len(keys), started)


def run_sender(conn: psycopg.Connection[tuple[int, ...]], name: str, hostid: str,
               keys: list[str], clock: int, tmp: Path) -> Arrival:
    batch = values(name, keys, clock)
    data = tmp / f"values-{clock}.txt"
    # zabbix_sender's input: host key timestamp value, a key with quotes quoted itself.
    data.write_text("".join(f'{v.host} "{v.key.replace(chr(34), chr(92) + chr(34))}" '
                            f"{v.clock} {v.value}\n" for v in batch))
    started = time.monotonic()
    subprocess.run(["zabbix_sender", "-z", "127.0.0.1", "-p", str(TRAPPER_PORT), "-T",
                    "-i", str(data)], check=False, capture_output=True)
    SENT["zabbix_sender"].append(time.monotonic() - started)
    return arrived(conn, hostid, clock, len(keys), started)


def cycle_cost(pusher: Pusher, name: str, keys: list[str], cycles: int) -> list[float]:
    """Milliseconds a cycle spends on Zabbix: its values made and offered, as the daemon
    does (vigil.daemon: cycle_values, then offer), a cycle each 100 ms."""
    out = []
    for c in range(cycles):
        started = time.perf_counter()
        pusher.offer(values(name, keys, int(time.time()) - 200_000 - c))
        out.append((time.perf_counter() - started) * 1000)
        time.sleep(0.1)
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--values", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cycles", type=int, default=50)
    add_arguments(ap)
    args = ap.parse_args()
    truth = Truth("zabbix_push", args.inject_mismatch)

    api = ZabbixAPI(f"http://127.0.0.1:{WEB_PORT}", timeout=60)
    api.login(*ADMIN)
    name, hostid, keys = setup(api, args.values)
    rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "--dport", str(BLACKHOLE_PORT), "-j", "DROP"]
    try:
        conn = db()
        pusher = Pusher("127.0.0.1", TRAPPER_PORT)  # as vigil watch makes it
        ready(conn, pusher, name, hostid, keys)
        base = int(time.time()) - 10_000
        vigil: list[float] = []
        peer: list[float] = []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.runs):
                for who, runner, out in (
                        ("vigil", lambda c: run_vigil(conn, pusher, name, hostid, keys, c),
                         vigil),
                        ("zabbix_sender", lambda c: run_sender(conn, name, hostid, keys, c,
                                                                Path(tmp)), peer)):
                    clock = base - 2 * r - (0 if who == "vigil" else 1)
                    took, count, total = runner(clock)
                    # the truth: every item's value at that clock, each the one sent
                    truth.expect(f"{who} run {r + 1}: items with a value in the history",
                                 args.values, count)
                    truth.expect(f"{who} run {r + 1}: the sum of those values",
                                 sum(v.value for v in values(name, keys, clock)), total)
                    if took is not None:
                        out.append(took)
        print(f"{args.values:,} values of one cycle ({args.runs} runs each): taken by the "
              f"trapper / in Zabbix's history (its history syncer writes once a second)")
        for who, xs, sent in (("Vigil Pusher (shipped defaults)", vigil, SENT["vigil"]),
                              ("zabbix_sender -T -i (peer)", peer, SENT["zabbix_sender"])):
            if xs:
                print(f"  {who:34} taken median {statistics.median(sent):.2f} s, max "
                      f"{max(sent):.2f} s / history median {statistics.median(xs):.2f} s, "
                      f"max {max(xs):.2f} s")

        up = cycle_cost(pusher, name, keys, args.cycles)
        subprocess.run(["iptables", "-I", *rule], check=True)
        away = Pusher("127.0.0.1", BLACKHOLE_PORT)
        down = cycle_cost(away, name, keys, args.cycles)
        print(f"a cycle's time on Zabbix ({args.values:,} values, {args.cycles} cycles):")
        for label, xs in (("trapper answering", up), ("trapper black-holed", down)):
            print(f"  {label:20} p50 {pct(xs, 50):.1f} ms, p99 {pct(xs, 99):.1f} ms, "
                  f"max {max(xs):.1f} ms")
        print(f"  while black-holed: {away.errors} attempt(s) failed, {len(away.queue)} "
              f"cycle(s) queued (at most 100), {away.dropped:,} value(s) dropped")
        away.stop()
        pusher.stop()
    finally:
        subprocess.run(["iptables", "-D", *rule], check=False, capture_output=True)
        api.host.delete(hostid)
        for g in api.hostgroup.get(filter={"name": [f"Vigil bench {name}"]},
                                   output=["groupid"]):
            api.hostgroup.delete(g["groupid"])
    truth.done()
    return 0


if __name__ == "__main__":
    sys.exit(main())
