"""Reconcile 1,000,000 vouchers per party across three parties with 0.1 % discrepancies:
`vigil reconcile --all` (three separate voucher databases, each in its vendor's schema)
side by side with a full outer join of the same tables inside one PostgreSQL database.

    .venv/bin/python -m bench.reconcile_million [--vouchers 1000000]   # needs `vigil lab up`

Targets (issue 7): under 5 s end to end, within 2x of the in-database join, peak memory
under 300 MB (the whole process tree's: `--all` compares pairs in worker processes).
Checked against the truth: for finance against each party, Vigil's counts of each kind and
its resend list equal what the generator injected, and the peer's count equals the
discrepancies injected; exit 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.truth import TreePeak, Truth, add_arguments
from tests.conftest import ROOT
from vigil.lab import vouchers

DAY = dt.date(2026, 11, 27)
JOINED = "vouchers_bench_joined"


def one_database() -> None:
    """Copy the three vendors' tables into one database, for the peer's join."""
    with psycopg.connect(vouchers.dsn("finance").replace("vouchers_finance", "postgres"),
                         autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{JOINED}"')
        admin.execute(f'CREATE DATABASE "{JOINED}"')
    target = vouchers.dsn("finance").replace("vouchers_finance", JOINED)
    for party, (_db, table, cols) in vouchers.SCHEMAS.items():
        with psycopg.connect(vouchers.dsn(party)) as src, psycopg.connect(target) as dst:
            dst.execute(f"CREATE TABLE {table} ({cols[0]} text PRIMARY KEY, {cols[1]} text, "
                        f"{cols[2]} date, {cols[3]} numeric(18,2), {cols[4]} text, "
                        f"{cols[5]} text, {cols[6]} boolean, {cols[7]} boolean, "
                        f"{cols[8]} boolean, {cols[9]} boolean)")
            with src.cursor().copy(f"COPY {table} TO STDOUT") as out, \
                    dst.cursor().copy(f"COPY {table} FROM STDIN") as into:
                for chunk in out:
                    into.write(chunk)
            dst.execute(f"ANALYZE {table}")


def joined() -> tuple[float, int]:
    """The peer: each party against finance, one full outer join each, in one database."""
    sql = []
    f = vouchers.SCHEMAS["finance"][2]
    for party in ("pboc", "bank-a"):
        _db, table, c = vouchers.SCHEMAS[party]
        sql.append(
            f"SELECT count(*) FROM pay_voucher f FULL OUTER JOIN {table} p "
            f"ON f.{f[0]} = p.{c[0]} WHERE f.{f[0]} IS NULL OR p.{c[0]} IS NULL "
            f"OR f.{f[3]} <> p.{c[3]} OR f.{f[1]} <> p.{c[1]} OR f.{f[4]} <> p.{c[4]} "
            f"OR f.{f[5]} <> p.{c[5]} OR (f.{f[7]} AND NOT p.{c[8]}) "
            f"OR (p.{c[8]} AND NOT p.{c[9]})")
    found = 0
    started = time.perf_counter()
    with psycopg.connect(vouchers.dsn("finance").replace("vouchers_finance", JOINED)) as conn:
        for q in sql:
            row = conn.execute(q).fetchone()
            found += row[0] if row else 0
    return time.perf_counter() - started, found


def vigil_reconcile(out: Path) -> tuple[float, list[dict[str, Any]], float]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vigil", "reconcile", "--all",
                             "--inventory", "inventory/lab", "--date", DAY.isoformat(),
                             "--out", str(out), "--json"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "VIGIL_STORE": str(out / "s.db")})
    peak = TreePeak(proc.pid)  # the command and its workers together
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    peak_mb = peak.stop()
    if proc.returncode not in (0, 1):
        raise SystemExit(stderr)
    reports: list[dict[str, Any]] = json.loads(stdout)
    return seconds, reports, peak_mb


def check(truth: Truth, expected: vouchers.Expected, reports: list[dict[str, Any]],
          peer_found: int) -> int:
    """Vigil's and the peer's findings against what the generator injected; returns the
    discrepancies Vigil found between finance and the parties."""
    found = 0
    for party in expected.differs:
        (r,) = [r for r in reports if {r["a"], r["b"]} == {"finance", party}]
        mine, theirs = ("a", "b") if r["a"] == "finance" else ("b", "a")
        counts = r["counts"]
        for kind, injected_ in ((f"only_in_{mine}", expected.missing),
                                (f"only_in_{theirs}", expected.extra),
                                ("differs", expected.differs),
                                (f"not_received_by_{theirs}", expected.not_received),
                                (f"receipt_missing_from_{theirs}", expected.no_receipt)):
            truth.expect(f"finance/{party}: {kind}", len(injected_[party]), counts[kind])
        with open(r["files"][f"resend finance->{party}"], encoding="utf-8") as fh:
            listed = {row["number"] for row in csv.DictReader(fh)}
        truth.expect(f"{party}: resend list", sorted(expected.resend_to[party]),
                     sorted(listed))
        found += sum(counts.values())
    injected = sum(len(kind[p]) for p in expected.differs
                   for kind in (expected.missing, expected.extra, expected.differs,
                                expected.not_received, expected.no_receipt))
    truth.expect("discrepancies Vigil found (finance pairs)", injected, found)
    truth.expect("discrepancies the peer found", injected, peer_found)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vouchers", type=int, default=1_000_000)
    add_arguments(parser)
    args = parser.parse_args()
    truth = Truth("reconcile_million", args.inject_mismatch)
    each = max(1, args.vouchers // 1000 // 5)  # 0.1 %, spread over five kinds
    t0 = time.perf_counter()
    expected = vouchers.generate(args.vouchers, DAY, seed=1000, missing=each, extra=each,
                                 altered=each, not_received=each, no_receipt=each)
    one_database()
    print(f"generated {args.vouchers:,} vouchers x 3 parties in {time.perf_counter() - t0:.0f} s; "
          f"{sum(len(s) for s in expected.resend_to.values())} to resend from finance")
    j_s, j_found = joined()
    with tempfile.TemporaryDirectory() as tmp:
        v_s, reports, peak = vigil_reconcile(Path(tmp))
        v_found = check(truth, expected, reports, j_found)
    print("| run | time | discrepancies found | peak memory |")
    print("|---|---|---|---|")
    print(f"| vigil reconcile --all (3 databases, streamed) | {v_s:.2f} s | {v_found} | "
          f"{peak:.0f} MB |")
    print(f"| full outer joins in one database | {j_s:.2f} s | {j_found} | (server) |")
    print(f"ratio Vigil / in-database join: {v_s / j_s:.1f}x")
    truth.done()


if __name__ == "__main__":
    main()
